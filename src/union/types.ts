import { constants as fsc } from 'node:fs';

/**
 * The union engine's public contract. It is inode-based: every operation names nodes by their
 * inode number, as the kernel's FUSE protocol does, so a low-level transport can call it directly;
 * a path-based transport (fuse-native) resolves paths to inode numbers through `lookup` first.
 * Nothing here knows about FUSE, HTTP or image formats.
 */

/** Inode number of a node as shown to users; stable for the life of a mount. */
export type Ino = number;

/** The inode number of the mount's root directory. */
export const ROOT_INO: Ino = 1;

/** Whether open(2) flags may change a file's content (write access or O_TRUNC): such an open copies a lower file up. */
export function opensForWriting(flags: number): boolean {
  return (flags & (fsc.O_WRONLY | fsc.O_RDWR)) !== 0 || (flags & fsc.O_TRUNC) !== 0;
}

/** Who is asking: the credentials of the process behind a request. */
export interface Caller {
  uid: number;
  gid: number;
  pid: number;
}

/** A time as the kernel passes it: seconds and nanoseconds, or one of the special nsec values. */
export interface TimeSpec {
  sec: number;
  nsec: number;
}

/** Attributes of a node (what `stat` shows). Times are nanoseconds since the epoch. */
export interface Attr {
  /** The node's id: what the transport hands back to name this node in later calls. */
  ino: Ino;
  /**
   * The inode number to show in stat when it differs from the node id: all names of a file
   * hardlinked in a lower layer show one number, though each name is a node of its own.
   */
  stIno?: Ino;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** The changes `setattr` makes; absent fields stay as they are. */
export interface SetAttr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: TimeSpec;
  mtime?: TimeSpec;
}

export interface DirEntry {
  name: string;
  ino: Ino;
  /** File type bits (S_IFMT part of st_mode). */
  type: number;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

export interface OpenResult {
  /** Handle for read/write/release; always >= 1. */
  fh: number;
  /**
   * True when the kernel may keep cached pages across opens: the content is an immutable lower
   * file, so nothing can change it behind the kernel's back.
   */
  keepCache: boolean;
  /**
   * The host fd of the immutable lower file a read-only handle reads (absent for the upper and
   * for writable handles). A transport may hand it to the kernel to read the file directly; it
   * is valid until the handle is released.
   */
  lowerFd?: number;
}

export interface RenameFlags {
  noReplace?: boolean;
  exchange?: boolean;
}

/**
 * One async method per filesystem operation. Every rejection is an error with an errno `code`
 * (FsError or a Node system error); the transport maps it to an errno in one place.
 */
export interface UnionFs {
  lookup(parent: Ino, name: string): Promise<Attr>;
  /** Like lookup, but only resolves the name (no attributes): what path-based transports need. */
  resolve(parent: Ino, name: string): Promise<Ino>;
  getattr(ino: Ino, fh?: number): Promise<Attr>;
  setattr(ino: Ino, changes: SetAttr, fh?: number): Promise<Attr>;
  readlink(ino: Ino): Promise<string>;
  readdir(ino: Ino): Promise<DirEntry[]>;

  mkdir(parent: Ino, name: string, mode: number, caller: Caller): Promise<Attr>;
  mknod(parent: Ino, name: string, mode: number, rdev: number, caller: Caller): Promise<Attr>;
  symlink(parent: Ino, name: string, target: string, caller: Caller): Promise<Attr>;
  link(ino: Ino, newParent: Ino, newName: string): Promise<Attr>;
  unlink(parent: Ino, name: string): Promise<void>;
  rmdir(parent: Ino, name: string): Promise<void>;
  rename(parent: Ino, name: string, newParent: Ino, newName: string, flags?: RenameFlags): Promise<void>;

  open(ino: Ino, flags: number): Promise<OpenResult>;
  create(parent: Ino, name: string, mode: number, flags: number, caller: Caller): Promise<OpenResult & { attr: Attr }>;
  read(fh: number, buffer: Buffer, length: number, position: number): Promise<number>;
  write(fh: number, buffer: Buffer, length: number, position: number): Promise<number>;
  flush(fh: number): Promise<void>;
  fsync(fh: number, dataOnly: boolean): Promise<void>;
  release(fh: number): Promise<void>;

  getxattr(ino: Ino, name: string): Promise<Buffer>;
  setxattr(ino: Ino, name: string, value: Buffer, flags: number): Promise<void>;
  listxattr(ino: Ino): Promise<string[]>;
  removexattr(ino: Ino, name: string): Promise<void>;

  statfs(ino: Ino): Promise<StatFs>;
  access(ino: Ino, mask: number, caller: Caller): Promise<void>;

  /**
   * Whether a name the engine knows (and has not removed) shows inode `ino`: after a link
   * count changed, whether any name is left that a kernel may have cached.
   */
  hasNames(ino: Ino): boolean;
  /** Forgets a node that the transport no longer references (no-op for nodes still in use). */
  forget(ino: Ino): void;
  /**
   * Calls `listener` when a change to the tree begins and again when it has ended (failed or
   * not), both times while the change holds the tree exclusively: whoever keeps what the tree
   * looked like (a transport's cache of listings) knows to drop it.
   */
  onChange(listener: () => void): void;
  /**
   * Calls `listener` after a change that gave an existing name another inode number (a file
   * hardlinked in a lower layer, copied up), once the change no longer holds the tree; the
   * change completes when the returned promise settles. A name's number is in listings of its
   * directory, so whoever keeps listings drops them.
   */
  onInodeNumbersChanged(listener: () => Promise<void>): void;
  /** Holds all changes until the returned function is called (a consistent upper for commit). */
  freeze(): Promise<() => void>;
  /** Releases every handle and host resource. */
  close(): Promise<void>;
}
