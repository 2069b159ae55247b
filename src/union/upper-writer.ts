import { constants as fsc, promises as fsp, type BigIntStats } from 'node:fs';
import type { HostStat } from './host-stat.js';
import { FsError, UserError, isErrno } from '../errors.js';
import * as native from '../native/index.js';
import {
  OPAQUE_MARKER,
  OVERLAY_OPAQUE_VALUE,
  OVERLAY_OPAQUE_XATTR,
  isOverlayWhiteout,
  isPrivateXattr,
  whiteoutName,
} from '../oci/whiteout.js';
import { LayerDir, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, fileType } from './layer-dir.js';
import { NO_LOWERS, type Node } from './node.js';
import { type MergedTree, WHITEOUT_TYPE } from './tree.js';

/**
 * How removals and opaque directories are written to the upper directory:
 * - 'oci' (the default): `.wh.NAME` files and `.wh..wh..opq`, so an upper directory is already an
 *   OCI layer diff (docs/decisions.md). A name too long for the prefix gets an overlay whiteout.
 * - 'overlay': what kernel overlayfs writes and reads: a 0/0 character device at NAME and the
 *   `trusted.overlay.opaque` = "y" xattr on opaque directories; no `.wh.` names at all. Needs root
 *   (mknod, trusted.* xattrs) and a filesystem with RENAME_WHITEOUT (docs/union-semantics.md).
 * Both forms are read back whichever is chosen (tree.ts).
 */
export type UpperFormat = 'oci' | 'overlay';

/**
 * Everything that writes to the upper directory on behalf of the merged view: copy-up, whiteouts
 * and opaque markers. New entries are prepared in the work directory and renamed into place, so a
 * crash never leaves a partial file visible in the upper.
 */
export class UpperWriter {
  readonly #tree: MergedTree;
  readonly #work: LayerDir;
  readonly #inFlight = new Map<Node, Promise<void>>();
  readonly format: UpperFormat;
  #counter = 0;

  constructor(tree: MergedTree, work: LayerDir, format: UpperFormat = 'oci') {
    this.#tree = tree;
    this.#work = work;
    this.format = format;
  }

  /**
   * Whether a whiteout for `name` is a `.wh.` file beside the name (written before the name is
   * removed). Otherwise it is a 0/0 character device AT the name, so an upper entry there must be
   * replaced by it in one step (replaceWithWhiteout: renameat2 RENAME_WHITEOUT).
   */
  usesMarkerFile(name: string): boolean {
    return this.format === 'oci' && fitsOciMarker(name);
  }

  /**
   * Checks once, in the work directory (same filesystem as the upper), that this process can write
   * the overlay form there: a 0/0 device and the trusted opaque xattr. Fails with what is missing.
   */
  static async probeOverlayForm(work: LayerDir): Promise<void> {
    const dir = work.host(`/probe-${process.pid}-${Date.now()}`);
    await fsp.mkdir(dir, { mode: 0o700 });
    try {
      await native.mknod(`${dir}/whiteout`, S_IFCHR, 0);
      await native.lsetxattr(dir, OVERLAY_OPAQUE_XATTR, Buffer.from(OVERLAY_OPAQUE_VALUE), 0);
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'EIO';
      throw new UserError(
        `the upper directory's filesystem cannot hold overlay-form whiteouts (${code}: ${(err as { syscall?: string }).syscall ?? 'probe'}); ` +
          'they need root (mknod of a 0/0 device, trusted.* xattrs) and a local filesystem such as ext4, xfs, btrfs or tmpfs',
        { cause: err },
      );
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  /** A fresh path in the work directory, on the same filesystem as the upper. */
  tempPath(kind: string): string {
    return this.#work.host(`/${kind}-${process.pid}-${++this.#counter}`);
  }

  /** Makes sure `node` exists in the upper (copying up its parents first); idempotent. */
  async copyUp(node: Node): Promise<void> {
    if (node.inUpper) return;
    const running = this.#inFlight.get(node);
    if (running !== undefined) return running;
    const job = this.#copyUp(node).finally(() => this.#inFlight.delete(node));
    this.#inFlight.set(node, job);
    return job;
  }

  async #copyUp(node: Node): Promise<void> {
    if (node.parent !== null) await this.copyUp(node.parent);
    const st = await this.#tree.lstat(node);
    const source = this.#tree.backing(node).path;
    const target = this.#tree.upperPath(node.relPath);
    const temp = this.tempPath('copyup');
    // Copying a child up is no change of its directory: keep the directory's times as they were.
    const parentTimes = node.parent === null ? undefined : await timesOf(this.#tree.upperPath(node.parent.relPath));
    try {
      await this.#createCopy(node.type, source, temp, st);
      await applyMetadata(temp, source, st);
      await native.renameat2(temp, target, native.constants.RENAME_NOREPLACE);
    } catch (err) {
      await fsp.rm(temp, { recursive: true, force: true });
      throw err;
    }
    // The copy keeps the node's inode number, except for a file hardlinked in its layer: its other
    // names still show the lower copy, so it becomes a file of its own (docs/union-semantics.md).
    const copied = await fsp.lstat(target, { bigint: true });
    if (parentTimes !== undefined) await restoreTimes(parentTimes.path, parentTimes.st);
    // Its node id is already its own (see tree.ts); from now on it also shows its own number.
    // statIno is set only for a name hardlinked in its lower layer (tree.ts).
    if (node.statIno !== undefined) {
      node.statIno = undefined;
      this.#tree.listedInoChanges++;
    }
    this.#tree.upperInos.set(copied.ino, node.ino);
    node.upperIno = copied.ino;
    node.inUpper = true;
    this.#tree.forgetLowerStat(node);
    node.generation++;
    if (fileType(node.type) !== S_IFDIR) node.lowers = NO_LOWERS;
    node.parent?.noteUpperAdded(node.name, node.type);
    if (fileType(node.type) === S_IFDIR) node.listings.set('upper', new Map());
  }

  async #createCopy(type: number, source: string, temp: string, st: HostStat): Promise<void> {
    switch (fileType(type)) {
      case S_IFREG:
        // copyFile uses FICLONE (reflink) where the filesystem can, else copy_file_range in the
        // kernel: no data passes through JavaScript.
        await fsp.copyFile(source, temp, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
        return;
      case S_IFDIR:
        await fsp.mkdir(temp, { mode: 0o700 });
        return;
      case S_IFLNK:
        await fsp.symlink(await fsp.readlink(source, { encoding: 'buffer' }), temp);
        return;
      default:
        await native.mknod(temp, Number(st.mode), Number(st.rdev));
    }
  }

  /**
   * Copies up `node` and, for a directory, everything visible below it, ending with an upper tree
   * that no longer needs any lower layer. Used before a directory that has lower parts is renamed.
   */
  async copyUpTree(node: Node, lookupChildren: (dir: Node) => Promise<Node[]>): Promise<void> {
    await this.copyUp(node);
    if (fileType(node.type) !== S_IFDIR) return;
    for (const child of await lookupChildren(node)) await this.copyUpTree(child, lookupChildren);
  }

  /**
   * Writes a whiteout for `name` in the upper part of `dir` (which must already be copied up).
   * In the overlay form (and for a name too long for the `.wh.` prefix) it is a 0/0 character
   * device at the name itself, so the name must then be free in the upper (see usesMarkerFile).
   */
  async writeWhiteout(dir: Node, name: string): Promise<void> {
    if (this.usesMarkerFile(name)) {
      const marker = this.#tree.upperPath(dir.childPath(whiteoutName(name)));
      const handle = await fsp.open(marker, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o000);
      await handle.close();
      dir.noteUpperAdded(whiteoutName(name), S_IFREG, false);
    } else {
      await native.mknod(this.#tree.upperPath(dir.childPath(name)), S_IFCHR, 0);
      dir.noteUpperAdded(name, WHITEOUT_TYPE, false);
    }
    dir.merged?.delete(name);
    dir.entries = undefined;
  }

  /**
   * Removes the upper entry at `path` leaving a whiteout for `name` in one atomic step where no
   * `.wh.` marker is used (overlay form, or a name too long for one): renameat2(RENAME_WHITEOUT).
   */
  async replaceWithWhiteout(path: string): Promise<string> {
    const temp = this.tempPath('whiteout');
    await native.renameat2(path, temp, native.constants.RENAME_WHITEOUT);
    return temp;
  }

  async removeWhiteout(dir: Node, name: string): Promise<void> {
    if (!fitsOciMarker(name)) return;
    const marker = whiteoutName(name);
    // With the upper listing at hand, a marker that is not there needs no syscall.
    if (dir.listings.get('upper')?.has(marker) === false) return;
    await removeIfPresent(this.#tree.upperPath(dir.childPath(marker)));
    dir.noteUpperRemoved(marker, false);
  }

  /**
   * An overlay-form whiteout (0/0 character device) at `name` in the upper would block creating
   * the name. In the OCI form it becomes a `.wh.` marker first (or is dropped when the name is too
   * long for one); in the overlay form it is dropped: the new entry hides the lower one itself (a
   * new directory is made opaque), as in kernel overlayfs.
   */
  async clearOverlayWhiteout(dir: Node, name: string): Promise<void> {
    if (dir.listings.get('upper')?.has(name) === false) return;
    const path = this.#tree.upperPath(dir.childPath(name));
    const st = await fsp.lstat(path).catch(() => undefined);
    if (st === undefined || !isOverlayWhiteout(st.mode, st.rdev)) return;
    if (this.usesMarkerFile(name)) await this.writeWhiteout(dir, name);
    await fsp.unlink(path);
    dir.noteUpperRemoved(name, false);
  }

  /** Makes an upper directory opaque, so nothing of the lower layers shows inside it. */
  async makeOpaque(upperDirPath: string): Promise<void> {
    if (this.format === 'overlay') {
      await native.lsetxattr(upperDirPath, OVERLAY_OPAQUE_XATTR, Buffer.from(OVERLAY_OPAQUE_VALUE), 0);
      return;
    }
    const handle = await fsp.open(`${upperDirPath}/${OPAQUE_MARKER}`, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o000);
    await handle.close();
  }

  /**
   * Removes an upper directory that is empty in the merged view: all that may be left in it are
   * markers. It is first moved into the work directory so the name disappears atomically.
   */
  async removeUpperDir(upperDirPath: string): Promise<void> {
    const temp = this.tempPath('rmdir');
    await fsp.rename(upperDirPath, temp);
    await fsp.rm(temp, { recursive: true, force: true });
  }

  /** Moves an upper entry out of the tree into the work directory (for files still open). */
  async detach(upperPath: string): Promise<string> {
    const temp = this.tempPath('orphan');
    await fsp.rename(upperPath, temp);
    return temp;
  }
}

/** Owner, mode, xattrs and times of `st`/`source` onto `target`, in the order that keeps setuid. */
export async function applyMetadata(target: string, source: string, st: HostStat): Promise<void> {
  const type = fileType(Number(st.mode));
  await fsp.lchown(target, Number(st.uid), Number(st.gid));
  if (type !== S_IFLNK) await fsp.chmod(target, Number(st.mode) & 0o7777);
  await copyXattrs(source, target);
  await native.lutimens(target, nsToSpec(st.atimeNs), nsToSpec(st.mtimeNs));
}

async function copyXattrs(source: string, target: string): Promise<void> {
  let names: string[];
  try {
    names = await native.llistxattr(source);
  } catch (err) {
    if (isErrno(err, 'ENOTSUP', 'EOPNOTSUPP')) return;
    throw err;
  }
  for (const name of names) {
    if (isPrivateXattr(name)) continue;
    let value: Buffer;
    try {
      value = await native.lgetxattr(source, name);
    } catch (err) {
      if (isErrno(err, 'ENODATA')) continue;
      throw err;
    }
    await native.lsetxattr(target, name, value, 0);
  }
}

/** `.wh.` + name must itself fit in NAME_MAX (255 bytes). */
export function fitsOciMarker(name: string): boolean {
  return Buffer.byteLength(name) + 4 <= 255;
}

async function timesOf(path: string): Promise<{ path: string; st: BigIntStats } | undefined> {
  const st = await fsp.lstat(path, { bigint: true }).catch(() => undefined);
  return st === undefined ? undefined : { path, st };
}

async function restoreTimes(path: string, st: BigIntStats): Promise<void> {
  await native.lutimens(path, nsToSpec(st.atimeNs), nsToSpec(st.mtimeNs));
}

export function nsToSpec(ns: bigint): { sec: number; nsec: number } {
  const sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) nsec += 1_000_000_000n;
  return { sec: Number(ns < 0n && nsec !== 0n ? sec - 1n : sec), nsec: Number(nsec) };
}

export async function removeIfPresent(path: string): Promise<boolean> {
  try {
    await fsp.unlink(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

export function assertWritable(upper: LayerDir | undefined, syscall: string, path: string): asserts upper is LayerDir {
  if (upper === undefined) throw new FsError('EROFS', syscall, path);
}
