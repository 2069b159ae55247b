import { constants as fsc, promises as fsp } from 'node:fs';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import { FsError, isErrno } from '../errors.js';
import { log } from '../log.js';
import * as native from '../native/index.js';
import { isPrivateXattr, isReservedName, whiteoutName } from '../oci/whiteout.js';
import { checkAccess, toAttr } from './attr.js';
import { compactStat } from './host-stat.js';
import { HandleTable, type OpenFile } from './handles.js';
import { LayerDir, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, fileType } from './layer-dir.js';
import { NO_LOWERS, type Node } from './node.js';
import { RwLock } from './rw-lock.js';
import { MergedTree, WHITEOUT_TYPE, checkName } from './tree.js';
import type { Attr, Caller, DirEntry, Ino, OpenResult, RenameFlags, SetAttr, StatFs, UnionFs } from './types.js';
import { ROOT_INO, opensForWriting } from './types.js';
import { type UpperFormat, UpperWriter, removeIfPresent } from './upper-writer.js';

const read = promisify(fs.read);
const write = promisify(fs.write);
const S_ISGID = 0o2000;
const ACCMODE = fsc.O_RDONLY | fsc.O_WRONLY | fsc.O_RDWR;
/** Flags that only mean something when a file is created; the engine handles creation itself. */
const CREATION_FLAGS = fsc.O_CREAT | fsc.O_EXCL | fsc.O_TRUNC | fsc.O_NOCTTY;

export interface UnionStack {
  /** Lower layer directories, top first. */
  lowers: string[];
  /** Writable upper directory; without it the mount is read-only. */
  upper?: string;
  /** Work directory on the upper's filesystem (required with `upper`). */
  workdir?: string;
  /** How whiteouts and opaque directories are written to the upper (default 'oci'; see UpperFormat). */
  upperFormat?: UpperFormat;
}

/** Opens the directories of a stack and returns the engine serving their merged view. */
export async function createUnionFs(stack: UnionStack): Promise<UnionEngine> {
  const opened: LayerDir[] = [];
  const open = (dir: string) => {
    const layer = LayerDir.open(dir);
    opened.push(layer);
    return layer;
  };
  try {
    const lowers = stack.lowers.map(open);
    const upper = stack.upper === undefined ? undefined : open(stack.upper);
    let work: LayerDir | undefined;
    if (upper !== undefined) {
      if (stack.workdir === undefined) throw new Error('a writable stack needs a work directory');
      work = open(stack.workdir);
      if (work.dev !== upper.dev) throw new FsError('EXDEV', 'mount', stack.workdir);
      if (stack.upperFormat === 'overlay') await UpperWriter.probeOverlayForm(work);
    }
    const tree = await MergedTree.create(upper, lowers);
    return new UnionEngine(tree, work, opened, stack.upperFormat ?? 'oci');
  } catch (err) {
    for (const layer of opened) layer.close();
    throw err;
  }
}

/**
 * The union filesystem: one async method per operation over a MergedTree. Reads share a lock;
 * changes to the upper take it alone. It knows nothing of FUSE; see types.ts for the contract.
 */
export class UnionEngine implements UnionFs {
  readonly #tree: MergedTree;
  readonly #writer: UpperWriter | undefined;
  readonly #handles = new HandleTable();
  readonly #lock = new RwLock();
  readonly #changeListeners: Array<() => void> = [];
  readonly #renumberListeners: Array<() => Promise<void>> = [];
  readonly #layers: LayerDir[];
  /** Data writes in progress, and the gate they wait at while the upper is frozen. */
  #writesInFlight = 0;
  #writesDrained: (() => void) | undefined;
  #frozen: Promise<void> | undefined;

  constructor(tree: MergedTree, work: LayerDir | undefined, layers: LayerDir[], upperFormat: UpperFormat = 'oci') {
    this.#tree = tree;
    this.#writer = work === undefined ? undefined : new UpperWriter(tree, work, upperFormat);
    this.#layers = layers;
  }

  get readOnly(): boolean {
    return this.#writer === undefined;
  }

  // ---- lookups and attributes -------------------------------------------------------------

  lookup(parent: Ino, name: string): Promise<Attr> {
    return this.#lock.read(async () => {
      const dir = this.#node(parent, 'lookup');
      const node = await this.#tree.lookup(dir, name);
      if (node === undefined) throw new FsError('ENOENT', 'lookup', dir.childPath(name));
      return this.#attr(node);
    });
  }

  resolve(parent: Ino, name: string): Promise<Ino> {
    return this.#lock.read(async () => {
      const dir = this.#node(parent, 'lookup');
      const node = await this.#tree.lookup(dir, name);
      if (node === undefined) throw new FsError('ENOENT', 'lookup', dir.childPath(name));
      return node.ino;
    });
  }

  getattr(ino: Ino, fh?: number): Promise<Attr> {
    return this.#lock.read(async () => {
      const file = fh === undefined ? undefined : this.#handles.get(fh);
      if (file !== undefined) return this.#attr(file.node, file);
      return this.#attr(this.#node(ino, 'getattr'));
    });
  }

  async #attr(node: Node, file?: OpenFile): Promise<Attr> {
    if (node.unlinked) {
      const open = file ?? this.#handles.all().find((f) => f.node === node);
      if (open !== undefined) return toAttr(node, compactStat(await fstat(open.fd)));
    }
    return toAttr(node, await this.#tree.lstat(node));
  }

  readlink(ino: Ino): Promise<string> {
    return this.#lock.read(async () => {
      const node = this.#node(ino, 'readlink');
      if (fileType(node.type) !== S_IFLNK) throw new FsError('EINVAL', 'readlink', node.relPath);
      return fsp.readlink(this.#tree.backing(node).path);
    });
  }

  readdir(ino: Ino): Promise<DirEntry[]> {
    return this.#lock.read(async () => {
      const dir = this.#node(ino, 'readdir');
      if (fileType(dir.type) !== S_IFDIR) throw new FsError('ENOTDIR', 'readdir', dir.relPath);
      if (dir.entries !== undefined) return dir.entries;
      const merged = await this.#tree.merged(dir);
      const entries: DirEntry[] = [
        { name: '.', ino: dir.ino, type: S_IFDIR },
        { name: '..', ino: (dir.parent ?? dir).ino, type: S_IFDIR },
      ];
      // Inode numbers come from looking each name up, so readdir and stat always agree.
      const names = [...merged.keys()];
      const batch = 64;
      for (let i = 0; i < names.length; i += batch) {
        const nodes = await Promise.all(names.slice(i, i + batch).map((name) => this.#tree.lookup(dir, name)));
        for (const node of nodes) {
          if (node !== undefined) entries.push({ name: node.name, ino: node.statIno ?? node.ino, type: fileType(node.type) });
        }
      }
      // Kept only if nothing changed meanwhile (a change clears dir.entries and dir.merged).
      if (dir.merged === merged) dir.entries = entries;
      return entries;
    });
  }

  statfs(ino: Ino): Promise<StatFs> {
    return this.#lock.read(async () => {
      this.#node(ino, 'statfs');
      const top = this.#tree.upper ?? this.#tree.lowers[0];
      if (top === undefined) throw new FsError('EIO', 'statfs');
      const st = await fsp.statfs(top.host(''));
      return {
        bsize: st.bsize,
        frsize: st.bsize,
        blocks: st.blocks,
        bfree: st.bfree,
        bavail: st.bavail,
        files: st.files,
        ffree: st.ffree,
        favail: st.ffree,
        fsid: 0,
        flag: 0,
        namemax: 255,
      };
    });
  }

  access(ino: Ino, mask: number, caller: Caller): Promise<void> {
    return this.#lock.read(async () => {
      const node = this.#node(ino, 'access');
      if ((mask & fsc.W_OK) !== 0 && this.readOnly) throw new FsError('EROFS', 'access', node.relPath);
      checkAccess(await this.#attr(node), mask, caller, node.relPath);
    });
  }

  // ---- extended attributes ----------------------------------------------------------------

  getxattr(ino: Ino, name: string): Promise<Buffer> {
    return this.#lock.read(async () => {
      const node = this.#node(ino, 'getxattr');
      if (isPrivateXattr(name)) throw new FsError('ENODATA', 'getxattr', node.relPath);
      return native.lgetxattr(this.#pathOf(node), name);
    });
  }

  listxattr(ino: Ino): Promise<string[]> {
    return this.#lock.read(async () => {
      const node = this.#node(ino, 'listxattr');
      const names = await native.llistxattr(this.#pathOf(node));
      return names.filter((name) => !isPrivateXattr(name));
    });
  }

  setxattr(ino: Ino, name: string, value: Buffer, flags: number): Promise<void> {
    return this.#mutate('setxattr', async (writer) => {
      const node = this.#node(ino, 'setxattr');
      if (isPrivateXattr(name)) throw new FsError('EPERM', 'setxattr', node.relPath);
      await writer.copyUp(node);
      await native.lsetxattr(this.#tree.upperPath(node.relPath), name, value, flags);
    });
  }

  removexattr(ino: Ino, name: string): Promise<void> {
    return this.#mutate('removexattr', async (writer) => {
      const node = this.#node(ino, 'removexattr');
      if (isPrivateXattr(name)) throw new FsError('ENODATA', 'removexattr', node.relPath);
      // A missing attribute is ENODATA without copying anything up.
      await native.lgetxattr(this.#pathOf(node), name);
      await writer.copyUp(node);
      await native.lremovexattr(this.#tree.upperPath(node.relPath), name);
    });
  }

  // ---- changing attributes ----------------------------------------------------------------

  setattr(ino: Ino, changes: SetAttr, fh?: number): Promise<Attr> {
    return this.#mutate('setattr', async (writer) => {
      const file = fh === undefined ? undefined : this.#handles.get(fh);
      const node = file?.node ?? this.#node(ino, 'setattr');
      await writer.copyUp(node);
      const path = this.#pathOf(node);
      const isLink = fileType(node.type) === S_IFLNK;
      if (changes.uid !== undefined || changes.gid !== undefined) {
        await fsp.lchown(path, changes.uid ?? -1, changes.gid ?? -1);
      }
      if (changes.mode !== undefined && !isLink) await fsp.chmod(path, changes.mode & 0o7777);
      if (changes.size !== undefined) {
        if (fileType(node.type) === S_IFDIR) throw new FsError('EISDIR', 'truncate', node.relPath);
        if (file !== undefined && file.writable) await ftruncate(file.fd, changes.size);
        else await fsp.truncate(path, changes.size);
      }
      if (changes.atime !== undefined || changes.mtime !== undefined) {
        const omit = { sec: 0, nsec: native.constants.UTIME_OMIT };
        await native.lutimens(path, changes.atime ?? omit, changes.mtime ?? omit);
      }
      return this.#attr(node, file);
    });
  }

  // ---- creating names ---------------------------------------------------------------------

  mkdir(parent: Ino, name: string, mode: number, caller: Caller): Promise<Attr> {
    return this.#mutate('mkdir', async (writer) => {
      const dir = await this.#prepareCreate(parent, name, 'mkdir', writer);
      const temp = writer.tempPath('mkdir');
      await fsp.mkdir(temp, { mode: 0o700 });
      try {
        const owner = await this.#ownerFor(dir, caller);
        await fsp.chown(temp, owner.uid, owner.gid);
        await fsp.chmod(temp, (mode & 0o7777) | (owner.inheritGid ? S_ISGID : 0));
        // A directory made where a lower layer has the name must not show the lower content.
        if (await this.#lowerHas(dir, name)) await writer.makeOpaque(temp);
        await native.renameat2(temp, this.#tree.upperPath(dir.childPath(name)), native.constants.RENAME_NOREPLACE);
      } catch (err) {
        await fsp.rm(temp, { recursive: true, force: true });
        throw err;
      }
      return this.#finishCreate(dir, name, writer, S_IFDIR);
    });
  }

  mknod(parent: Ino, name: string, mode: number, rdev: number, caller: Caller): Promise<Attr> {
    return this.#mutate('mknod', async (writer) => {
      const dir = await this.#prepareCreate(parent, name, 'mknod', writer);
      const path = this.#tree.upperPath(dir.childPath(name));
      const type = fileType(mode) === 0 ? S_IFREG : fileType(mode);
      // A 0/0 character device is how overlay layers spell a whiteout (kernel overlayfs: EPERM).
      if (type === S_IFCHR && rdev === 0) throw new FsError('EPERM', 'mknod', dir.childPath(name));
      await native.mknod(path, type | (mode & 0o7777), rdev);
      await this.#own(path, dir, caller, mode);
      return this.#finishCreate(dir, name, writer, type);
    });
  }

  symlink(parent: Ino, name: string, target: string, caller: Caller): Promise<Attr> {
    return this.#mutate('symlink', async (writer) => {
      const dir = await this.#prepareCreate(parent, name, 'symlink', writer);
      const path = this.#tree.upperPath(dir.childPath(name));
      await fsp.symlink(target, path);
      const owner = await this.#ownerFor(dir, caller);
      await fsp.lchown(path, owner.uid, owner.gid);
      return this.#finishCreate(dir, name, writer, S_IFLNK);
    });
  }

  create(parent: Ino, name: string, mode: number, flags: number, caller: Caller): Promise<OpenResult & { attr: Attr }> {
    return this.#mutate('create', async (writer) => {
      const dir = await this.#prepareCreate(parent, name, 'create', writer);
      const path = this.#tree.upperPath(dir.childPath(name));
      const openFlags = (flags & ~CREATION_FLAGS & ~ACCMODE) | fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
      const fd = await openFd(path, openFlags, mode & 0o7777);
      try {
        await this.#own(path, dir, caller, mode);
        const attr = await this.#finishCreate(dir, name, writer, S_IFREG);
        const node = this.#node(attr.ino, 'create');
        node.openCount++;
        const fh = this.#handles.add({ node, fd, flags, writable: true, generation: node.generation });
        return { fh, keepCache: false, attr };
      } catch (err) {
        await closeFd(fd);
        throw err;
      }
    });
  }

  link(ino: Ino, newParent: Ino, newName: string): Promise<Attr> {
    return this.#mutate('link', async (writer) => {
      const node = this.#node(ino, 'link');
      if (fileType(node.type) === S_IFDIR) throw new FsError('EPERM', 'link', node.relPath);
      const dir = await this.#prepareCreate(newParent, newName, 'link', writer);
      await writer.copyUp(node);
      await fsp.link(this.#tree.upperPath(node.relPath), this.#tree.upperPath(dir.childPath(newName)));
      return this.#finishCreate(dir, newName, writer, node.type);
    });
  }

  /** Checks a new name and makes sure its directory is in the upper. */
  async #prepareCreate(parent: Ino, name: string, syscall: string, writer: UpperWriter): Promise<Node> {
    const dir = this.#node(parent, syscall);
    if (fileType(dir.type) !== S_IFDIR) throw new FsError('ENOTDIR', syscall, dir.childPath(name));
    checkName(name, syscall, dir);
    if (isReservedName(name)) throw new FsError('EINVAL', syscall, dir.childPath(name));
    if (dir.unlinked) throw new FsError('ENOENT', syscall, dir.childPath(name));
    if ((await this.#tree.lookup(dir, name)) !== undefined) throw new FsError('EEXIST', syscall, dir.childPath(name));
    await writer.copyUp(dir);
    await writer.clearOverlayWhiteout(dir, name);
    return dir;
  }

  /** After a new upper entry exists: drop a now-redundant whiteout and return the new node. */
  async #finishCreate(dir: Node, name: string, writer: UpperWriter, type: number): Promise<Attr> {
    await writer.removeWhiteout(dir, name);
    this.#tree.noteCreated(dir, name, type);
    const node = await this.#tree.lookup(dir, name);
    if (node === undefined) throw new FsError('EIO', 'create', dir.childPath(name));
    return this.#attr(node);
  }

  async #ownerFor(dir: Node, caller: Caller): Promise<{ uid: number; gid: number; inheritGid: boolean }> {
    const st = await this.#tree.lstat(dir);
    const setgid = (Number(st.mode) & S_ISGID) !== 0;
    return { uid: caller.uid, gid: setgid ? Number(st.gid) : caller.gid, inheritGid: setgid };
  }

  /** Gives a new entry the caller's ownership, then its mode (chown clears setuid bits). */
  async #own(path: string, dir: Node, caller: Caller, mode: number): Promise<void> {
    const owner = await this.#ownerFor(dir, caller);
    await fsp.lchown(path, owner.uid, owner.gid);
    await fsp.chmod(path, mode & 0o7777);
  }

  async #lowerHas(dir: Node, name: string): Promise<boolean> {
    for (const source of dir.lowers) {
      const type = (await this.#tree.listing(dir, source)).get(name);
      if (type !== undefined && type !== WHITEOUT_TYPE) return true;
    }
    return false;
  }

  // ---- removing and renaming --------------------------------------------------------------

  unlink(parent: Ino, name: string): Promise<void> {
    return this.#mutate('unlink', async (writer) => {
      const dir = this.#node(parent, 'unlink');
      const node = await this.#existing(dir, name, 'unlink');
      if (fileType(node.type) === S_IFDIR) throw new FsError('EISDIR', 'unlink', node.relPath);
      await writer.copyUp(dir);
      if (node.inUpper) await this.#tree.releaseUpperIno(node);
      const path = this.#tree.upperPath(node.relPath);
      if (node.inUpper && node.lowerPresent && !writer.usesMarkerFile(name)) {
        const moved = await writer.replaceWithWhiteout(path);
        dir.noteUpperAdded(name, WHITEOUT_TYPE, false);
        if (node.openCount > 0) node.orphanPath = moved;
        else await fsp.unlink(moved);
      } else {
        // Marker first: it never hides its own layer, so a crash between the steps loses nothing.
        if (node.inUpper) {
          if (node.lowerPresent) await writer.writeWhiteout(dir, name);
          if (node.openCount > 0) node.orphanPath = await writer.detach(path);
          else await fsp.unlink(path);
          dir.listings.get('upper')?.delete(name);
        } else if (node.lowerPresent) {
          await writer.writeWhiteout(dir, name);
        }
      }
      this.#tree.forgetChild(dir, name);
    });
  }

  rmdir(parent: Ino, name: string): Promise<void> {
    return this.#mutate('rmdir', async (writer) => {
      const dir = this.#node(parent, 'rmdir');
      const node = await this.#existing(dir, name, 'rmdir');
      if (fileType(node.type) !== S_IFDIR) throw new FsError('ENOTDIR', 'rmdir', node.relPath);
      if ((await this.#tree.merged(node)).size > 0) throw new FsError('ENOTEMPTY', 'rmdir', node.relPath);
      await writer.copyUp(dir);
      const path = this.#tree.upperPath(node.relPath);
      if (node.inUpper) await this.#tree.releaseUpperIno(node);
      if (node.inUpper && node.lowerPresent && !writer.usesMarkerFile(name)) {
        await fsp.rm(await writer.replaceWithWhiteout(path), { recursive: true, force: true });
        dir.noteUpperAdded(name, WHITEOUT_TYPE, false);
      } else if (node.inUpper) {
        if (node.lowerPresent) await writer.writeWhiteout(dir, name);
        await writer.removeUpperDir(path);
        dir.listings.get('upper')?.delete(name);
      } else if (node.lowerPresent) {
        await writer.writeWhiteout(dir, name);
      }
      this.#tree.forgetChild(dir, name);
    });
  }

  rename(parent: Ino, name: string, newParent: Ino, newName: string, flags: RenameFlags = {}): Promise<void> {
    return this.#mutate('rename', async (writer) => {
      if (flags.exchange === true) throw new FsError('EINVAL', 'rename');
      const fromDir = this.#node(parent, 'rename');
      const toDir = this.#node(newParent, 'rename');
      checkName(newName, 'rename', toDir);
      if (isReservedName(newName)) throw new FsError('EINVAL', 'rename', toDir.childPath(newName));
      const src = await this.#existing(fromDir, name, 'rename');
      for (let n: Node | null = toDir; n !== null; n = n.parent) {
        if (n === src) throw new FsError('EINVAL', 'rename', toDir.childPath(newName));
      }
      const dst = await this.#tree.lookup(toDir, newName);
      if (dst === src) return;
      if (dst !== undefined) {
        if (flags.noReplace === true) throw new FsError('EEXIST', 'rename', dst.relPath);
        await this.#checkReplace(src, dst);
      }
      const srcIsDir = fileType(src.type) === S_IFDIR;
      const dstLowerPresent = dst !== undefined ? dst.lowerPresent : await this.#lowerHas(toDir, newName);

      await writer.copyUp(fromDir);
      await writer.copyUp(toDir);
      if (srcIsDir && src.lowers.length > 0) {
        // The directory's lower parts cannot move with it: copy the whole subtree up, then make
        // it opaque so it no longer depends on (or merges with) any lower layer.
        await writer.copyUpTree(src, (d) => this.#children(d));
      } else {
        await writer.copyUp(src);
      }
      const srcPath = this.#tree.upperPath(src.relPath);
      const dstPath = this.#tree.upperPath(toDir.childPath(newName));
      if (srcIsDir && (src.lowers.length > 0 || dstLowerPresent)) await writer.makeOpaque(srcPath);
      // The whiteout for the old name is a `.wh.` file written first, or (overlay form, names too
      // long for the prefix) a 0/0 device left by the rename itself.
      const whiteoutAtName = src.lowerPresent && !writer.usesMarkerFile(name);
      if (src.lowerPresent && !whiteoutAtName) await writer.writeWhiteout(fromDir, name);

      if (dst !== undefined && dst.inUpper) await this.#tree.releaseUpperIno(dst);
      if (dst !== undefined && dst.inUpper && fileType(dst.type) === S_IFDIR) {
        // An upper directory that is empty in the merged view may still hold markers, which
        // rename(2) would refuse to replace: swap atomically, then drop the old one.
        await native.renameat2(srcPath, dstPath, native.constants.RENAME_EXCHANGE);
        await writer.removeUpperDir(srcPath);
        if (whiteoutAtName) await writer.writeWhiteout(fromDir, name);
      } else {
        if (dst !== undefined && dst.inUpper && dst.openCount > 0) dst.orphanPath = await writer.detach(dstPath);
        // A directory cannot replace a 0/0 device (a whiteout of the new name) in one rename(2).
        if (dst === undefined && srcIsDir) await writer.clearOverlayWhiteout(toDir, newName);
        await native.renameat2(srcPath, dstPath, whiteoutAtName ? native.constants.RENAME_WHITEOUT : 0);
      }
      if (!srcIsDir) await removeIfPresent(this.#tree.upperPath(toDir.childPath(whiteoutName(newName))));

      this.#tree.forgetChild(toDir, newName);
      fromDir.children.delete(name);
      fromDir.invalidateListing();
      src.parent = toDir;
      src.name = newName;
      src.lowerPresent = dstLowerPresent;
      if (srcIsDir && src.lowers.length > 0) detachFromLowers(src, this.#tree);
      toDir.children.set(newName, src);
      toDir.invalidateListing();
    });
  }

  async #checkReplace(src: Node, dst: Node): Promise<void> {
    const srcIsDir = fileType(src.type) === S_IFDIR;
    const dstIsDir = fileType(dst.type) === S_IFDIR;
    if (srcIsDir && !dstIsDir) throw new FsError('ENOTDIR', 'rename', dst.relPath);
    if (!srcIsDir && dstIsDir) throw new FsError('EISDIR', 'rename', dst.relPath);
    if (dstIsDir && (await this.#tree.merged(dst)).size > 0) throw new FsError('ENOTEMPTY', 'rename', dst.relPath);
  }

  async #children(dir: Node): Promise<Node[]> {
    const nodes: Node[] = [];
    for (const name of (await this.#tree.merged(dir)).keys()) {
      const child = await this.#tree.lookup(dir, name);
      if (child !== undefined) nodes.push(child);
    }
    return nodes;
  }

  async #existing(dir: Node, name: string, syscall: string): Promise<Node> {
    if (fileType(dir.type) !== S_IFDIR) throw new FsError('ENOTDIR', syscall, dir.childPath(name));
    const node = await this.#tree.lookup(dir, name);
    if (node === undefined) throw new FsError('ENOENT', syscall, dir.childPath(name));
    return node;
  }

  // ---- open files -------------------------------------------------------------------------

  open(ino: Ino, flags: number): Promise<OpenResult> {
    const wantsWrite = opensForWriting(flags);
    const run = async (): Promise<OpenResult> => {
      const node = this.#node(ino, 'open');
      if (fileType(node.type) === S_IFDIR && wantsWrite) throw new FsError('EISDIR', 'open', node.relPath);
      if (wantsWrite) await this.#writer!.copyUp(node);
      const path = this.#pathOf(node);
      const fd = await openFd(path, (flags & ~CREATION_FLAGS) | fsc.O_NOFOLLOW, 0);
      if ((flags & fsc.O_TRUNC) !== 0) await ftruncate(fd, 0);
      node.openCount++;
      const fh = this.#handles.add({ node, fd, flags, writable: wantsWrite, generation: node.generation });
      return node.inUpper || wantsWrite ? { fh, keepCache: false } : { fh, keepCache: true, lowerFd: fd };
    };
    if (!wantsWrite) return this.#lock.read(run);
    return this.#mutate('open', () => run());
  }

  async read(fh: number, buffer: Buffer, length: number, position: number): Promise<number> {
    const file = this.#file(fh, 'read');
    if (!file.writable && file.generation !== file.node.generation && !file.node.unlinked) await this.#reopen(file);
    let total = 0;
    while (total < length) {
      const { bytesRead } = await read(file.fd, buffer, total, length - total, position + total);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
    return total;
  }

  /** A read-only fd opened on the lower copy moves to the upper copy after a copy-up. */
  async #reopen(file: OpenFile): Promise<void> {
    const fd = await openFd(this.#pathOf(file.node), fsc.O_RDONLY | fsc.O_NOFOLLOW, 0);
    const old = file.fd;
    file.fd = fd;
    file.generation = file.node.generation;
    await closeFd(old);
  }

  async write(fh: number, buffer: Buffer, length: number, position: number): Promise<number> {
    const file = this.#file(fh, 'write');
    if (!file.writable) throw new FsError('EBADF', 'write', file.node.relPath);
    while (this.#frozen !== undefined) await this.#frozen;
    this.#writesInFlight++;
    try {
      let total = 0;
      while (total < length) {
        const { bytesWritten } = await write(file.fd, buffer, total, length - total, position + total);
        total += bytesWritten;
      }
      return total;
    } finally {
      if (--this.#writesInFlight === 0) this.#writesDrained?.();
    }
  }

  /**
   * Holds every change to the upper (metadata under the exclusive lock, data writes at a gate)
   * until the returned function is called, once the changes already under way are complete: a
   * reader of the upper directory then sees a consistent state (`layerfs commit` of a mount).
   */
  async freeze(): Promise<() => void> {
    let thaw!: () => void;
    const thawed = new Promise<void>((resolve) => (thaw = resolve));
    const frozen = new Promise<void>((resolveFrozen) => {
      void this.#lock.write(async () => {
        this.#frozen = thawed;
        while (this.#writesInFlight > 0) await new Promise<void>((resolve) => (this.#writesDrained = resolve));
        this.#writesDrained = undefined;
        resolveFrozen();
        await thawed;
        this.#frozen = undefined;
      });
    });
    await frozen;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      thaw();
    };
  }

  async flush(fh: number): Promise<void> {
    this.#file(fh, 'flush');
  }

  async fsync(fh: number, dataOnly: boolean): Promise<void> {
    const file = this.#file(fh, 'fsync');
    await new Promise<void>((resolve, reject) =>
      (dataOnly ? fs.fdatasync : fs.fsync)(file.fd, (err) => (err ? reject(err) : resolve())),
    );
  }

  async release(fh: number): Promise<void> {
    const file = this.#handles.delete(fh);
    if (file === undefined) return;
    await closeFd(file.fd);
    const node = file.node;
    node.openCount--;
    if (node.openCount === 0 && node.unlinked && node.orphanPath !== undefined) {
      await removeIfPresent(node.orphanPath);
      node.orphanPath = undefined;
    }
  }

  hasNames(ino: Ino): boolean {
    return this.#tree.nodes.names(ino).some((node) => !node.unlinked);
  }

  /**
   * Nodes in the tree are kept for the life of the mount (that keeps inode numbers stable); a
   * removed node is dropped once the transport forgets it and nothing has it open.
   */
  forget(ino: Ino): void {
    for (const node of this.#tree.nodes.names(ino)) {
      if (node.unlinked && node.openCount === 0) this.#tree.nodes.remove(node);
    }
  }

  onChange(listener: () => void): void {
    this.#changeListeners.push(listener);
  }

  onInodeNumbersChanged(listener: () => Promise<void>): void {
    this.#renumberListeners.push(listener);
  }

  async close(): Promise<void> {
    for (const file of this.#handles.all()) await closeFd(file.fd).catch(() => undefined);
    for (const layer of this.#layers) layer.close();
  }

  // ---- helpers ----------------------------------------------------------------------------

  #node(ino: Ino, syscall: string): Node {
    const node = this.#tree.nodes.get(ino);
    if (node === undefined) throw new FsError(ino === ROOT_INO ? 'EIO' : 'ENOENT', syscall);
    return node;
  }

  #file(fh: number, syscall: string): OpenFile {
    const file = this.#handles.get(fh);
    if (file === undefined) throw new FsError('EBADF', syscall);
    return file;
  }

  #pathOf(node: Node): string {
    if (node.unlinked && node.orphanPath !== undefined) return node.orphanPath;
    return this.#tree.backing(node).path;
  }

  async #mutate<T>(syscall: string, fn: (writer: UpperWriter) => Promise<T>): Promise<T> {
    const writer = this.#writer;
    if (writer === undefined) throw new FsError('EROFS', syscall);
    let renumbered = false;
    try {
      return await this.#lock.write(async () => {
        const before = this.#tree.listedInoChanges;
        this.#changed();
        try {
          return await fn(writer);
        } finally {
          this.#changed();
          renumbered = this.#tree.listedInoChanges !== before;
        }
      });
    } finally {
      if (renumbered) await this.#inodeNumbersChanged();
    }
  }

  async #inodeNumbersChanged(): Promise<void> {
    for (const listener of this.#renumberListeners) {
      await listener().catch((err: unknown) => log.error('inode number listener failed', { err }));
    }
  }

  #changed(): void {
    for (const listener of this.#changeListeners) {
      try {
        listener();
      } catch (err) {
        log.error('change listener failed', { err });
      }
    }
  }
}

/** After a directory was copied up whole and made opaque, nothing below it refers to lowers. */
function detachFromLowers(dir: Node, tree: MergedTree): void {
  dir.lowers = NO_LOWERS;
  dir.listings.clear();
  dir.merged = undefined;
  for (const child of dir.children.values()) {
    child.lowerPresent = false;
    tree.forgetLowerStat(child);
    if (fileType(child.type) === S_IFDIR) detachFromLowers(child, tree);
    else child.lowers = NO_LOWERS;
  }
}

function openFd(path: string, flags: number, mode: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

function ftruncate(fd: number, size: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, size, (err) => (err ? reject(err) : resolve())));
}

function fstat(fd: number): Promise<fs.BigIntStats> {
  return new Promise((resolve, reject) => fs.fstat(fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st))));
}

export { isErrno };
