import type { StackPaths } from './validate.js';
import type { UpperFormat } from '../union/upper-writer.js';
import type { Digest } from '../oci/digest.js';

/**
 * What a mount daemon is asked to serve, sent by the command that started it once that command
 * has resolved everything a user can get wrong (arguments, the image, the writable layer). Plain
 * data: it crosses a process boundary as JSON.
 */
export type DaemonRequest = UnionRequest | ImageRequest;

interface CommonRequest {
  mountpoint: string;
  runDir: string;
  debug: boolean;
  cacheTimeout: number;
  /** FUSE passthrough; undefined: the mount's default (ServeOptions.passthrough). */
  passthrough?: boolean;
  /** Microseconds of busy polling; undefined: the transport's default (TransportOptions.busyPoll). */
  busyPoll?: number;
}

/** A union of directories (`mount --lower`, the overlay mount program). */
export interface UnionRequest extends CommonRequest {
  kind: 'union';
  stack: StackPaths;
  upperFormat: UpperFormat;
}

/** An image from the store, with its writable layer (by name) unless read-only. */
export interface ImageRequest extends CommonRequest {
  kind: 'image';
  /** A store the sending command has opened (made, cleared of leftovers): the daemon takes it as it is. */
  storeRoot: string;
  image: { digest: Digest; refs: string[] };
  container?: string;
}

/**
 * Messages from a daemon to the process that started it. `listening` comes first: Node drops IPC
 * messages that arrive before the child listens, so the request is sent only after it.
 */
export type DaemonMessage = { type: 'listening' } | { type: 'ready'; mountpoint: string } | { type: 'error'; message: string };
