import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { processAlive } from '../proc.js';
export { processAlive };

/**
 * Where running mounts leave their state and logs: /run/layerfs as root, else
 * $XDG_RUNTIME_DIR/layerfs (or /tmp/layerfs-UID). The caller may override it.
 */
export function defaultRunDir(env: NodeJS.ProcessEnv, uid: number): string {
  if (uid === 0) return '/run/layerfs';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'layerfs');
  return `/tmp/layerfs-${uid}`;
}

/** State kept for a running mount, so `umount` (and later `ps`) can find its daemon. */
export interface MountState {
  pid: number;
  mountpoint: string;
  lowers: string[];
  upper?: string;
  startedAt: string;
  logFile?: string;
  image?: { ref: string; digest: string };
  container?: string;
}

export class RunDir {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }

  #key(mountpoint: string): string {
    return createHash('sha256').update(mountpoint).digest('hex').slice(0, 16);
  }

  statePath(mountpoint: string): string {
    return join(this.root, 'mounts', `${this.#key(mountpoint)}.json`);
  }

  controlPath(mountpoint: string): string {
    return join(this.root, 'control', `${this.#key(mountpoint)}.sock`);
  }

  logPath(mountpoint: string): string {
    return join(this.root, 'logs', `${this.#key(mountpoint)}.log`);
  }

  async writeState(state: MountState): Promise<void> {
    const path = this.statePath(state.mountpoint);
    await fsp.mkdir(join(this.root, 'mounts'), { recursive: true, mode: 0o700 });
    const temp = `${path}.${process.pid}.tmp`;
    await fsp.writeFile(temp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
    await fsp.rename(temp, path);
  }

  async readState(mountpoint: string): Promise<MountState | undefined> {
    try {
      return JSON.parse(await fsp.readFile(this.statePath(mountpoint), 'utf8')) as MountState;
    } catch {
      return undefined;
    }
  }

  /** Every recorded mount (some may be stale: check their pid). */
  async listStates(): Promise<MountState[]> {
    const dir = join(this.root, 'mounts');
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    await removeOrphanedTemps(dir, names);
    const states: MountState[] = [];
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      try {
        states.push(JSON.parse(await fsp.readFile(join(dir, name), 'utf8')) as MountState);
      } catch {
        // being replaced right now
      }
    }
    return states;
  }

  async removeState(mountpoint: string, pid: number): Promise<void> {
    const state = await this.readState(mountpoint);
    if (state !== undefined && state.pid === pid) await fsp.rm(this.statePath(mountpoint), { force: true });
  }
}

/** State files half-written by a process that was killed meanwhile (`NAME.json.PID.tmp`). */
async function removeOrphanedTemps(dir: string, names: string[]): Promise<void> {
  for (const name of names) {
    const writer = /\.json\.(\d+)\.tmp$/.exec(name)?.[1];
    if (writer !== undefined && !processAlive(Number(writer))) await fsp.rm(join(dir, name), { force: true });
  }
}
