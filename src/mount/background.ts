import { spawn } from 'node:child_process';
import { openSync, mkdirSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import { UserError } from '../errors.js';

/** Messages from a daemon to the process that started it. */
export type DaemonMessage = { type: 'ready'; mountpoint: string } | { type: 'error'; message: string };

/**
 * Starts `argv` (the same command with --foreground) as a detached daemon and resolves once it
 * reports the mount ready, as fuse-overlayfs does; the daemon's stderr goes to `logFile`.
 */
export async function startDaemon(argv: string[], logFile: string, timeoutMs = 60_000): Promise<string> {
  mkdirSync(dirname(logFile), { recursive: true, mode: 0o700 });
  const log = openSync(logFile, 'a', 0o600);
  // A small young generation: the daemon keeps one long-lived node per name it has seen, and
  // V8's default semi-spaces cost ~20 MiB of RSS on a large image for no measurable speed.
  const child = spawn(process.execPath, ['--max-semi-space-size=2', ...argv], {
    detached: true,
    stdio: ['ignore', 'ignore', log, 'ipc'],
    env: { ...process.env, LAYERFS_DAEMON: '1' },
  });
  closeSync(log);
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGTERM');
        reject(new UserError(`the mount daemon did not become ready within ${timeoutMs / 1000} s; see ${logFile}`));
      }, timeoutMs);
      child.once('message', (message: DaemonMessage) => {
        clearTimeout(timer);
        if (message.type === 'ready') resolve(message.mountpoint);
        else reject(new UserError(message.message));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new UserError(`the mount daemon exited (${signal ?? `code ${code}`}) before the mount was ready; see ${logFile}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new UserError(`cannot start the mount daemon: ${err.message}`));
      });
    });
  } finally {
    child.removeAllListeners();
    if (child.connected) child.disconnect();
    child.unref();
  }
}

/** In a daemon: tells the parent how the mount went (no-op when running in the foreground). */
export function notifyParent(message: DaemonMessage): void {
  if (process.send === undefined || !process.connected) return;
  process.send(message, () => {
    if (process.connected) process.disconnect();
  });
}
