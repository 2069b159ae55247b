/**
 * Creates the entries of one layer inside its target directory, safely.
 *
 * Safety rests on one invariant: the target directory starts empty and only this writer puts
 * things in it, so `#dirs` (every directory it created) is the complete truth about which paths
 * are directories. A parent component that is not in `#dirs` either does not exist (it is created,
 * as a missing parent) or is something else (a symlink, a file): then the entry is refused, so
 * nothing is ever created through a symlink, whatever the layer did before. On top of that every
 * creation uses no-follow, exclusive calls (O_CREAT|O_EXCL|O_NOFOLLOW, mkdir, symlink, link,
 * mknod all fail on an existing name instead of following it); an existing name is replaced only
 * after lstat says what it is. Hardlink targets go through the same checks, so a link can never
 * reach outside the layer.
 *
 * Metadata: owner before mode (chown clears setuid bits), xattrs after both, times last. Modes are
 * always set explicitly, so the umask never shows. Directory metadata is applied at the end,
 * deepest first, so creating children changes neither a directory's mtime nor needs its write bit.
 */
import { createHash, type Hash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants as fsc,
  fchmodSync,
  fchownSync,
  fstatSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import * as native from '../native/index.js';
import { classifyName, isReservedName } from '../oci/whiteout.js';
import { DataWriters } from './file-data-writer.js';
import { LayerError } from './errors.js';
import type { IndexEntryType, LayerIndexRecord, LayerIndexWriter } from './layer-index.js';
import { baseName, normalizeEntryPath, parentOf, symlinkTarget } from './safe-path.js';
import { SparseFileWriter } from './sparse.js';
import type { TarData, TarEntry } from './tar-reader.js';

export interface LayerWriterOptions {
  /** Apply owners and create devices (root); otherwise record them in the index only. */
  privileged: boolean;
  index: LayerIndexWriter | undefined;
  /** Record the sha256 of each regular file in the index. */
  hashContent: boolean;
}

/** Metadata that is applied to a directory at the end. */
interface DirMeta {
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  atimeNs: bigint;
  xattrs: ReadonlyMap<string, Buffer>;
  /** The archive did not contain this directory (a missing parent, or the root). */
  implicit: boolean;
}

/** Attributes of directories that the layer does not list: what a plain `mkdir -p` as root gives. */
const IMPLICIT_DIR: DirMeta = Object.freeze({
  mode: 0o755,
  uid: 0,
  gid: 0,
  mtimeNs: 0n,
  atimeNs: 0n,
  xattrs: new Map<string, Buffer>(),
  implicit: true,
});

const CREATE_FILE = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();
const S_ISGID = 0o2000; // not in fs.constants

/** Result of applying xattrs: names the filesystem refused (kept in the index only). */
type NotApplied = string[];

export class LayerWriter {
  readonly #root: string;
  readonly #options: LayerWriterOptions;
  /** Every directory in the layer (relative path -> metadata to apply at the end). '' is the root. */
  readonly #dirs = new Map<string, DirMeta>([['', IMPLICIT_DIR]]);
  /** Regular files' data (large chunks written in the background). */
  readonly #data = new DataWriters();
  /** New names are owned by these ids (so chown can be skipped for them), or undefined if unsure. */
  readonly #creatorIds: { uid: number; gid: number } | undefined;

  constructor(root: string, options: LayerWriterOptions) {
    this.#root = root;
    this.#options = options;
    // Below a setgid directory new names take its group: then always chown.
    const inheritsGroup = (lstatSync(root).mode & S_ISGID) !== 0;
    this.#creatorIds = inheritsGroup ? undefined : { uid: process.geteuid?.() ?? -1, gid: process.getegid?.() ?? -1 };
  }

  /** Creates `entry` (and drains its data). */
  async apply(entry: TarEntry): Promise<void> {
    const path = normalizeEntryPath(entry.rawName);
    this.#checkMarkers(path, entry);
    if (path === '') {
      if (entry.type !== 'directory') {
        throw new LayerError('ERR_LAYER_UNSAFE_PATH', `the layer root is a ${entry.type}, not a directory`, { entry: entry.displayName });
      }
      this.#dirs.set('', dirMeta(entry));
      return drain(entry.data);
    }
    this.#ensureParents(path, entry);
    switch (entry.type) {
      case 'directory':
        this.#directory(path, entry);
        return drain(entry.data);
      case 'file':
        return this.#file(path, entry);
      case 'symlink':
        this.#symlink(path, entry);
        return drain(entry.data);
      case 'hardlink':
        this.#hardlink(path, entry);
        return drain(entry.data);
      case 'char':
      case 'block':
      case 'fifo':
        this.#special(path, entry);
        return drain(entry.data);
    }
  }

  /**
   * Applies directory metadata, deepest first (a parent's mtime and mode come after its children
   * are complete), and returns the directory records for the index.
   */
  finishDirectories(): LayerIndexRecord[] {
    const paths = [...this.#dirs.keys()].sort((a, b) => depth(b) - depth(a) || (a < b ? -1 : 1));
    const subdirs = new Map<string, number>();
    for (const path of paths) if (path !== '') subdirs.set(parentOf(path), (subdirs.get(parentOf(path)) ?? 0) + 1);
    const records: LayerIndexRecord[] = [];
    for (const path of paths) {
      const meta = this.#dirs.get(path)!;
      const abs = this.#abs(path);
      if (this.#needsChown(meta)) lchownSync(abs, meta.uid, meta.gid);
      chmodSync(abs, this.#diskMode('dir', meta.mode));
      const notApplied = this.#setXattrs(abs, undefined, meta.xattrs);
      native.lutimensSync(abs, native.timespecFromNs(meta.atimeNs), native.timespecFromNs(meta.mtimeNs));
      if (this.#options.index !== undefined) {
        records.push({
          ...this.#baseRecord(path, 'dir', meta, lstatSync(abs).ino, 0),
          nlink: 2 + (subdirs.get(path) ?? 0),
          ...xattrFields(meta.xattrs, notApplied),
          ...(meta.implicit ? { implicit: true } : {}),
        });
      }
    }
    // Root first, then parents before children: the natural order for a loader.
    return records.reverse();
  }

  // ---- entry kinds -------------------------------------------------------------------------

  #directory(path: string, entry: TarEntry): void {
    if (!this.#dirs.has(path)) this.#create(path, entry, (abs) => mkdirSync(abs, { mode: 0o700 }));
    // A directory listed again (or after its children, or after being created as a missing
    // parent) keeps its contents; the last header's metadata wins.
    this.#dirs.set(path, dirMeta(entry));
  }

  async #file(path: string, entry: TarEntry): Promise<void> {
    const marker = classifyName(baseName(path)).kind !== 'entry';
    const mode = this.#diskMode('file', entry.mode);
    let fd = -1;
    // Created with its final mode when possible, so that chmod can be skipped (the umask may
    // still take bits away: fstat tells).
    this.#create(path, entry, (abs) => {
      fd = openSync(abs, CREATE_FILE, mode & 0o777);
    });
    const data = this.#data.open(fd); // owns the fd from here on
    let ended = false;
    try {
      const st = fstatSync(fd);
      let size = entry.size;
      let hash: Hash | undefined;
      if (marker) {
        size = 0; // OCI markers are empty files; data a writer put in one is not kept
        await drain(entry.data);
      } else if (entry.sparse !== undefined) {
        const sparse = new SparseFileWriter(fd, entry.sparse, entry.size, entry.displayName);
        await drain(entry.data, (chunk) => sparse.write(chunk));
        sparse.finish();
        size = entry.sparse.realSize;
      } else {
        hash = this.#options.hashContent ? createHash('sha256') : undefined;
        await drain(entry.data, (chunk) => {
          hash?.update(chunk);
          return data.write(chunk);
        });
      }
      // Owner, then mode (chown clears setuid/setgid), then xattrs (after the data: writing drops
      // security.capability), then times; once the data is written (now, or in the background).
      const chown = this.#needsChown(entry);
      let notApplied: NotApplied = [];
      // With xattrs, the record must say which ones the filesystem refused: finish now.
      if (entry.xattrs.size > 0) await data.written();
      ended = true;
      data.end(() => {
        if (chown) fchownSync(fd, entry.uid, entry.gid);
        if (chown || (st.mode & 0o7777) !== mode) fchmodSync(fd, mode);
        notApplied = this.#setXattrs(undefined, fd, entry.xattrs);
        native.futimensSync(fd, native.timespecFromNs(entry.atimeNs ?? entry.mtimeNs), native.timespecFromNs(entry.mtimeNs));
      });
      this.#options.index?.add({
        ...this.#baseRecord(path, 'file', entry, st.ino, size),
        ...(hash === undefined ? {} : { sha256: hash.digest('hex') }),
        ...xattrFields(entry.xattrs, notApplied),
      });
    } finally {
      if (!ended) data.abandon();
    }
  }

  /** Waits until every file is completely written and finished; throws the first failure. */
  async flush(): Promise<void> {
    await this.#data.flush();
  }

  /** Waits for background writes without throwing (before giving up on a failed extraction). */
  async settle(): Promise<void> {
    await this.#data.settle();
  }

  #symlink(path: string, entry: TarEntry): void {
    const target = symlinkTarget(entry.linkName, entry.displayName);
    // The target is data: stored byte for byte, never resolved.
    this.#create(path, entry, (abs) => symlinkSync(target, abs));
    const abs = this.#abs(path);
    if (this.#needsChown(entry)) lchownSync(abs, entry.uid, entry.gid);
    const notApplied = this.#setXattrs(abs, undefined, entry.xattrs);
    native.lutimensSync(abs, native.timespecFromNs(entry.atimeNs ?? entry.mtimeNs), native.timespecFromNs(entry.mtimeNs));
    this.#options.index?.add({
      ...this.#baseRecord(path, 'symlink', entry, this.#ino(abs), target.length),
      linkTarget: target,
      ...xattrFields(entry.xattrs, notApplied),
    });
  }

  #hardlink(path: string, entry: TarEntry): void {
    const target = normalizeEntryPath(entry.linkName, 'hardlink target');
    if (target === path) return; // a link to itself: nothing to do (seen in the wild)
    if (target === '' || this.#dirs.has(target)) {
      throw new LayerError('ERR_LAYER_CORRUPT', `hardlink to a directory (${JSON.stringify(target)})`, { entry: entry.displayName });
    }
    if (isReservedName(baseName(target))) {
      throw new LayerError('ERR_LAYER_INVALID_WHITEOUT', `hardlink to the marker ${JSON.stringify(target)}`, { entry: entry.displayName });
    }
    // The target's parents must be real directories of this layer: link(2) follows symlinks in
    // them, which could otherwise link a host file (`s -> /etc`, link to `s/shadow`) into it.
    this.#checkExistingParents(target, entry);
    this.#create(path, entry, (abs) => {
      try {
        linkSync(this.#abs(target), abs); // link(2) does not follow a symlink target itself
      } catch (err) {
        if (isCode(err, 'ENOENT')) {
          throw new LayerError('ERR_LAYER_CORRUPT', `hardlink target ${JSON.stringify(target)} is not in this layer`, {
            entry: entry.displayName,
          });
        }
        throw err;
      }
    });
    this.#options.index?.addHardlink({ path, hardlinkTo: target, ino: this.#ino(this.#abs(path)) });
  }

  /** Character and block devices, FIFOs. */
  #special(path: string, entry: TarEntry): void {
    const type = entry.type as 'char' | 'block' | 'fifo';
    const device = type !== 'fifo';
    // Without privilege, a device is recorded, not created: an empty file holds its place.
    const placeholder = device && !this.#options.privileged;
    const abs = this.#abs(path);
    if (placeholder) {
      this.#create(path, entry, () => closeSync(openSync(abs, CREATE_FILE, 0o600)));
    } else {
      const typeBits = type === 'char' ? fsc.S_IFCHR : type === 'block' ? fsc.S_IFBLK : fsc.S_IFIFO;
      const dev = device ? native.makedev(entry.devMajor, entry.devMinor) : 0;
      this.#create(path, entry, () => native.mknodSync(abs, typeBits | 0o600, dev));
    }
    if (this.#options.privileged) lchownSync(abs, entry.uid, entry.gid);
    // chmod follows symlinks, but `abs` is the node just created and nothing else writes here.
    chmodSync(abs, placeholder ? 0o600 : this.#diskMode('file', entry.mode));
    const notApplied = this.#setXattrs(abs, undefined, entry.xattrs);
    native.lutimensSync(abs, native.timespecFromNs(entry.atimeNs ?? entry.mtimeNs), native.timespecFromNs(entry.mtimeNs));
    this.#options.index?.add({
      ...this.#baseRecord(path, type, entry, this.#ino(abs), 0),
      ...(device ? { devMajor: entry.devMajor, devMinor: entry.devMinor } : {}),
      ...(placeholder ? { placeholder: true } : {}),
      ...xattrFields(entry.xattrs, notApplied),
    });
  }

  // ---- paths ---------------------------------------------------------------------------------

  #abs(path: string): string {
    return path === '' ? this.#root : `${this.#root}/${path}`;
  }

  /** Markers are checked by name (oci/whiteout.ts); a marker is only ever a plain file. */
  #checkMarkers(path: string, entry: TarEntry): void {
    const parts = path.split('/');
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (!isReservedName(part)) continue;
      const kind = classifyName(part);
      if (kind.kind === 'invalid') {
        throw new LayerError('ERR_LAYER_INVALID_WHITEOUT', `invalid whiteout marker: ${kind.reason}`, { entry: entry.displayName });
      }
      if (i < parts.length - 1) {
        throw new LayerError('ERR_LAYER_INVALID_WHITEOUT', `marker ${JSON.stringify(part)} used as a directory`, { entry: entry.displayName });
      }
      if (entry.type !== 'file') {
        throw new LayerError('ERR_LAYER_INVALID_WHITEOUT', `marker ${JSON.stringify(part)} is a ${entry.type}, not a plain file`, {
          entry: entry.displayName,
        });
      }
    }
  }

  /** Creates missing parents (as implicit directories); refuses parents that are not directories. */
  #ensureParents(path: string, entry: TarEntry): void {
    let slash = path.indexOf('/');
    while (slash !== -1) {
      const parent = path.slice(0, slash);
      if (!this.#dirs.has(parent)) {
        try {
          mkdirSync(this.#abs(parent), { mode: 0o700 });
        } catch (err) {
          if (isCode(err, 'EEXIST')) throw this.#notADirectory(parent, entry);
          throw err;
        }
        this.#dirs.set(parent, IMPLICIT_DIR);
      }
      slash = path.indexOf('/', slash + 1);
    }
  }

  /** For hardlink targets: every parent must already be a directory of this layer. */
  #checkExistingParents(path: string, entry: TarEntry): void {
    let slash = path.indexOf('/');
    while (slash !== -1) {
      const parent = path.slice(0, slash);
      if (!this.#dirs.has(parent)) {
        if (this.#exists(parent)) throw this.#notADirectory(parent, entry);
        throw new LayerError('ERR_LAYER_CORRUPT', `hardlink target ${JSON.stringify(path)} is not in this layer`, { entry: entry.displayName });
      }
      slash = path.indexOf('/', slash + 1);
    }
  }

  #notADirectory(parent: string, entry: TarEntry): LayerError {
    const what = lstatSync(this.#abs(parent)).isSymbolicLink() ? 'a symlink' : 'not a directory';
    return new LayerError('ERR_LAYER_UNSAFE_PATH', `parent ${JSON.stringify(parent)} is ${what}; refusing to write through it`, {
      entry: entry.displayName,
    });
  }

  /**
   * Runs `make` (an exclusive create); if the name exists, replaces what is there (last entry
   * wins: a file over a file, a directory over a file, a file over a whole directory) and retries.
   */
  #create(path: string, entry: TarEntry, make: (abs: string) => void): void {
    const abs = this.#abs(path);
    try {
      make(abs);
      return;
    } catch (err) {
      if (!isCode(err, 'EEXIST')) throw err;
    }
    const index = this.#options.index;
    if (this.#dirs.has(path)) {
      if (entry.type === 'directory') return;
      rmSync(abs, { recursive: true }); // rm never follows symlinks inside the tree
      for (const dir of [...this.#dirs.keys()]) if (dir === path || dir.startsWith(`${path}/`)) this.#dirs.delete(dir);
      index?.removed(path);
    } else {
      unlinkSync(abs);
      index?.replaced();
      if (entry.type === 'directory') index?.removed(path);
    }
    make(abs);
  }

  #exists(path: string): boolean {
    try {
      lstatSync(this.#abs(path));
      return true;
    } catch {
      return false;
    }
  }

  #ino(abs: string): number {
    return this.#options.index === undefined ? 0 : lstatSync(abs).ino;
  }

  // ---- metadata ------------------------------------------------------------------------------

  /** Whether a name this writer created needs a chown to get the entry's owner. */
  #needsChown(owner: { uid: number; gid: number }): boolean {
    if (!this.#options.privileged) return false;
    const ids = this.#creatorIds;
    return ids === undefined || owner.uid !== ids.uid || owner.gid !== ids.gid;
  }

  /**
   * The mode on disk. Privileged: the real one. Unprivileged, the owner keeps read access to files
   * and full access to directories, or the mount could not serve them (nor the cache delete them);
   * the real mode is in the index.
   */
  #diskMode(kind: 'file' | 'dir', mode: number): number {
    if (this.#options.privileged) return mode;
    return kind === 'dir' ? mode | 0o700 : mode | 0o400;
  }

  /** Sets xattrs on a path (no-follow) or fd; returns the names the filesystem refused. */
  #setXattrs(abs: string | undefined, fd: number | undefined, xattrs: ReadonlyMap<string, Buffer>): NotApplied {
    const refused: NotApplied = [];
    for (const [name, value] of xattrs) {
      try {
        if (fd !== undefined) native.fsetxattrSync(fd, name, value);
        else native.lsetxattrSync(abs!, name, value);
      } catch (err) {
        // Unprivileged (security.*, trusted.*), user.* on a symlink, or a filesystem without
        // support: the value survives in the index, where the mount can still serve it.
        if (isCode(err, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EACCES')) refused.push(name);
        else throw err;
      }
    }
    return refused;
  }

  #baseRecord(
    path: string,
    type: IndexEntryType,
    meta: { mode: number; uid: number; gid: number; mtimeNs: bigint },
    ino: number,
    size: number,
  ): LayerIndexRecord {
    return { path, type, mode: meta.mode, uid: meta.uid, gid: meta.gid, size, mtimeNs: meta.mtimeNs, ino, nlink: 1 };
  }
}

function dirMeta(entry: TarEntry): DirMeta {
  return {
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    mtimeNs: entry.mtimeNs,
    atimeNs: entry.atimeNs ?? entry.mtimeNs,
    xattrs: entry.xattrs.size === 0 ? NO_XATTRS : entry.xattrs,
    implicit: false,
  };
}

function xattrFields(xattrs: ReadonlyMap<string, Buffer>, notApplied: NotApplied): Partial<LayerIndexRecord> {
  if (xattrs.size === 0) return {};
  return notApplied.length === 0 ? { xattrs: new Map(xattrs) } : { xattrs: new Map(xattrs), xattrsNotApplied: notApplied };
}

function depth(path: string): number {
  if (path === '') return 0;
  let n = 1;
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) n++;
  return n;
}

function isCode(err: unknown, ...codes: string[]): boolean {
  return err instanceof Error && codes.includes((err as { code?: string }).code ?? '');
}

/**
 * Reads an entry's data to the end, handing each chunk to `onChunk`. When it returns a promise
 * (a writer asking to slow down), the stream is paused until it settles. Rejects if the stream
 * fails or closes early (truncated archive).
 */
function drain(data: TarData, onChunk?: (chunk: Buffer) => Promise<void> | undefined | void): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      if (err === undefined) resolve();
      else reject(err);
    };
    const fail = (err: unknown): void => {
      settle(err);
      data.destroy(err as Error);
    };
    data.on('data', (chunk) => {
      if (settled || onChunk === undefined) return;
      try {
        const wait = onChunk(chunk);
        if (wait !== undefined) {
          data.pause();
          wait.then(() => data.resume(), fail);
        }
      } catch (err) {
        fail(err);
      }
    });
    data.on('end', () => settle());
    data.on('error', (err) => settle(err));
    data.on('close', () => {
      // After 'end' this is the normal close; before it, the data was cut off. (The error is only
      // built when needed: capturing a stack per entry would cost more than the entry.)
      if (!settled) settle(new LayerError('ERR_LAYER_CORRUPT', 'entry data ends early (truncated archive)'));
    });
  });
}
