import { errnoNumber, hasErrnoCode } from '../errors.js';
import { log } from '../log.js';

/**
 * The one place where errors become errnos for the kernel: a known errno code passes through,
 * anything else is logged with its context and answered EIO, so the daemon never dies of it.
 */
export function toErrno(err: unknown, op: string, path: string): number {
  if (hasErrnoCode(err)) {
    const errno = errnoNumber(err.code);
    if (errno !== undefined) {
      if (errno === EIO_ERRNO) log.error(`${op} failed with EIO`, { path, err });
      else log.debug(`${op} -> ${err.code}`, { path });
      return -errno;
    }
  }
  log.error(`unexpected error in ${op}; answering EIO`, { path, err: err instanceof Error ? err : String(err) });
  return -EIO_ERRNO;
}

const EIO_ERRNO = errnoNumber('EIO')!;
