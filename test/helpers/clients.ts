// One path-based client interface over two very different things: the union engine called
// directly (EngineClient) and any directory reached through the kernel (MountClient: a FUSE
// mount, or a plain host directory). Conformance cases are written once against FsClient.
// Every failure is an error with an errno `.code` ('ENOENT', ...).
import assert from 'node:assert/strict';
import { constants as fsc, type BigIntStats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as native from '../../src/native/index.js';
import type { Attr, Caller, Ino, UnionFs } from '../../src/union/types.js';
import { ROOT_INO } from '../../src/union/types.js';

export type Kind = 'file' | 'dir' | 'symlink' | 'fifo' | 'chr' | 'blk' | 'sock';

export interface Stat {
  ino: bigint;
  kind: Kind;
  /** Full st_mode (type and permission bits). */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blocks: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** A time for utimens; `nsec` may be native.constants.UTIME_OMIT / UTIME_NOW. */
export interface Time {
  sec: number;
  nsec: number;
}

export const OMIT: Time = { sec: 0, nsec: native.constants.UTIME_OMIT };
export const NOW: Time = { sec: 0, nsec: native.constants.UTIME_NOW };

export interface FileHandle {
  /** Reads up to buf.length bytes at `pos`; returns the count (0 at end of file). */
  read(buf: Buffer, pos: number): Promise<number>;
  write(buf: Buffer, pos: number): Promise<number>;
  stat(): Promise<Stat>;
  truncate(len: number): Promise<void>;
  close(): Promise<void>;
}

export interface FsClient {
  readonly label: string;
  /** lstat: symlinks are not followed. */
  lstat(p: string): Promise<Stat>;
  exists(p: string): Promise<boolean>;
  /** Names in the directory, without '.' and '..', in the order the filesystem gives them. */
  readdir(p: string): Promise<string[]>;
  readFile(p: string): Promise<Buffer>;
  /** Creates (with `mode`, default 0644) or truncates, then writes `data`. */
  writeFile(p: string, data: string | Buffer, opts?: { mode?: number }): Promise<void>;
  appendFile(p: string, data: string | Buffer): Promise<void>;
  mkdir(p: string, mode?: number): Promise<void>;
  rmdir(p: string): Promise<void>;
  unlink(p: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  symlink(target: string, p: string): Promise<void>;
  readlink(p: string): Promise<string>;
  /** Hard link: a new name `newPath` for `existing`. */
  link(existing: string, newPath: string): Promise<void>;
  /** `mode` includes the file type (S_IFCHR, S_IFBLK, S_IFIFO, S_IFREG). */
  mknod(p: string, mode: number, rdev: number): Promise<void>;
  mkfifo(p: string, mode?: number): Promise<void>;
  /** chmod (follows symlinks on a mount; do not use on symlinks). */
  chmod(p: string, mode: number): Promise<void>;
  /** lchown: a symlink itself changes owner. */
  chown(p: string, uid: number, gid: number): Promise<void>;
  /** lutimens: nanosecond times, OMIT/NOW allowed; a symlink itself is changed. */
  utimens(p: string, atime: Time, mtime: Time): Promise<void>;
  truncate(p: string, len: number): Promise<void>;
  getxattr(p: string, name: string): Promise<Buffer>;
  setxattr(p: string, name: string, value: Buffer | string, flags?: number): Promise<void>;
  listxattr(p: string): Promise<string[]>;
  removexattr(p: string, name: string): Promise<void>;
  /** open(2) with node's numeric flags; O_CREAT uses `mode` (default 0644). */
  open(p: string, flags: number, mode?: number): Promise<FileHandle>;
}

export function kindOf(mode: number): Kind {
  switch (mode & fsc.S_IFMT) {
    case fsc.S_IFDIR:
      return 'dir';
    case fsc.S_IFREG:
      return 'file';
    case fsc.S_IFLNK:
      return 'symlink';
    case fsc.S_IFIFO:
      return 'fifo';
    case fsc.S_IFCHR:
      return 'chr';
    case fsc.S_IFBLK:
      return 'blk';
    default:
      return 'sock';
  }
}

function toBuffer(data: string | Buffer): Buffer {
  return typeof data === 'string' ? Buffer.from(data) : data;
}

/** An errno error like Node's, for failures the client itself detects. */
function errnoError(code: string, syscall: string, path: string): Error & { code: string } {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path });
}

/** The errno code `work` fails with, or 'OK'. */
export async function codeOf(work: () => Promise<unknown>): Promise<string> {
  try {
    await work();
    return 'OK';
  } catch (err) {
    return String((err as { code?: unknown }).code ?? err);
  }
}

/** Asserts that `promise` rejects with errno `code` (and says what happened instead). */
export async function expectCode(promise: Promise<unknown>, code: string, what = ''): Promise<void> {
  let result: unknown;
  try {
    result = await promise;
  } catch (err) {
    const actual = (err as { code?: unknown }).code;
    assert.equal(actual, code, `${what}: expected ${code}, got ${String(actual)} (${String(err)})`);
    return;
  }
  assert.fail(`${what}: expected ${code}, but it succeeded (${JSON.stringify(result) ?? 'undefined'})`);
}

// ---- the engine, called directly ------------------------------------------------------------

const ROOT_CALLER: Caller = { uid: 0, gid: 0, pid: process.pid };

function splitPath(p: string): string[] {
  return p.split('/').filter((part) => part !== '');
}

function attrToStat(attr: Attr): Stat {
  return {
    ino: BigInt(attr.stIno ?? attr.ino), // what a transport shows in stat
    kind: kindOf(attr.mode),
    mode: attr.mode,
    nlink: attr.nlink,
    uid: attr.uid,
    gid: attr.gid,
    rdev: attr.rdev,
    size: attr.size,
    blocks: attr.blocks,
    atimeNs: attr.atimeNs,
    mtimeNs: attr.mtimeNs,
    ctimeNs: attr.ctimeNs,
  };
}

/**
 * Drives a UnionFs by path: each path is resolved by `lookup` from ROOT_INO, component by
 * component (symlinks are never followed), as a path-based transport would.
 */
export class EngineClient implements FsClient {
  readonly label = 'engine';
  readonly fs: UnionFs;
  readonly caller: Caller;

  constructor(fs: UnionFs, caller: Caller = ROOT_CALLER) {
    this.fs = fs;
    this.caller = caller;
  }

  /** The attributes of `p` (lookup of every component). */
  async resolve(p: string): Promise<Attr> {
    let attr = await this.fs.getattr(ROOT_INO);
    for (const name of splitPath(p)) attr = await this.fs.lookup(attr.ino, name);
    return attr;
  }

  /** The parent's inode and the last component of `p`. */
  async resolveParent(p: string): Promise<{ parent: Ino; name: string }> {
    const parts = splitPath(p);
    const name = parts.pop();
    if (name === undefined) throw errnoError('EBUSY', 'resolve', p);
    const parent = await this.resolve(parts.join('/'));
    return { parent: parent.ino, name };
  }

  async #lookupOrUndefined(p: string): Promise<Attr | undefined> {
    try {
      return await this.resolve(p);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async lstat(p: string): Promise<Stat> {
    return attrToStat(await this.resolve(p));
  }

  async exists(p: string): Promise<boolean> {
    return (await this.#lookupOrUndefined(p)) !== undefined;
  }

  async readdir(p: string): Promise<string[]> {
    const attr = await this.resolve(p);
    const entries = await this.fs.readdir(attr.ino);
    return entries.map((e) => e.name).filter((name) => name !== '.' && name !== '..');
  }

  async readFile(p: string): Promise<Buffer> {
    const handle = await this.open(p, fsc.O_RDONLY);
    try {
      const chunks: Buffer[] = [];
      let pos = 0;
      for (;;) {
        const buf = Buffer.alloc(128 * 1024);
        const n = await handle.read(buf, pos);
        if (n === 0) break;
        chunks.push(buf.subarray(0, n));
        pos += n;
      }
      return Buffer.concat(chunks);
    } finally {
      await handle.close();
    }
  }

  async writeFile(p: string, data: string | Buffer, opts: { mode?: number } = {}): Promise<void> {
    const handle = await this.open(p, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, opts.mode ?? 0o644);
    try {
      const buf = toBuffer(data);
      if (buf.length > 0) await handle.write(buf, 0);
    } finally {
      await handle.close();
    }
  }

  async appendFile(p: string, data: string | Buffer): Promise<void> {
    const handle = await this.open(p, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND);
    try {
      const buf = toBuffer(data);
      // The kernel turns O_APPEND writes into writes at the current size; so do we.
      if (buf.length > 0) await handle.write(buf, (await handle.stat()).size);
    } finally {
      await handle.close();
    }
  }

  async mkdir(p: string, mode = 0o755): Promise<void> {
    const { parent, name } = await this.resolveParent(p);
    await this.fs.mkdir(parent, name, mode, this.caller);
  }

  async rmdir(p: string): Promise<void> {
    const { parent, name } = await this.resolveParent(p);
    await this.fs.rmdir(parent, name);
  }

  async unlink(p: string): Promise<void> {
    const { parent, name } = await this.resolveParent(p);
    await this.fs.unlink(parent, name);
  }

  async rename(from: string, to: string): Promise<void> {
    const a = await this.resolveParent(from);
    const b = await this.resolveParent(to);
    await this.fs.rename(a.parent, a.name, b.parent, b.name);
  }

  async symlink(target: string, p: string): Promise<void> {
    const { parent, name } = await this.resolveParent(p);
    await this.fs.symlink(parent, name, target, this.caller);
  }

  async readlink(p: string): Promise<string> {
    return this.fs.readlink((await this.resolve(p)).ino);
  }

  async link(existing: string, newPath: string): Promise<void> {
    const attr = await this.resolve(existing);
    const { parent, name } = await this.resolveParent(newPath);
    await this.fs.link(attr.ino, parent, name);
  }

  async mknod(p: string, mode: number, rdev: number): Promise<void> {
    const { parent, name } = await this.resolveParent(p);
    await this.fs.mknod(parent, name, mode, rdev, this.caller);
  }

  async mkfifo(p: string, mode = 0o644): Promise<void> {
    await this.mknod(p, fsc.S_IFIFO | mode, 0);
  }

  async chmod(p: string, mode: number): Promise<void> {
    await this.fs.setattr((await this.resolve(p)).ino, { mode });
  }

  async chown(p: string, uid: number, gid: number): Promise<void> {
    await this.fs.setattr((await this.resolve(p)).ino, { uid, gid });
  }

  async utimens(p: string, atime: Time, mtime: Time): Promise<void> {
    await this.fs.setattr((await this.resolve(p)).ino, { atime, mtime });
  }

  async truncate(p: string, len: number): Promise<void> {
    await this.fs.setattr((await this.resolve(p)).ino, { size: len });
  }

  async getxattr(p: string, name: string): Promise<Buffer> {
    return this.fs.getxattr((await this.resolve(p)).ino, name);
  }

  async setxattr(p: string, name: string, value: Buffer | string, flags = 0): Promise<void> {
    await this.fs.setxattr((await this.resolve(p)).ino, name, toBuffer(value), flags);
  }

  async listxattr(p: string): Promise<string[]> {
    return this.fs.listxattr((await this.resolve(p)).ino);
  }

  async removexattr(p: string, name: string): Promise<void> {
    await this.fs.removexattr((await this.resolve(p)).ino, name);
  }

  async open(p: string, flags: number, mode = 0o644): Promise<FileHandle> {
    let ino: Ino;
    let fh: number;
    const existing = (flags & fsc.O_CREAT) !== 0 ? await this.#lookupOrUndefined(p) : await this.resolve(p);
    if (existing === undefined) {
      const { parent, name } = await this.resolveParent(p);
      const created = await this.fs.create(parent, name, fsc.S_IFREG | mode, flags, this.caller);
      ino = created.attr.ino;
      fh = created.fh;
    } else {
      if ((flags & fsc.O_CREAT) !== 0 && (flags & fsc.O_EXCL) !== 0) throw errnoError('EEXIST', 'open', p);
      ino = existing.ino;
      fh = (await this.fs.open(ino, flags & ~(fsc.O_CREAT | fsc.O_EXCL))).fh;
    }
    return new EngineHandle(this.fs, ino, fh);
  }
}

class EngineHandle implements FileHandle {
  readonly #fs: UnionFs;
  readonly ino: Ino;
  readonly fh: number;

  constructor(fs: UnionFs, ino: Ino, fh: number) {
    this.#fs = fs;
    this.ino = ino;
    this.fh = fh;
  }

  read(buf: Buffer, pos: number): Promise<number> {
    return this.#fs.read(this.fh, buf, buf.length, pos);
  }

  write(buf: Buffer, pos: number): Promise<number> {
    return this.#fs.write(this.fh, buf, buf.length, pos);
  }

  async stat(): Promise<Stat> {
    return attrToStat(await this.#fs.getattr(this.ino, this.fh));
  }

  async truncate(len: number): Promise<void> {
    await this.#fs.setattr(this.ino, { size: len }, this.fh);
  }

  async close(): Promise<void> {
    await this.#fs.flush(this.fh);
    await this.#fs.release(this.fh);
  }
}

// ---- a directory through the kernel -----------------------------------------------------------

function bigStatToStat(st: BigIntStats): Stat {
  const mode = Number(st.mode);
  return {
    ino: st.ino,
    kind: kindOf(mode),
    mode,
    nlink: Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: Number(st.rdev),
    size: Number(st.size),
    blocks: Number(st.blocks),
    atimeNs: st.atimeNs,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
  };
}

/**
 * Plain node:fs (and the addon's l*xattr, mknod, lutimens) on `root + p`. Use it on a FUSE mount
 * (from a process that does not serve the mount) or on any host directory.
 */
export class MountClient implements FsClient {
  readonly label: string;
  readonly root: string;

  constructor(root: string, label = 'mount') {
    this.root = root.replace(/\/+$/, '');
    this.label = label;
  }

  path(p: string): string {
    const parts = splitPath(p);
    return parts.length === 0 ? this.root : `${this.root}/${parts.join('/')}`;
  }

  async lstat(p: string): Promise<Stat> {
    return bigStatToStat(await fsp.lstat(this.path(p), { bigint: true }));
  }

  async exists(p: string): Promise<boolean> {
    try {
      await fsp.lstat(this.path(p));
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return false;
      throw err;
    }
  }

  readdir(p: string): Promise<string[]> {
    return fsp.readdir(this.path(p));
  }

  readFile(p: string): Promise<Buffer> {
    return fsp.readFile(this.path(p));
  }

  async writeFile(p: string, data: string | Buffer, opts: { mode?: number } = {}): Promise<void> {
    await fsp.writeFile(this.path(p), data, { mode: opts.mode ?? 0o644 });
  }

  async appendFile(p: string, data: string | Buffer): Promise<void> {
    await fsp.appendFile(this.path(p), data);
  }

  async mkdir(p: string, mode = 0o755): Promise<void> {
    await fsp.mkdir(this.path(p), { mode });
  }

  rmdir(p: string): Promise<void> {
    return fsp.rmdir(this.path(p));
  }

  unlink(p: string): Promise<void> {
    return fsp.unlink(this.path(p));
  }

  rename(from: string, to: string): Promise<void> {
    return fsp.rename(this.path(from), this.path(to));
  }

  symlink(target: string, p: string): Promise<void> {
    return fsp.symlink(target, this.path(p));
  }

  readlink(p: string): Promise<string> {
    return fsp.readlink(this.path(p));
  }

  link(existing: string, newPath: string): Promise<void> {
    return fsp.link(this.path(existing), this.path(newPath));
  }

  mknod(p: string, mode: number, rdev: number): Promise<void> {
    return native.mknod(this.path(p), mode, rdev);
  }

  mkfifo(p: string, mode = 0o644): Promise<void> {
    return native.mknod(this.path(p), fsc.S_IFIFO | mode, 0);
  }

  chmod(p: string, mode: number): Promise<void> {
    return fsp.chmod(this.path(p), mode);
  }

  chown(p: string, uid: number, gid: number): Promise<void> {
    return fsp.lchown(this.path(p), uid, gid);
  }

  utimens(p: string, atime: Time, mtime: Time): Promise<void> {
    return native.lutimens(this.path(p), atime, mtime);
  }

  truncate(p: string, len: number): Promise<void> {
    return fsp.truncate(this.path(p), len);
  }

  getxattr(p: string, name: string): Promise<Buffer> {
    return native.lgetxattr(this.path(p), name);
  }

  setxattr(p: string, name: string, value: Buffer | string, flags = 0): Promise<void> {
    return native.lsetxattr(this.path(p), name, toBuffer(value), flags);
  }

  listxattr(p: string): Promise<string[]> {
    return native.llistxattr(this.path(p));
  }

  removexattr(p: string, name: string): Promise<void> {
    return native.lremovexattr(this.path(p), name);
  }

  async open(p: string, flags: number, mode = 0o644): Promise<FileHandle> {
    return new MountHandle(await fsp.open(this.path(p), flags, mode));
  }
}

class MountHandle implements FileHandle {
  readonly #handle: fsp.FileHandle;

  constructor(handle: fsp.FileHandle) {
    this.#handle = handle;
  }

  async read(buf: Buffer, pos: number): Promise<number> {
    return (await this.#handle.read(buf, 0, buf.length, pos)).bytesRead;
  }

  async write(buf: Buffer, pos: number): Promise<number> {
    return (await this.#handle.write(buf, 0, buf.length, pos)).bytesWritten;
  }

  async stat(): Promise<Stat> {
    return bigStatToStat(await this.#handle.stat({ bigint: true }));
  }

  truncate(len: number): Promise<void> {
    return this.#handle.truncate(len);
  }

  close(): Promise<void> {
    return this.#handle.close();
  }
}
