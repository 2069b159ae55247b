import { constants as fsc, promises as fsp } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { allInOrder } from '../concurrency.js';
import { UserError, isErrno } from '../errors.js';
import { mountAt } from './mountinfo.js';
import { isStale } from './unmount.js';

export interface StackPaths {
  lowers: string[];
  upper?: string;
  workdir?: string;
}

/** Resolves and checks the directories of a stack, with a message naming whatever is wrong. */
export async function validateStack(input: StackPaths): Promise<StackPaths> {
  if (input.lowers.length === 0) throw new UserError('at least one lower directory is needed (--lower DIR[:DIR...])');
  const lowers = input.lowers.map((dir) => resolve(dir));
  const upper = input.upper === undefined ? undefined : resolve(input.upper);
  await allInOrder([...lowers.map((dir) => requireDirectory(dir, 'lower directory')), ...(upper === undefined ? [] : [requireDirectory(upper, 'upper directory')])]);
  if (upper === undefined) {
    if (input.workdir !== undefined) throw new UserError('--workdir only makes sense with --upper');
    return { lowers };
  }
  const workdir = resolve(input.workdir ?? join(dirname(upper), `.${basename(upper)}.layerfs-work`));
  if (input.workdir === undefined) await fsp.mkdir(workdir, { recursive: true, mode: 0o700 });
  await requireDirectory(workdir, 'work directory');
  const [upperSt, workSt] = await Promise.all([fsp.stat(upper), fsp.stat(workdir)]);
  if (upperSt.dev !== workSt.dev) {
    throw new UserError(`work directory ${workdir} must be on the same filesystem as the upper directory ${upper}`);
  }
  for (const dir of [...lowers, workdir]) {
    if (overlaps(dir, upper)) throw new UserError(`${dir} and the upper directory ${upper} overlap; they must be separate trees`);
  }
  if (overlaps(workdir, upper)) throw new UserError('the work directory must not be inside the upper directory');
  return { lowers, upper, workdir };
}

/**
 * Checks that `mountpoint` can take a new mount: a directory, not mounted on, empty. Returns it
 * resolved; `checkMountpointApart` then compares it with the stack.
 */
export async function checkMountpointFree(mountpoint: string): Promise<string> {
  const path = resolve(mountpoint);
  const notStale = async () => {
    if (await isStale(path)) throw new UserError(`${path} holds a stale mount whose daemon has died; clear it with: layerfs umount ${path}`);
  };
  const notMountedOn = async () => {
    if ((await mountAt(path)) !== undefined) {
      throw new UserError(`${path} is busy: something is already mounted there (layerfs umount ${path} to clear a layerfs mount)`);
    }
  };
  await allInOrder([notStale(), requireDirectory(path, 'mountpoint'), notMountedOn()]);
  // Only now: listing what is mounted there would ask that filesystem, which may not answer.
  const entries = await fsp.readdir(path);
  if (entries.length > 0) throw new UserError(`mountpoint ${path} is not empty`);
  return path;
}

/** Checks that a (resolved) mountpoint is neither inside a layer of the stack nor contains one. */
export function checkMountpointApart(path: string, stack: StackPaths): void {
  for (const dir of [...stack.lowers, stack.upper, stack.workdir]) {
    if (dir !== undefined && overlaps(dir, path)) {
      throw new UserError(`mountpoint ${path} and ${dir} overlap; a layer must not be inside its own mount or contain it`);
    }
  }
}

/** FUSE needs /dev/fuse and, for this transport, root (libfuse 2 mounts with mount(2)). */
export async function checkFuseAvailable(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new UserError('layerfs mount needs root privileges (run it with sudo); rootless mounts are not supported yet');
  }
  try {
    const handle = await fsp.open('/dev/fuse', fsc.O_RDWR);
    const st = await handle.stat();
    await handle.close();
    // The FUSE device is character device 10,229 (misc major, FUSE minor).
    if (!st.isCharacterDevice() || st.rdev !== ((10 << 8) | 229)) throw new UserError('cannot use /dev/fuse: it is not the FUSE device');
  } catch (err) {
    if (err instanceof UserError) throw err;
    const reason = isErrno(err, 'ENOENT') ? 'it does not exist (load the fuse module: modprobe fuse)' : (err as Error).message;
    throw new UserError(`cannot use /dev/fuse: ${reason}`, { cause: err });
  }
}

async function requireDirectory(path: string, what: string): Promise<void> {
  let st;
  try {
    st = await fsp.stat(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new UserError(`${what} ${path} does not exist`);
    if (isErrno(err, 'EACCES')) throw new UserError(`${what} ${path} is not accessible (permission denied)`);
    throw new UserError(`${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!st.isDirectory()) throw new UserError(`${what} ${path} is not a directory`);
}

function overlaps(a: string, b: string): boolean {
  const inside = (x: string, y: string) => {
    const rel = relative(y, x);
    return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
  };
  return inside(a, b) || inside(b, a);
}
