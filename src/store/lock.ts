import { promises as fsp } from 'node:fs';
import * as native from '../native/index.js';

/**
 * Cross-process exclusion with flock(2) on a lock file: the kernel releases the lock when its
 * holder dies, so there is never a stale lock to guess about.
 */
export async function withLock<T>(path: string, mode: 'shared' | 'exclusive', fn: () => Promise<T>): Promise<T> {
  const handle = await fsp.open(path, 'a');
  try {
    await native.flock(handle.fd, mode === 'shared' ? native.constants.LOCK_SH : native.constants.LOCK_EX);
    return await fn();
  } finally {
    await handle.close(); // closing the last fd of the description releases the lock
  }
}

/** Tries to take an exclusive lock without waiting; resolves false when someone holds it. */
export async function tryWithLock<T>(path: string, fn: () => Promise<T>): Promise<{ locked: false } | { locked: true; value: T }> {
  const handle = await fsp.open(path, 'a');
  try {
    try {
      await native.flock(handle.fd, native.constants.LOCK_EX | native.constants.LOCK_NB);
    } catch (err) {
      if ((err as { code?: string }).code === 'EAGAIN') return { locked: false };
      throw err;
    }
    return { locked: true, value: await fn() };
  } finally {
    await handle.close();
  }
}
