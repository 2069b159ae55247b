/**
 * The mount daemon's entry point: a process of its own, so that the command that starts it can
 * return while the mount goes on being served (as fuse-overlayfs daemonizes). It loads only the
 * serving code, and loads it while the starting command is still resolving the image, then waits
 * for one DaemonRequest on its IPC channel, serves it, and reports "ready" or the error there.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { serveImage } from '../image/mount-image.js';
import { type LogLevel, setLogLevel } from '../log.js';
import { dup2Sync } from '../native/index.js';
import { Store } from '../store/store.js';
import type { DaemonMessage, DaemonRequest } from './daemon-request.js';
import { RunDir } from './run-dir.js';
import { preloadServing, serveUnion } from './serve.js';

async function serve(request: DaemonRequest): Promise<void> {
  const level: LogLevel = request.debug || process.env.LAYERFS_LOG === 'debug' ? 'debug' : 'info';
  setLogLevel(level);
  const runDir = new RunDir(request.runDir);
  const logFile = runDir.logPath(request.mountpoint);
  logTo(logFile);
  const common = {
    mountpoint: request.mountpoint,
    runDir,
    debug: request.debug,
    cacheTimeout: request.cacheTimeout,
    passthrough: request.passthrough,
    busyPoll: request.busyPoll,
    logFile,
    onReady: (mountpoint: string) => tellParent({ type: 'ready', mountpoint }),
  };
  if (request.kind === 'union') {
    await serveUnion({ ...common, stack: request.stack, upperFormat: request.upperFormat });
    return;
  }
  const store = Store.opened(request.storeRoot);
  const image = await store.image(request.image.digest, request.image.refs);
  await serveImage({ ...common, store, image, container: request.container });
}

/**
 * Points stderr at the mount's log (appended to across mounts of that mountpoint). Until now it
 * went to the starting command, which shows it if the mount fails; from here on the daemon
 * outlives that command, and whatever it (or Node, on a fatal error) writes must be kept.
 */
function logTo(logFile: string): void {
  mkdirSync(dirname(logFile), { recursive: true, mode: 0o700 });
  const fd = openSync(logFile, 'a', 0o600);
  try {
    dup2Sync(fd, 2);
  } finally {
    closeSync(fd);
  }
}

/** Tells the parent how the mount went, then lets it go: the daemon must not keep it waiting. */
function tellParent(message: DaemonMessage): void {
  if (process.send === undefined || !process.connected) return;
  process.send(message, () => {
    if (process.connected) process.disconnect();
  });
}

function main(): void {
  if (process.send === undefined) {
    process.stderr.write('layerfs: the mount daemon is started by `layerfs mount`, not by hand\n');
    process.exitCode = 2;
    return;
  }
  let started = false;
  // A parent that gives up (bad arguments, unknown image, killed) disconnects without a request.
  process.once('disconnect', () => {
    if (!started) process.exit(0);
  });
  process.once('message', (request: DaemonRequest) => {
    started = true;
    serve(request).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`layerfs: ${message}\n`);
      tellParent({ type: 'error', message });
      process.exitCode = 1;
    });
  });
  process.send({ type: 'listening' } satisfies DaemonMessage);
  // The request is on its way (the caller is still finding the image): load the rest meanwhile.
  setImmediate(preloadServing);
}

main();
