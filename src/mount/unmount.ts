import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { promisify } from 'node:util';
import { UserError, isErrno } from '../errors.js';
import { LAYERFS_FSTYPE, mountAt } from './mountinfo.js';
import { RunDir, processAlive } from './run-dir.js';

const exec = promisify(execFile);

/**
 * True when the mount's daemon is gone ("Transport endpoint is not connected"). statfs, not
 * lstat: the kernel answers lstat of the mount's root from its attribute cache long after the
 * daemon died, while statfs always asks the daemon.
 */
export async function isStale(mountpoint: string): Promise<boolean> {
  try {
    await fsp.statfs(mountpoint);
    return false;
  } catch (err) {
    return isErrno(err, 'ENOTCONN');
  }
}

/** Detaches the filesystem mounted at `mountpoint` with umount(8) or fusermount3. */
export async function detach(mountpoint: string, lazy: boolean): Promise<void> {
  const asRoot = process.getuid?.() === 0;
  const [cmd, args] = asRoot
    ? ['umount', lazy ? ['-l', mountpoint] : [mountpoint]]
    : ['fusermount3', lazy ? ['-u', '-z', mountpoint] : ['-u', mountpoint]];
  try {
    await exec(cmd, args);
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    throw new UserError(`cannot unmount ${mountpoint}: ${stderr || (err as Error).message}`, { cause: err });
  }
}

export interface UnmountOptions {
  runDir: RunDir;
  lazy?: boolean;
  /** How long to wait for a running daemon to unmount itself. */
  timeoutMs?: number;
}

/**
 * `layerfs umount`: asks the serving daemon to unmount (it flushes and exits cleanly); a mount
 * whose daemon died (stale) or does not answer is detached directly.
 */
export async function unmount(mountpoint: string, options: UnmountOptions): Promise<'daemon' | 'detached' | 'stale'> {
  const entry = await mountAt(mountpoint);
  if (entry === undefined) throw new UserError(`${mountpoint} is not mounted`);
  if (entry.fstype !== LAYERFS_FSTYPE) throw new UserError(`${mountpoint} is not a layerfs mount (it is ${entry.fstype})`);

  const state = await options.runDir.readState(mountpoint);
  if (state !== undefined && processAlive(state.pid) && !(await isStale(mountpoint))) {
    process.kill(state.pid, 'SIGTERM');
    if (await waitUntilUnmounted(mountpoint, options.timeoutMs ?? 15_000)) return 'daemon';
    if (options.lazy !== true) {
      throw new UserError(`${mountpoint} is busy: the daemon (pid ${state.pid}) could not unmount it; retry with --lazy`);
    }
  }
  const stale = await isStale(mountpoint);
  try {
    await detach(mountpoint, options.lazy === true);
  } catch (err) {
    if (!stale || options.lazy === true) throw err;
    await detach(mountpoint, true); // a dead mount that something still holds
  }
  if (state !== undefined && !processAlive(state.pid)) await options.runDir.removeState(mountpoint, state.pid);
  return stale ? 'stale' : 'detached';
}

export async function waitUntilUnmounted(mountpoint: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const entry = await mountAt(mountpoint);
    if (entry === undefined || entry.fstype !== LAYERFS_FSTYPE) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
