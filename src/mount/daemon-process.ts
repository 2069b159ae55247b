/**
 * Starting the mount daemon's process. `layerfs mount` does it as the very first thing its entry
 * (src/cli/main.ts) does, so this module imports nothing but what the spawn needs: everything an
 * ES module imports is loaded before its first line runs, and the daemon's start-up (a Node
 * start of its own) is on the path of every mount. Talking to the daemon: ./background.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DaemonMessage } from './daemon-request.js';

/** A daemon process that has been started: what it said on stderr so far, and how it is doing. */
export interface DaemonProcess {
  child: ChildProcess;
  /** The end of what it wrote to stderr before it moved stderr to its log (for error messages). */
  earlyOutput(): string;
  /** Resolves once it listens for its request. */
  listening: Promise<void>;
  /** Resolves with why it is gone, if it exits or cannot be started. */
  exited: Promise<string>;
}

/** How much of a daemon's early stderr is kept. */
const MAX_EARLY_OUTPUT = 16 * 1024;

/** Starts a mount daemon (src/mount/daemon.ts), detached, its stderr coming here until it has a request. */
export function startDaemonProcess(): DaemonProcess {
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
  return { child, earlyOutput: () => early, listening: waitForMessage(child, 'listening'), exited };
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

let prestarted: DaemonProcess | undefined;

/**
 * Starts the daemon for a command line that will need one, before the rest of the program is
 * even loaded; `takePrestartedDaemon` (./background.ts) hands it to the command. A guess that
 * turns out wrong costs one idle process that leaves when this one does.
 */
export function prestartDaemon(): void {
  prestarted ??= startDaemonProcess();
}

/** The process `prestartDaemon` started, if any (once). */
export function takePrestartedDaemonProcess(): DaemonProcess | undefined {
  const daemon = prestarted;
  prestarted = undefined;
  return daemon;
}
