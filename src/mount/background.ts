import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import type { DaemonMessage, DaemonRequest } from './daemon-request.js';
import { RunDir } from './run-dir.js';

/** A mount daemon that has been started and waits for what to serve. */
export interface PendingDaemon {
  /** Sends the request; resolves with the mountpoint once the daemon reports the mount ready. */
  serve(request: DaemonRequest, timeoutMs?: number): Promise<string>;
  /** The caller gave up before sending a request: the daemon exits without doing anything. */
  cancel(): void;
}

/** What a daemon wrote to stderr before it moved stderr to its log: kept for error messages. */
const MAX_EARLY_OUTPUT = 16 * 1024;

/**
 * Starts a mount daemon (src/mount/daemon.ts), detached. It is started before the caller knows
 * what to mount, so that Node's start-up and the loading of the serving code overlap with the
 * caller's own work (parsing arguments, finding the image, preparing the writable layer); a mount
 * of a cached image is then ready in about the time of one process start instead of two. Until it
 * gets a request its stderr comes here (it points stderr at the mount's log when it does), and a
 * caller that exits without sending one ends it: the daemon leaves when its IPC channel closes.
 */
export function spawnDaemon(): PendingDaemon {
  const [entry, loader] = daemonEntry();
  // A small young generation and a heap that grows by 20 % instead of V8's default (up to 2x)
  // between major collections: the daemon keeps one long-lived node per name it has seen, and
  // the defaults cost 20-40 MiB of RSS on a large image for no measurable speed (bench/README.md).
  const child = spawn(process.execPath, ['--max-semi-space-size=2', '--heap-growing-percent=20', ...loader, entry], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: daemonEnvironment(process.env),
  });
  // Nothing here may keep the caller alive: it may fail and exit before it ever sends a request.
  child.unref();
  child.channel?.unref();
  let early = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    early = (early + text).slice(-MAX_EARLY_OUTPUT);
  });
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();

  const exited = new Promise<string>((resolve) => {
    child.once('error', (err) => resolve(`cannot start the mount daemon: ${err.message}`));
    child.once('exit', (code, signal) => resolve(`the mount daemon exited (${signal ?? `code ${code}`}) before the mount was ready`));
  });
  const listening = waitForMessage(child, 'listening');
  const release = () => {
    child.removeAllListeners();
    child.stderr?.destroy();
    if (child.connected) child.disconnect();
  };
  return {
    async serve(request, timeoutMs = 60_000) {
      const logFile = new RunDir(request.runDir).logPath(request.mountpoint);
      const failure = (what: string) => new UserError(`${what}${early.trim() === '' ? '' : `:\n${early.trim()}`}\n(see ${logFile})`);
      let timer: NodeJS.Timeout | undefined;
      try {
        return await new Promise<string>((resolve, reject) => {
          timer = setTimeout(() => {
            child.kill('SIGTERM');
            reject(failure(`the mount daemon did not become ready within ${timeoutMs / 1000} s`));
          }, timeoutMs);
          void exited.then((why) => reject(failure(why)));
          child.on('message', (message: DaemonMessage) => {
            if (message.type === 'ready') resolve(message.mountpoint);
            else if (message.type === 'error') reject(new UserError(message.message));
          });
          void listening.then(() => {
            if (!child.connected) return;
            child.send(request, (err) => {
              if (err !== null) reject(failure(`cannot reach the mount daemon: ${err.message}`));
            });
          });
        });
      } finally {
        clearTimeout(timer);
        release();
      }
    },
    cancel: release,
  };
}

/**
 * The daemon's environment: ours without NODE_EXTRA_CA_CERTS. Node 20 reads that file, and builds
 * its root certificate store with it, while it starts, before any script runs: on the benchmark
 * VM, where it names the system's CA bundle, that is 60 of the 100 ms of `node -e 0`. The daemon
 * serves a mount from local files and never makes a TLS connection, so it only paid for it.
 */
function daemonEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _unusedByTheDaemon, ...rest } = env;
  return rest;
}

function waitForMessage(child: ChildProcess, type: DaemonMessage['type']): Promise<void> {
  return new Promise<void>((resolve) => {
    const onMessage = (message: DaemonMessage) => {
      if (message.type !== type) return;
      child.off('message', onMessage);
      resolve();
    };
    child.on('message', onMessage);
  });
}

/** The daemon's file name in dist/bundle/, set by scripts/bundle.mjs; not defined elsewhere. */
declare const LAYERFS_BUNDLED_DAEMON: string | undefined;

/**
 * The daemon's script and the Node flags it needs, next to this module: the bundle's
 * (`daemon.cjs`), tsc's output (`daemon.js`), or the TypeScript sources (tests run through tsx)
 * with tsx's loader.
 */
function daemonEntry(): [string, string[]] {
  const fromSources = import.meta.url.endsWith('.ts');
  const file = typeof LAYERFS_BUNDLED_DAEMON === 'string' ? LAYERFS_BUNDLED_DAEMON : fromSources ? 'daemon.ts' : 'daemon.js';
  return [fileURLToPath(new URL(`./${file}`, import.meta.url)), fromSources ? ['--import', 'tsx'] : []];
}

let prestarted: PendingDaemon | undefined;

/**
 * Starts the daemon for a command line that will need one, before the rest of the program is
 * even loaded; `takePrestartedDaemon` hands it to the command. A guess that turns out wrong
 * costs one idle process that leaves when this one does.
 */
export function prestartDaemon(): void {
  prestarted ??= spawnDaemon();
}

/** The daemon `prestartDaemon` started, if any (once): the caller serves or cancels it. */
export function takePrestartedDaemon(): PendingDaemon | undefined {
  const daemon = prestarted;
  prestarted = undefined;
  return daemon;
}
