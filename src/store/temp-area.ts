import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { processAlive } from '../proc.js';

/**
 * Work in progress lives in `tmp/<pid>-<random>/`, on the store's filesystem so results can be
 * renamed into place. A directory whose process is dead is a crash leftover and is removed.
 */
export class TempArea {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  async make(purpose: string): Promise<string> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const path = join(this.dir, `${process.pid}-${purpose}-${randomBytes(6).toString('hex')}`);
    await fsp.mkdir(path, { mode: 0o700 });
    return path;
  }

  /** Runs `fn` with a fresh temp directory, removed afterwards whatever happens. */
  async withDir<T>(purpose: string, fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = await this.make(purpose);
    try {
      return await fn(dir);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  /** Removes leftovers of processes that no longer run. */
  async cleanLeftovers(): Promise<string[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    const removed: string[] = [];
    for (const name of names) {
      const pid = Number.parseInt(name.split('-')[0] ?? '', 10);
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) continue;
      await fsp.rm(join(this.dir, name), { recursive: true, force: true });
      removed.push(name);
    }
    return removed;
  }
}
