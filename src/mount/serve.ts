import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { startedEarly } from '../concurrency.js';
import { UserError } from '../errors.js';
import { log } from '../log.js';
import { loadFuseNative, mountWithFuseNative } from '../fuse/fuse-native-transport.js';
import type { Mounted } from '../fuse/transport.js';
import { createUnionFs } from '../union/union-fs.js';
import type { UpperFormat } from '../union/upper-writer.js';
import { LAYERFS_FSTYPE, mountAt } from './mountinfo.js';
import { listenForControl } from './control.js';
import { RunDir } from './run-dir.js';
import { detach } from './unmount.js';
import { type StackPaths, checkFuseAvailable, checkMountpointApart, checkMountpointFree, validateStack } from './validate.js';

export interface ServeOptions {
  stack: StackPaths;
  mountpoint: string;
  runDir: RunDir;
  debug: boolean;
  cacheTimeout: number;
  /**
   * FUSE passthrough for reads of lower files (TransportOptions.passthrough). Default: on for a
   * read-only mount, where nothing can change; off for a writable one, where a file opened with
   * it before a copy-up would keep reading the lower copy (docs/decisions.md, 10).
   */
  passthrough?: boolean;
  /** TransportOptions.busyPoll. */
  busyPoll?: number;
  /** How the upper directory records removals and opaque directories (default 'oci'). */
  upperFormat?: UpperFormat;
  logFile?: string;
  /** For `ps`: the image and writable layer this mount serves, when it serves one. */
  image?: { ref: string; digest: string };
  container?: string;
  /** Called once the mount is ready to use (the background parent waits for it). */
  onReady?: (mountpoint: string) => void;
}

/** Loads what mounting needs before it is needed (a daemon does it while it waits for a request). */
export function preloadServing(): void {
  loadFuseNative();
}

/**
 * Mounts a stack and serves it until SIGINT/SIGTERM or until someone unmounts it from outside.
 * Nothing is left behind on failure: a mount that was made but could not be finished is detached.
 */
export async function serveUnion(options: ServeOptions): Promise<void> {
  // Signals are caught from the start: one that arrives while mounting stops the mount as soon as
  // it is made, instead of killing the process half-way.
  let signalled: ((signal: string) => void) | undefined;
  const pendingSignals: string[] = [];
  const onSignal = (signal: string) => (signalled ? signalled(signal) : pendingSignals.push(signal));
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', () => undefined);
  try {
    await serve(options, (handler) => {
      signalled = handler;
      for (const signal of pendingSignals.splice(0)) handler(signal);
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function serve(options: ServeOptions, onStopSignal: (handler: (signal: string) => void) => void): Promise<void> {
  // The checks run at once; the problem reported is the one checking them in turn finds first.
  const freeMountpoint = startedEarly(checkMountpointFree(options.mountpoint));
  const fuseAvailable = startedEarly(checkFuseAvailable());
  const stack = await validateStack(options.stack);
  const mountpoint = await freeMountpoint;
  checkMountpointApart(mountpoint, stack);
  await fuseAvailable;

  // Modes from the kernel already have the caller's umask applied; ours must not apply again.
  process.umask(0);
  const workdir = stack.workdir === undefined ? undefined : await prepareWorkdir(stack.workdir);
  const engine = await createUnionFs({ lowers: stack.lowers, upper: stack.upper, workdir, upperFormat: options.upperFormat ?? 'oci' });

  let mounted: Mounted;
  try {
    mounted = await mountWithFuseNative(engine, mountpoint, {
      readOnly: stack.upper === undefined,
      allowOther: true,
      cacheTimeout: options.cacheTimeout,
      debug: options.debug,
      passthrough: options.passthrough ?? stack.upper === undefined,
      busyPoll: options.busyPoll,
    });
  } catch (err) {
    await engine.close();
    if ((await mountAt(mountpoint))?.fstype === LAYERFS_FSTYPE) await detach(mountpoint, true).catch(() => undefined);
    throw new UserError(`cannot mount ${mountpoint}: ${(err as Error).message}`, { cause: err });
  }
  // The daemon must not keep a directory busy that someone may want to unmount.
  process.chdir('/');
  const controlPath = options.runDir.controlPath(mountpoint);
  const control = await listenForControl(controlPath, engine).catch((err: Error) => {
    log.warn(`no control socket (commit of this mount will not be possible): ${err.message}`);
    return undefined;
  });

  await options.runDir.writeState({
    pid: process.pid,
    mountpoint,
    lowers: stack.lowers,
    upper: stack.upper,
    startedAt: new Date().toISOString(),
    logFile: options.logFile,
    ...(options.image === undefined ? {} : { image: options.image }),
    ...(options.container === undefined ? {} : { container: options.container }),
  });
  log.info(`serving ${mountpoint}`, { lowers: stack.lowers, upper: stack.upper });
  options.onReady?.(mountpoint);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = async (reason: string, unmountFirst: boolean) => {
      if (stopping) return;
      stopping = true;
      log.info(`stopping: ${reason}`);
      if (unmountFirst) {
        try {
          await mounted.unmount();
        } catch (err) {
          log.warn('unmount failed; detaching lazily', { err: (err as Error).message });
          await mounted.unmount(true).catch((e: Error) => log.error('lazy unmount failed', { err: e.message }));
        }
      }
      control?.close();
      await fsp.rm(controlPath, { force: true }).catch(() => undefined);
      await engine.close().catch(() => undefined);
      await options.runDir.removeState(mountpoint, process.pid);
      resolve();
    };
    onStopSignal((signal) => void stop(signal, true));
    // Someone ran umount/fusermount3 -u on the mountpoint: the kernel connection is gone.
    void mounted.ended.then(() => stop('the kernel connection ended', false));
  });
}

/** Our scratch space inside the user's work directory; leftovers of a crash are cleared. */
async function prepareWorkdir(workdir: string): Promise<string> {
  const scratch = join(workdir, 'work');
  await fsp.rm(scratch, { recursive: true, force: true });
  await fsp.mkdir(scratch, { mode: 0o700 });
  return scratch;
}
