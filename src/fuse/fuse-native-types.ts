// Types for fuse-native 2.2.6 as PATCHED by layerfs (patches/fuse-native+2.2.6.patch,
// applied and rebuilt by scripts/native/patch-fuse-native.mjs). They do NOT describe the
// upstream package: several handler signatures differ (create, utimens, getxattr,
// listxattr, setxattr, read/write offsets, open flags, fgetattr). Types only: this module
// has no runtime code.
//
// Usage:
//   import { createRequire } from 'node:module';
//   import type { FuseConstructor, FuseOps, FuseStat } from './fuse-native-types.js';
//   const Fuse = createRequire(import.meta.url)('fuse-native') as FuseConstructor;
//   const fuse = new Fuse(mountpoint, ops, { timeout: false, options: ['use_ino'] });
//
// Conventions shared by all handlers
// - Every handler gets a node-style callback; call it exactly once. Extra calls are ignored.
// - Errors: pass a negative errno (Fuse.ENOENT === -2), or a Node system error (its
//   `errno`, e.g. -2, or `code`, e.g. 'ENOENT', is used), or anything else -> EIO.
//   0 / null / undefined mean success.
// - A handler that throws synchronously answers EIO (reported via opts.onHandlerError or a
//   process warning); errors thrown later (in async code) are your own problem.
// - Paths are absolute inside the mount ('/a/b'), decoded as UTF-8 (invalid byte sequences
//   are replaced, so non-UTF-8 names cannot round-trip). A path is `null` only when
//   libfuse has none: with `nullpathOk`/`nopath`, for file-handle ops (e.g. on unlinked
//   files with hard_remove). Without those options paths are always strings; type your
//   ops as FuseOperations<true> when you enable them.
// - File handles (`fd`) are whatever open/create/opendir returned: any integer in
//   0..2^53-1 (0 is a valid handle). -1 only if libfuse supplied no file info (libfuse 2.9
//   never does that for the ops below that take an fd).
// - Timeouts are OFF by default (the upstream 15 s auto-ETIMEDOUT is disabled); keep it so.
// - The caller's uid/gid/pid (e.g. to own files made by create/mkdir/mknod/symlink) come
//   from fuse.getContext(), called synchronously at the start of the handler.

/** errno-style result: 0 for success, a negative errno for failure. */
export type Errno = number;
export type ErrLike = Errno | NodeJS.ErrnoException | Error | null | undefined;
export type Cb = (err: ErrLike) => void;

/**
 * Time value accepted in stats. Cheapest: `{ sec, nsec }`. A Date has millisecond
 * precision; a number is milliseconds since the epoch; a bigint is nanoseconds.
 */
export type FuseTime = { sec: number | bigint; nsec: number } | Date | bigint | number;

/**
 * Stat record returned by getattr/fgetattr/readdir. Missing fields are 0 (nlink: 1,
 * times: 1970). Numbers or bigints are accepted everywhere (so `fs.lstat(p, { bigint:
 * true })` results work as-is; their `atimeNs/mtimeNs/ctimeNs` take precedence over
 * `atime/mtime/ctime`). 64-bit fields: size, dev, nlink, ino, rdev, blksize, blocks,
 * time seconds. Note the kernel protocol itself narrows nlink, rdev and blksize to 32
 * bits and ignores dev (the mount has its own st_dev).
 *
 * `ino` is only visible to callers with the `useIno` option (else libfuse substitutes
 * its own node ids); in readdir it becomes d_ino under the same condition. The `mode`
 * type bits become d_type in readdir.
 *
 * A pre-encoded record from `Fuse.encodeStat(stat)` (Uint32Array) is accepted wherever
 * a stat is: useful to cache encoded stats. Do not mutate it after passing it.
 */
export interface FuseStat {
  mode: number | bigint;
  uid?: number | bigint;
  gid?: number | bigint;
  size?: number | bigint;
  dev?: number | bigint;
  nlink?: number | bigint;
  ino?: number | bigint;
  rdev?: number | bigint;
  blksize?: number | bigint;
  blocks?: number | bigint;
  atime?: FuseTime;
  mtime?: FuseTime;
  ctime?: FuseTime;
  atimeNs?: bigint;
  mtimeNs?: bigint;
  ctimeNs?: bigint;
}
export type StatLike = FuseStat | Uint32Array;

/**
 * statfs result; all fields 64-bit. Defaults: frsize = bsize, favail = ffree,
 * namemax = 255, others 0. (fsid and flag are not carried by the FUSE protocol.)
 */
export interface FuseStatfs {
  bsize?: number | bigint;
  frsize?: number | bigint;
  blocks?: number | bigint;
  bfree?: number | bigint;
  bavail?: number | bigint;
  files?: number | bigint;
  ffree?: number | bigint;
  favail?: number | bigint;
  fsid?: number | bigint;
  flag?: number | bigint;
  namemax?: number | bigint;
}

/**
 * utimens time: `nsec` may be Fuse.UTIME_NOW (set to current time) or Fuse.UTIME_OMIT
 * (leave unchanged), the <sys/stat.h> values; `sec` is then meaningless (0).
 */
export interface FuseTimespec {
  sec: number;
  nsec: number;
}

/** Identity of the process that issued the current request (see Fuse#getContext). */
export interface FuseContext {
  uid: number;
  gid: number;
  /** Thread id of the caller (the kernel reports the task id, not the tgid). */
  pid: number;
  umask: number;
  /**
   * The kernel inode the request is about, as libfuse's node id (0 when the binding does not
   * wrap the channel), and whether it is that node's renewed kernel inode (renewNode). Patched.
   */
  node?: number;
  renewed?: boolean;
}

/** Per-open result flags (bitwise OR of Fuse.OPEN_*). */
export type OpenFlags = number;
export type OpenCb = (err: ErrLike, fd?: number, openFlags?: OpenFlags) => void;
/** open's callback: with Fuse.OPEN_PASSTHROUGH, `backingId` comes from FuseInstance#openBacking. */
export type FileOpenCb = (err: ErrLike, fd?: number, openFlags?: OpenFlags, backingId?: number) => void;
export type StatCb = (err: ErrLike, stat?: StatLike) => void;
/** read/write result: cb(bytes) or cb(-errno); cb(null, bytes) is accepted too. */
export type IoCb = (result: number | ErrLike, bytes?: number) => void;

/**
 * Path type of handlers that may receive a null path: `string` normally, `string | null`
 * for a filesystem mounted with `nullpathOk` or `nopath` (use `FuseOperations<true>`).
 */
export type FusePath<Nullable extends boolean> = Nullable extends true ? string | null : string;

export interface FuseOperations<Nullable extends boolean = false> {
  /** Called once when the kernel connection is set up (before mount's callback resolves). */
  init?(cb: Cb): void;
  access?(path: string, mode: number, cb: Cb): void;
  statfs?(path: string, cb: (err: ErrLike, statfs?: FuseStatfs) => void): void;
  /**
   * Without getattr only '/' exists (as an empty 0755 directory). Hot path: keep cheap
   * ({ sec, nsec } times or a cached Fuse.encodeStat() record are the fastest).
   */
  getattr?(path: string, cb: StatCb): void;
  /**
   * fstat()/ftruncate() on an open file (the kernel sends the handle when attributes
   * must be refetched). Falls back to getattr(path) when not provided.
   */
  fgetattr?(path: FusePath<Nullable>, fd: number, cb: StatCb): void;
  flush?(path: FusePath<Nullable>, fd: number, cb: Cb): void;
  fsync?(path: FusePath<Nullable>, datasync: number, fd: number, cb: Cb): void;
  fsyncdir?(path: FusePath<Nullable>, datasync: number, fd: number, cb: Cb): void;
  /**
   * List a directory (entries other than '.'/'..' are up to you; libfuse adds
   * nothing). `stats` (same length as names) is optional; only mode (-> d_type) and ino
   * (-> d_ino, with useIno) are used. Names may be Buffers (raw bytes). Names
   * containing '/' or NUL, empty or >= 1024 bytes are skipped. `fd` is the opendir
   * handle (0 when opendir is not implemented).
   */
  readdir?(
    path: FusePath<Nullable>,
    cb: (err: ErrLike, names?: Array<string | Buffer>, stats?: StatLike[]) => void,
    fd: number,
  ): void;
  truncate?(path: FusePath<Nullable>, size: number, cb: Cb): void;
  ftruncate?(path: FusePath<Nullable>, fd: number, size: number, cb: Cb): void;
  /** Distinct atime/mtime with full nanoseconds; see FuseTimespec for NOW/OMIT. */
  utimens?(path: FusePath<Nullable>, atime: FuseTimespec, mtime: FuseTimespec, cb: Cb): void;
  /** Link target as string or Buffer (raw bytes). */
  readlink?(path: string, cb: (err: ErrLike, target?: string | Buffer) => void): void;
  /** uid/gid of -1 mean "leave unchanged" (chown(2) semantics). */
  chown?(path: FusePath<Nullable>, uid: number, gid: number, cb: Cb): void;
  chmod?(path: FusePath<Nullable>, mode: number, cb: Cb): void;
  /** dev is the 64-bit dev_t (makedev encoding of glibc). */
  mknod?(path: string, mode: number, dev: number, cb: Cb): void;
  /**
   * `value` is a private copy (binary, never UTF-8 converted); it may be kept.
   * flags: XATTR_CREATE (1) / XATTR_REPLACE (2).
   */
  setxattr?(path: string, name: string, value: Buffer, flags: number, cb: Cb): void;
  /**
   * Return the whole value as a Buffer (a string is UTF-8 encoded). Size queries and
   * ERANGE are handled natively; `size` (the caller's buffer size, 0 for a size query)
   * is informational. No value and no error -> ENODATA.
   */
  getxattr?(path: string, name: string, cb: (err: ErrLike, value?: Buffer | string) => void, size: number): void;
  /** Names as an array (NUL separators added for you) or a ready NUL-separated Buffer. */
  listxattr?(path: string, cb: (err: ErrLike, names?: Array<string | Buffer> | Buffer) => void, size: number): void;
  removexattr?(path: string, name: string, cb: Cb): void;
  /**
   * flags: open(2) flags. cb(err, fd, openFlags): fd any integer 0..2^53-1 (default 0),
   * openFlags from Fuse.OPEN_KEEP_CACHE | Fuse.OPEN_DIRECT_IO | Fuse.OPEN_NONSEEKABLE.
   * Without OPEN_KEEP_CACHE (and without the kernelCache/autoCache options) the kernel
   * drops the file's page cache on every open. Fuse.OPEN_PASSTHROUGH (patched, with the
   * `passthrough` option) plus a backing id: the kernel uses that file for this open's data.
   */
  open?(path: string, flags: number, cb: FileOpenCb): void;
  opendir?(path: string, flags: number, cb: OpenCb): void;
  /**
   * Atomic create+open: mode includes S_IFREG (already masked by the caller's umask);
   * flags are the open(2) flags (O_CREAT/O_EXCL included). Same cb as open.
   */
  create?(path: string, mode: number, flags: number, cb: OpenCb): void;
  /**
   * `buf` is libfuse's own memory (length `len`): fill it, then cb(bytesRead) (0 = EOF).
   * It is detached when you call cb: finish every use (including async I/O into it,
   * e.g. fs.read(fd, buf, ...)) BEFORE calling cb, and never keep a reference.
   */
  read?(path: FusePath<Nullable>, fd: number, buf: Buffer, len: number, offset: number, cb: IoCb): void;
  /**
   * `buf` holds the data (libfuse memory, detached when cb is called): copy or write
   * it out before calling cb(bytesWritten); never keep a reference.
   */
  write?(path: FusePath<Nullable>, fd: number, buf: Buffer, len: number, offset: number, cb: IoCb): void;
  /** Last close of an open file; the return value is ignored by the kernel. */
  release?(path: FusePath<Nullable>, fd: number, cb: Cb): void;
  releasedir?(path: FusePath<Nullable>, fd: number, cb: Cb): void;
  unlink?(path: string, cb: Cb): void;
  /** No RENAME_* flags in libfuse 2.9 (renameat2 flags are rejected by the kernel). */
  rename?(src: string, dest: string, cb: Cb): void;
  link?(src: string, dest: string, cb: Cb): void;
  /** symlink(target, linkPath): create linkPath pointing to target. */
  symlink?(target: string, linkPath: string, cb: Cb): void;
  /** mode without S_IFDIR, already masked by the caller's umask. */
  mkdir?(path: string, mode: number, cb: Cb): void;
  rmdir?(path: string, cb: Cb): void;
}

/** timeout in ms per op; false/0 disables. Object form: per-op values plus `default`. */
export type FuseTimeout = number | false | ({ default?: number | false } & { [op: string]: number | false | undefined });

export interface FuseOptions {
  /**
   * Per-op auto-answer with ETIMEDOUT. DEFAULT: disabled (false); keep it disabled for
   * layerfs: a timed-out read/write would leave an async fs call writing into a
   * detached libfuse buffer.
   */
  timeout?: FuseTimeout;
  /** Raw -o entries appended verbatim (e.g. 'max_write=131072'); ',' is rejected. */
  options?: string[];
  /** Allow file-handle ops with a null path (libfuse flag_nullpath_ok); needs handles. */
  nullpathOk?: boolean;
  /** Do not compute paths for file-handle ops at all (libfuse flag_nopath). */
  nopath?: boolean;
  /**
   * Keep each listing `readdir` gives (with stats) in the binding and answer later readdirs of
   * that path from it, without calling the handler, until `invalidateListings()` (patched).
   */
  cacheListings?: boolean;
  /**
   * Directories opened without a request (patched): the binding answers the kernel's first
   * OPENDIR ENOSYS, after which the kernel sends no OPENDIR or RELEASEDIR and keeps every listing
   * it reads until a change made through the mount touches that directory. A change to a
   * listing that no request tells the kernel of (an inode number changed by a copy-up) must be
   * announced with `invalidateKernelListings()`.
   */
  keptListings?: boolean;
  /**
   * Note which kernel inodes show which inode number with more than one link, for
   * `invalidateLinks()` (patched).
   */
  trackLinks?: boolean;
  /** Microseconds a FUSE thread polls for the next request before it sleeps (patched; default 0). */
  busyPoll?: number;
  /**
   * Ask for FUSE passthrough (patched): protocol 7.40 with FUSE_PASSTHROUGH when the kernel
   * offers it (Linux 6.9+). Whether it took it: FuseInstance#passthroughActive.
   */
  passthrough?: boolean;
  /** Called when the FUSE session ends (unmounted by us or externally); no more ops. */
  onSessionEnd?: () => void;
  /** Receives errors thrown synchronously by handlers (they are answered EIO). */
  onHandlerError?: (err: unknown, op: string) => void;
  /** Create the mountpoint if missing. */
  mkdir?: boolean;
  /** Lazily unmount a dead (ENOTCONN) mount at the mountpoint before mounting. */
  force?: boolean;
  debug?: boolean;

  // boolean -o flags
  allowOther?: boolean;
  allowRoot?: boolean;
  autoUnmount?: boolean;
  defaultPermissions?: boolean;
  blkdev?: boolean;
  kernelCache?: boolean;
  autoCache?: boolean;
  noforget?: boolean;
  /** Report getattr/readdir `ino` to callers (else libfuse node ids are shown). */
  useIno?: boolean;
  readdirIno?: boolean;
  /**
   * Unlink open files immediately. Without it libfuse renames an unlinked-but-open file
   * to '.fuse_hiddenXXXXXXXX' (a rename op!) and unlinks that on last release; with it,
   * handle ops on such files get ENOENT unless `nullpathOk` is set (then path is null).
   */
  hardRemove?: boolean;
  bigWrites?: boolean;
  directIo?: boolean;
  nonempty?: boolean;

  // valued -o options (0 is passed through)
  blksize?: number;
  maxRead?: number;
  maxWrite?: number;
  maxReadahead?: number;
  fd?: number;
  userId?: number;
  groupId?: number;
  fsname?: string;
  subtype?: string;
  /** Octal when given as a number (0o022 -> 'umask=022'). */
  umask?: number | string;
  uid?: number;
  gid?: number;
  entryTimeout?: number;
  negativeTimeout?: number;
  attrTimeout?: number;
  acAttrTimeout?: number;
  remember?: number;
  modules?: string;
}

/** Alias used by the transport. */
export type FuseOps<Nullable extends boolean = false> = FuseOperations<Nullable>;
/** Alias used by the transport. */
export type FuseCallerContext = FuseContext;

/** A Fuse instance (`new Fuse(mnt, ops, opts)`). */
export interface FuseInstance {
  readonly mnt: string;
  readonly opts: FuseOptions;
  /**
   * Mount. The callback fires after the kernel's INIT was answered, or with an Error:
   * code 'EFUSEMOUNT' (with a negative `errno` when libfuse left one) or 'EFUSEOPTS'
   * (an -o option libfuse rejected; no mount is left behind), or a plain Error for
   * mountpoint problems ('Mountpoint does not exist', 'Mountpoint is not a directory',
   * 'Mountpoint in use'). The serving process must never access the mount itself.
   */
  mount(cb: (err: Error | null) => void): void;
  /**
   * Unmount with fusermount, else fusermount3, else (root) umount; no shell. Lazy by
   * default (-uz / -l): open files keep the session alive until closed; pass
   * lazy = false for a plain unmount that fails with EBUSY instead. `onSessionEnd` fires
   * when the session really ends. After an external unmount it just detaches.
   */
  unmount(cb: (err: (Error & { unmountFailure?: boolean }) | null) => void, lazy?: boolean): void;
  /**
   * Caller (uid/gid/pid/umask) of the request being handled, and the kernel inode it is about.
   * Only valid synchronously inside a handler, before any await or callback hop; null elsewhere.
   */
  getContext(): FuseContext | null;
  /**
   * Gives libfuse node `node` (FuseContext.node) a second kernel inode: later lookups of its name
   * get the new one, descriptors already open keep the old one. For a request the old inode
   * cannot serve: answer it ESTALE after this, and the kernel looks the path up again and
   * retries on the new inode. Throws an Error with `code` (ENOTCONN, ENOSYS: channel not
   * wrapped, EINVAL, EALREADY: renewed before). Patched.
   */
  renewNode(node: number): void;
  /** Every listing the binding's readdir cache keeps is stale from now on (patched). */
  invalidateListings(): void;
  /**
   * keptListings: drops every directory listing the kernel keeps, on a native thread (page
   * locks may be taken; never on the JS thread). `cb(null)` once done; else an Error with a
   * negative `errno` and its `code` (ENOTCONN when not mounted). Patched.
   */
  invalidateKernelListings(cb?: (err: (Error & { errno?: number; code?: string }) | null) => void): void;
  /**
   * trackLinks: marks stale the cached attributes of every kernel inode last shown with inode
   * number `ino` and several links, synchronously (no kernel lock is taken, so it is safe while
   * the change is being answered). Returns how many; throws an Error with `code` ENOSYS (no
   * trackLinks) or ENOTCONN. Patched.
   */
  invalidateLinks(ino: number): number;
  /** The requests the kernel sent so far by opcode name (`{ opendir: 3, readdir: 5 }`); counted when the channel is wrapped (cacheListings, keptListings, trackLinks, passthrough). Patched. */
  requestCounts(): Record<string, number>;
  /** Whether the kernel took FUSE passthrough at INIT (known once INIT is answered, which the mount callback does not wait for; patched). */
  readonly passthroughActive: boolean;
  /**
   * Registers host file `fd` with the kernel for passthrough opens and returns its backing id
   * (fd may be closed afterwards). All concurrent opens of one file must answer with the same id.
   * Throws an Error with `code`: EPERM (no passthrough here), ELOOP (fd on a stacked filesystem),
   * ENOTCONN (not mounted). Patched.
   */
  openBacking(fd: number): number;
  /** Forgets a backing id; opens already answered with it keep their backing file. Patched. */
  closeBacking(id: number): void;
  /** 'ENOENT' -> -2 (unknown -> -1). */
  errno(code: string): number;
}

/** The module export of the patched fuse-native: the Fuse class. */
export interface FuseConstructor {
  new (mnt: string, ops: FuseOperations<boolean>, opts?: FuseOptions): FuseInstance;

  /** Unmount any FUSE mountpoint, same strategy as FuseInstance#unmount (lazy by default). */
  unmount(mnt: string, cb?: (err: Error | null) => void, lazy?: boolean): void;
  /** Pre-encode a stat (reuse it for repeated getattr/readdir answers). */
  encodeStat(stat: FuseStat): Uint32Array;
  /** No-ops kept for API compatibility: no setuid helpers or udev rules are installed. */
  isConfigured(cb: (err: null, configured: boolean) => void): void;
  configure(cb?: (err: null) => void): void;
  unconfigure(cb?: (err: null) => void): void;
  beforeMount(cb?: (err: null) => void): void;
  beforeUnmount(cb?: (err: null) => void): void;

  /** (1 << 30) - 1, from <sys/stat.h> */
  readonly UTIME_NOW: number;
  /** (1 << 30) - 2, from <sys/stat.h> */
  readonly UTIME_OMIT: number;
  /** open/create/opendir cb flag: fi->direct_io = 1 (no page cache, reads ignore i_size) */
  readonly OPEN_DIRECT_IO: number;
  /** open/create/opendir cb flag: fi->keep_cache = 1 (keep page cache across opens) */
  readonly OPEN_KEEP_CACHE: number;
  /** open/create/opendir cb flag: fi->nonseekable = 1 */
  readonly OPEN_NONSEEKABLE: number;
  /** open cb flag (patched): the kernel reads/writes the backing file given as 4th cb value */
  readonly OPEN_PASSTHROUGH: number;
  /** uint32 slots of an encoded stat (26) */
  readonly STAT_LENGTH: number;
  /** layerfs patch revision of index.js and the binding (4) */
  readonly PATCH_VERSION: number;

  readonly EPERM: -1;
  readonly ENOENT: -2;
  readonly EINTR: -4;
  readonly EIO: -5;
  readonly ENXIO: -6;
  readonly E2BIG: -7;
  readonly EBADF: -9;
  readonly EAGAIN: -11;
  readonly ENOMEM: -12;
  readonly EACCES: -13;
  readonly EBUSY: -16;
  readonly EEXIST: -17;
  readonly EXDEV: -18;
  readonly ENODEV: -19;
  readonly ENOTDIR: -20;
  readonly EISDIR: -21;
  readonly EINVAL: -22;
  readonly ENFILE: -23;
  readonly EMFILE: -24;
  readonly ETXTBSY: -26;
  readonly EFBIG: -27;
  readonly ENOSPC: -28;
  readonly ESPIPE: -29;
  readonly EROFS: -30;
  readonly EMLINK: -31;
  readonly ERANGE: -34;
  readonly ENAMETOOLONG: -36;
  readonly ENOSYS: -38;
  readonly ENOTEMPTY: -39;
  readonly ELOOP: -40;
  readonly ENODATA: -61;
  readonly EOVERFLOW: -75;
  readonly EOPNOTSUPP: -95;
  readonly ENOTCONN: -107;
  readonly ETIMEDOUT: -110;
  readonly ESTALE: -116;
  readonly EDQUOT: -122;
  /** Every other Linux errno name is present too (negative numbers). */
  readonly [errnoName: string]: unknown;
}
