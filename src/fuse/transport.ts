import type { UnionFs } from '../union/types.js';

/** How a union is shown to the kernel. */
export interface TransportOptions {
  readOnly: boolean;
  /** Let other users in (as root): the kernel then enforces the modes the mount shows. */
  allowOther: boolean;
  /** Seconds the kernel may cache names and attributes. */
  cacheTimeout: number;
  /** Log every FUSE request. */
  debug: boolean;
  /**
   * Let the kernel read lower files itself (FUSE passthrough, Linux 6.9+, as root): no request
   * per read and one page cache with the layer. A file opened read-only before a copy-up then
   * keeps reading the lower copy.
   */
  passthrough: boolean;
  /**
   * Microseconds a FUSE thread polls for the next request before it sleeps (0: never);
   * undefined: DEFAULT_BUSY_POLL_US on a machine with two CPUs or more, else 0.
   */
  busyPoll?: number;
}

/**
 * Long enough to cover the gap between two requests of a caller working through cached
 * entries (a walk stats a directory's names in between), short enough to cost little CPU.
 */
export const DEFAULT_BUSY_POLL_US = 200;

/** A mounted filesystem; `unmount` detaches it and stops serving. */
export interface Mounted {
  unmount(lazy?: boolean): Promise<void>;
  /** Settles when the kernel connection is gone (also after an unmount done by someone else). */
  readonly ended: Promise<void>;
}

/**
 * A FUSE transport mounts an engine at a mountpoint. The first one is fuse-native (libfuse 2,
 * path API); an inode-based transport can take its place without any change to the engine.
 */
export type Transport = (fs: UnionFs, mountpoint: string, options: TransportOptions) => Promise<Mounted>;
