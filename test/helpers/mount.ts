// The lifecycle of a real FUSE mount for a test: the daemon runs in a CHILD process (a process
// must never use a FUSE mount it serves itself), the test waits until the mount is listed in
// /proc/self/mountinfo, runs, then stops the child with SIGTERM; a mount left behind is always
// lazily unmounted.
//
// The mounter is `node bin/layerfs.js mount --foreground --lower A:B [--upper U --workdir W] MNT`,
// or with `mounter: 'layerfs-overlay'` the mount program (overlay-form upper):
// `node bin/layerfs-overlay.js -f -o lowerdir=A:B[,upperdir=U,workdir=W] MNT`.
// Environment overrides:
//   LAYERFS_BIN=path            another layerfs entry point (run with node)
//   LAYERFS_TEST_MOUNTER=fuse-overlayfs   mount with fuse-overlayfs instead (a reference
//                               implementation, to check the tests themselves)
//   LAYERFS_TEST_VERBOSE=1      pass the child's output through to stderr
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMounted } from './tmp.js';

export const LAYERFS_BIN = process.env['LAYERFS_BIN'] ?? join(dirname(fileURLToPath(import.meta.url)), '../../bin/layerfs.js');
/** containers/storage's mount program (bin/layerfs-overlay.js). */
export const LAYERFS_OVERLAY_BIN = join(dirname(fileURLToPath(import.meta.url)), '../../bin/layerfs-overlay.js');

/** Escapes a path for a fuse-overlayfs style option list (`\` before `\`, `,` and `:`). */
export function escapeOptionPath(path: string): string {
  return path.replace(/[\\,:]/g, (ch) => `\\${ch}`);
}

export interface MountOptions {
  /** Lower layer directories, top first. */
  lowers: string[];
  upper?: string;
  workdir?: string;
  /** An existing empty directory. */
  mountpoint: string;
  /** How long to wait for the mount to appear (default 10 s). */
  timeoutMs?: number;
  /** Who mounts: `layerfs mount` (default) or the mount program `layerfs-overlay`. */
  mounter?: 'layerfs' | 'layerfs-overlay';
  /** More options for `layerfs mount` (e.g. --passthrough). */
  extraArgs?: string[];
}

/** What a test gets besides the mountpoint: the serving process (it runs in the foreground). */
export interface MountedInfo {
  pid: number;
}

export function mountCommand(opts: MountOptions): { cmd: string; args: string[] } {
  if (process.env['LAYERFS_TEST_MOUNTER'] === 'fuse-overlayfs') {
    const o = [`lowerdir=${opts.lowers.join(':')}`];
    if (opts.upper !== undefined) o.push(`upperdir=${opts.upper}`, `workdir=${opts.workdir ?? ''}`);
    o.push('allow_other', 'default_permissions');
    return { cmd: 'fuse-overlayfs', args: ['-f', '-o', o.join(','), opts.mountpoint] };
  }
  if (opts.mounter === 'layerfs-overlay') {
    const o = [`lowerdir=${opts.lowers.map(escapeOptionPath).join(':')}`];
    if (opts.upper !== undefined) o.push(`upperdir=${escapeOptionPath(opts.upper)}`, `workdir=${escapeOptionPath(opts.workdir ?? '')}`);
    return { cmd: process.execPath, args: [LAYERFS_OVERLAY_BIN, '-f', '-o', o.join(','), opts.mountpoint] };
  }
  const args = [LAYERFS_BIN, 'mount', '--foreground', ...(opts.extraArgs ?? []), '--lower', opts.lowers.join(':')];
  if (opts.upper !== undefined) args.push('--upper', opts.upper, '--workdir', opts.workdir ?? '');
  args.push(opts.mountpoint);
  return { cmd: process.execPath, args };
}

/**
 * Mounts for a whole suite (`before`); `release()` (in `after`) unmounts and settles once the
 * daemon is gone, rejecting with its output if it died while the suite ran.
 */
export async function mountForSuite(opts: MountOptions): Promise<{ mountpoint: string; release: () => Promise<void> }> {
  let unmount!: () => void;
  let done!: Promise<void>;
  const mountpoint = await new Promise<string>((resolve, reject) => {
    done = withMount(opts, (m) => {
      resolve(m);
      return new Promise<void>((r) => (unmount = r));
    });
    done.catch(reject);
  });
  return {
    mountpoint,
    release: () => {
      unmount();
      return done;
    },
  };
}

/** Mounts, runs `fn(mountpoint)`, unmounts (always). */
export async function withMount<T>(opts: MountOptions, fn: (mountpoint: string, info: MountedInfo) => Promise<T>): Promise<T> {
  const { cmd, args } = mountCommand(opts);
  const verbose = process.env['LAYERFS_TEST_VERBOSE'] === '1';
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer) => {
    if (verbose) process.stderr.write(chunk);
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err) => {
      output += `\nspawn error: ${err.message}`;
      resolve({ code: -1, signal: null });
    });
  });
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((e) => (exit = e));

  try {
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    while (!isMounted(opts.mountpoint)) {
      if (exit !== undefined) {
        throw new Error(
          `mount process exited (code ${exit.code}, signal ${exit.signal}) before ${opts.mountpoint} was mounted\n` +
            `command: ${cmd} ${args.join(' ')}\noutput:\n${output}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${opts.mountpoint} to be mounted\ncommand: ${cmd} ${args.join(' ')}\noutput:\n${output}`);
      }
      await sleep(25);
    }
    let result: T;
    try {
      result = await fn(opts.mountpoint, { pid: child.pid! });
    } catch (err) {
      // A daemon that died under the test explains the test's failure: say so, with its output.
      // (The kernel may report the broken connection before the child's exit is seen here.)
      await Promise.race([exited, sleep(500)]);
      if (exit !== undefined && err instanceof Error) err.message += `\n${diedMessage(exit, output)}`;
      throw err;
    }
    if (exit !== undefined) throw new Error(diedMessage(exit, output));
    return result;
  } finally {
    await stop(child, exited, () => exit !== undefined);
    if (isMounted(opts.mountpoint)) {
      try {
        execFileSync('umount', ['-l', opts.mountpoint], { stdio: 'ignore' });
      } catch {
        // reported by the next isMounted check of whoever reuses the path
      }
    }
  }
}

function diedMessage(exit: { code: number | null; signal: NodeJS.Signals | null }, output: string): string {
  return `the mount process died while the test ran (code ${exit.code}, signal ${exit.signal}); its output:\n${output}`;
}

async function stop(child: ChildProcess, exited: Promise<unknown>, hasExited: () => boolean): Promise<void> {
  if (hasExited()) return;
  child.kill('SIGTERM');
  const timer = (ms: number) => new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), ms).unref());
  if ((await Promise.race([exited, timer(10_000)])) !== 'timeout') return;
  child.kill('SIGKILL');
  await Promise.race([exited, timer(5_000)]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
