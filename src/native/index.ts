// Typed loader for our N-API addon (native-bindings/): the syscalls Node's fs
// lacks — xattrs, mknod with device numbers, renameat2, nanosecond lutimens.
//
// The promise variants run on the libuv thread pool, so FUSE handlers can call
// them without blocking the event loop. Failures reject/throw Errors shaped
// like Node's fs errors: { code: 'ENODATA', errno: -61, syscall, path, dest? }.
// Path-based functions never follow symlinks.
import { createRequire } from 'node:module';

/** A timestamp for lutimens/futimens. `nsec` may be UTIME_NOW or UTIME_OMIT (then `sec` is ignored). */
export interface Timespec {
  readonly sec: number;
  readonly nsec: number;
}

export interface NativeConstants {
  /** lsetxattr flag: fail with EEXIST if the attribute exists. */
  readonly XATTR_CREATE: number;
  /** lsetxattr flag: fail with ENODATA if the attribute does not exist. */
  readonly XATTR_REPLACE: number;
  /** renameat2 flag: fail with EEXIST instead of replacing `to`. */
  readonly RENAME_NOREPLACE: number;
  /** renameat2 flag: atomically swap `from` and `to` (both must exist). */
  readonly RENAME_EXCHANGE: number;
  /** renameat2 flag: leave a 0/0 character device (overlayfs whiteout) at `from`. */
  readonly RENAME_WHITEOUT: number;
  /** flock operations: shared, exclusive, non-blocking (or-ed in), unlock. */
  readonly LOCK_SH: number;
  readonly LOCK_EX: number;
  readonly LOCK_NB: number;
  readonly LOCK_UN: number;
  /** Timespec.nsec value: set this timestamp to the current time. */
  readonly UTIME_NOW: number;
  /** Timespec.nsec value: leave this timestamp unchanged. */
  readonly UTIME_OMIT: number;
}

/** What the addon's errno failures look like (Node's fs error shape). */
export interface NativeFsError extends Error {
  code: string;
  /** Negative errno, as in Node (e.g. -2 for ENOENT); usable as a FUSE return code. */
  errno: number;
  syscall: string;
  path?: string;
  dest?: string;
}

type Bytes = NodeJS.ArrayBufferView;

// The raw addon surface; see native-bindings/README.md.
interface Binding {
  lgetxattr(path: string, name: string): Promise<Buffer>;
  lgetxattrSync(path: string, name: string): Buffer;
  fgetxattr(fd: number, name: string): Promise<Buffer>;
  fgetxattrSync(fd: number, name: string): Buffer;
  lsetxattr(path: string, name: string, value: Bytes, flags?: number): Promise<void>;
  lsetxattrSync(path: string, name: string, value: Bytes, flags?: number): void;
  fsetxattr(fd: number, name: string, value: Bytes, flags?: number): Promise<void>;
  fsetxattrSync(fd: number, name: string, value: Bytes, flags?: number): void;
  llistxattr(path: string): Promise<string[]>;
  llistxattrSync(path: string): string[];
  flistxattr(fd: number): Promise<string[]>;
  flistxattrSync(fd: number): string[];
  lremovexattr(path: string, name: string): Promise<void>;
  lremovexattrSync(path: string, name: string): void;
  fremovexattr(fd: number, name: string): Promise<void>;
  fremovexattrSync(fd: number, name: string): void;
  mknod(path: string, mode: number, dev: number | bigint): Promise<void>;
  mknodSync(path: string, mode: number, dev: number | bigint): void;
  makedev(major: number, minor: number): number;
  major(dev: number | bigint): number;
  minor(dev: number | bigint): number;
  renameat2(from: string, to: string, flags?: number): Promise<void>;
  renameat2Sync(from: string, to: string, flags?: number): void;
  lutimens(path: string, atime: Timespec, mtime: Timespec): Promise<void>;
  lutimensSync(path: string, atime: Timespec, mtime: Timespec): void;
  futimens(fd: number, atime: Timespec, mtime: Timespec): Promise<void>;
  futimensSync(fd: number, atime: Timespec, mtime: Timespec): void;
  flock(fd: number, operation: number): Promise<void>;
  flockSync(fd: number, operation: number): void;
  dup2Sync(oldfd: number, newfd: number): void;
  constants: NativeConstants;
}

// `../../native-bindings` is the package root's addon dir both from
// src/native/ (tsx) and from dist/native/ (compiled), so a fixed path works.
const ADDON_PATH = '../../native-bindings/build/Release/layerfs_native.node';

function loadBinding(): Binding {
  const require = createRequire(import.meta.url);
  try {
    return require(ADDON_PATH) as Binding;
  } catch (cause) {
    throw new Error(
      `layerfs: cannot load the native addon (${ADDON_PATH}); build it with ` +
        '`node scripts/native/build-addon.mjs`',
      { cause },
    );
  }
}

const binding = loadBinding();

export const constants: NativeConstants = binding.constants;
export const { XATTR_CREATE, XATTR_REPLACE, RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT, UTIME_NOW, UTIME_OMIT } =
  binding.constants;

/** Timespec meaning "now" / "leave unchanged" for lutimens/futimens. */
export const TIME_NOW: Timespec = Object.freeze({ sec: 0, nsec: UTIME_NOW });
export const TIME_OMIT: Timespec = Object.freeze({ sec: 0, nsec: UTIME_OMIT });

/** Timespec from nanoseconds since the epoch, e.g. a bigint stat's mtimeNs. */
export function timespecFromNs(ns: bigint): Timespec {
  const NS = 1_000_000_000n;
  let sec = ns / NS;
  let nsec = ns % NS;
  if (nsec < 0n) {
    // BigInt division truncates toward zero; timespec wants nsec in [0, 1e9).
    sec -= 1n;
    nsec += NS;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

/** Timespec from (possibly fractional) milliseconds since the epoch, e.g. Date.getTime(). */
export function timespecFromMs(ms: number): Timespec {
  const sec = Math.floor(ms / 1000);
  const nsec = Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6));
  return { sec, nsec };
}

/** Narrow an unknown error to the addon's (and Node fs's) errno error shape. */
export function isNativeFsError(err: unknown): err is NativeFsError {
  return err instanceof Error && typeof (err as Partial<NativeFsError>).code === 'string' &&
    typeof (err as Partial<NativeFsError>).errno === 'number';
}

// The async wrappers are `async` so that argument-validation errors thrown
// synchronously by the addon become rejections, as with fs.promises.

// ---- extended attributes ---------------------------------------------------

/** Value of xattr `name` on `path` itself (a symlink is not followed). Missing → ENODATA. */
export async function lgetxattr(path: string, name: string): Promise<Buffer> {
  return binding.lgetxattr(path, name);
}
export function lgetxattrSync(path: string, name: string): Buffer {
  return binding.lgetxattrSync(path, name);
}

/** Set xattr `name` on `path` itself. `flags`: 0, XATTR_CREATE or XATTR_REPLACE. */
export async function lsetxattr(path: string, name: string, value: Bytes, flags = 0): Promise<void> {
  return binding.lsetxattr(path, name, value, flags);
}
export function lsetxattrSync(path: string, name: string, value: Bytes, flags = 0): void {
  binding.lsetxattrSync(path, name, value, flags);
}

/** Names of all xattrs on `path` itself (those visible to the caller). */
export async function llistxattr(path: string): Promise<string[]> {
  return binding.llistxattr(path);
}
export function llistxattrSync(path: string): string[] {
  return binding.llistxattrSync(path);
}

/** Remove xattr `name` from `path` itself. Missing → ENODATA. */
export async function lremovexattr(path: string, name: string): Promise<void> {
  return binding.lremovexattr(path, name);
}
export function lremovexattrSync(path: string, name: string): void {
  binding.lremovexattrSync(path, name);
}

/** fd variants: same semantics on an open file descriptor. */
export async function fgetxattr(fd: number, name: string): Promise<Buffer> {
  return binding.fgetxattr(fd, name);
}
export function fgetxattrSync(fd: number, name: string): Buffer {
  return binding.fgetxattrSync(fd, name);
}
export async function fsetxattr(fd: number, name: string, value: Bytes, flags = 0): Promise<void> {
  return binding.fsetxattr(fd, name, value, flags);
}
export function fsetxattrSync(fd: number, name: string, value: Bytes, flags = 0): void {
  binding.fsetxattrSync(fd, name, value, flags);
}
export async function flistxattr(fd: number): Promise<string[]> {
  return binding.flistxattr(fd);
}
export function flistxattrSync(fd: number): string[] {
  return binding.flistxattrSync(fd);
}
export async function fremovexattr(fd: number, name: string): Promise<void> {
  return binding.fremovexattr(fd, name);
}
export function fremovexattrSync(fd: number, name: string): void {
  binding.fremovexattrSync(fd, name);
}

// ---- device nodes ------------------------------------------------------------

/**
 * mknod(2): `mode` includes the file type (fs.constants.S_IFCHR, S_IFBLK,
 * S_IFIFO, S_IFREG, S_IFSOCK) and is subject to the umask; `dev` (see makedev)
 * matters only for devices.
 */
export async function mknod(path: string, mode: number, dev: number | bigint = 0): Promise<void> {
  return binding.mknod(path, mode, dev);
}
export function mknodSync(path: string, mode: number, dev: number | bigint = 0): void {
  binding.mknodSync(path, mode, dev);
}

/** Device number from major/minor, encoded exactly like the kernel's (stat's rdev). */
export function makedev(major: number, minor: number): number {
  return binding.makedev(major, minor);
}
/** Major number of a device number (accepts a bigint stat's rdev too). */
export function major(dev: number | bigint): number {
  return binding.major(dev);
}
/** Minor number of a device number (accepts a bigint stat's rdev too). */
export function minor(dev: number | bigint): number {
  return binding.minor(dev);
}

// ---- rename --------------------------------------------------------------------

/** renameat2(2) with RENAME_NOREPLACE / RENAME_EXCHANGE / RENAME_WHITEOUT. Errors carry path and dest. */
export async function renameat2(from: string, to: string, flags = 0): Promise<void> {
  return binding.renameat2(from, to, flags);
}
export function renameat2Sync(from: string, to: string, flags = 0): void {
  binding.renameat2Sync(from, to, flags);
}

// ---- advisory locks ------------------------------------------------------------

/**
 * flock(2): the kernel releases the lock when its holder dies, so a crashed process never leaves
 * a lock that others must judge stale. A blocking lock waits on the thread pool, not the JS thread.
 */
export async function flock(fd: number, operation: number): Promise<void> {
  return binding.flock(fd, operation);
}
export function flockSync(fd: number, operation: number): void {
  binding.flockSync(fd, operation);
}

// ---- file descriptors ------------------------------------------------------------

/** dup2(2): makes `newfd` refer to what `oldfd` does (the daemon moves its stderr to its log). */
export function dup2Sync(oldfd: number, newfd: number): void {
  binding.dup2Sync(oldfd, newfd);
}

// ---- timestamps ----------------------------------------------------------------

/** Set atime/mtime of `path` itself (symlinks not followed) with nanosecond precision. */
export async function lutimens(path: string, atime: Timespec, mtime: Timespec): Promise<void> {
  return binding.lutimens(path, atime, mtime);
}
export function lutimensSync(path: string, atime: Timespec, mtime: Timespec): void {
  binding.lutimensSync(path, atime, mtime);
}

/** Set atime/mtime of an open file with nanosecond precision. */
export async function futimens(fd: number, atime: Timespec, mtime: Timespec): Promise<void> {
  return binding.futimens(fd, atime, mtime);
}
export function futimensSync(fd: number, atime: Timespec, mtime: Timespec): void {
  binding.futimensSync(fd, atime, mtime);
}
