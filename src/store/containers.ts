import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { isErrno } from '../errors.js';
import * as native from '../native/index.js';
import type { Digest } from '../oci/digest.js';
import { StoreError } from './errors.js';
import type { StorePaths } from './paths.js';
import type { TempArea } from './temp-area.js';

/** A writable layer and the image it sits on (what docker calls a container's rootfs). */
export interface ContainerRecord {
  name: string;
  /** The image: the name it was mounted by, and the manifest digest it resolved to. */
  image: { ref: string; digest: Digest };
  /** The upper directory: inside the container's directory unless the user chose one (--upper). */
  upper: string;
  workdir: string;
  createdAt: string;
  /** Removed when its mount ends (--rm). */
  removeOnUnmount: boolean;
  /** Where it was last mounted, and by which process (for `ps`). */
  mountpoint?: string;
  pid?: number;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export function isContainerName(name: string): boolean {
  return NAME.test(name);
}

export function checkContainerName(name: string): void {
  if (!isContainerName(name)) {
    throw new StoreError('ERR_STORE_INVALID_NAME', `invalid writable layer name ${JSON.stringify(name)}: use letters, digits, '_', '.', '-' (up to 128, starting with a letter or digit)`);
  }
}

/**
 * Writable layers (`containers/<name>/`). A mounted one is locked with flock(2) by the process
 * serving it, so it cannot be mounted twice or removed while in use, and a crash releases it.
 */
export class Containers {
  readonly #paths: StorePaths;
  readonly #temp: TempArea;

  constructor(paths: StorePaths, temp: TempArea) {
    this.#paths = paths;
    this.#temp = temp;
  }

  /** A name nobody uses yet, like docker's random container names but plain. */
  async freshName(): Promise<string> {
    for (;;) {
      const name = `layer-${randomBytes(4).toString('hex')}`;
      if ((await this.get(name)) === undefined) return name;
    }
  }

  async get(name: string): Promise<ContainerRecord | undefined> {
    checkContainerName(name);
    try {
      return JSON.parse(await fsp.readFile(this.#metaPath(name), 'utf8')) as ContainerRecord;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw new StoreError('ERR_STORE_CORRUPT', `writable layer ${name}: unreadable meta.json (${(err as Error).message})`);
    }
  }

  async list(): Promise<ContainerRecord[]> {
    const names = await fsp.readdir(this.#paths.containersDir).catch(() => [] as string[]);
    const records: ContainerRecord[] = [];
    for (const name of names.filter((n) => NAME.test(n)).sort()) {
      const record = await this.get(name).catch(() => undefined);
      if (record !== undefined) records.push(record);
    }
    return records;
  }

  /** Creates a writable layer; its directory appears whole (built in the temp area, then renamed). */
  async create(init: { name: string; image: { ref: string; digest: Digest }; upper?: string; removeOnUnmount: boolean }): Promise<ContainerRecord> {
    checkContainerName(init.name);
    const dir = this.#paths.container(init.name);
    const record: ContainerRecord = {
      name: init.name,
      image: init.image,
      upper: init.upper ?? join(dir, 'upper'),
      workdir: join(dir, 'work'),
      createdAt: new Date().toISOString(),
      removeOnUnmount: init.removeOnUnmount,
    };
    await fsp.mkdir(this.#paths.containersDir, { recursive: true, mode: 0o700 });
    await this.#temp.withDir('container', async (temp) => {
      await fsp.mkdir(join(temp, 'c'), { mode: 0o700 });
      if (init.upper === undefined) await fsp.mkdir(join(temp, 'c', 'upper'), { mode: 0o755 });
      await fsp.mkdir(join(temp, 'c', 'work'), { mode: 0o700 });
      await fsp.writeFile(join(temp, 'c', 'meta.json'), JSON.stringify(record, null, 2) + '\n', { flush: true });
      try {
        await native.renameat2(join(temp, 'c'), dir, native.constants.RENAME_NOREPLACE);
      } catch (err) {
        if (isErrno(err, 'EEXIST')) throw new StoreError('ERR_STORE_EXISTS', `a writable layer named ${init.name} already exists`);
        throw err;
      }
    });
    return record;
  }

  async update(record: ContainerRecord): Promise<void> {
    const path = this.#metaPath(record.name);
    await fsp.writeFile(`${path}.tmp`, JSON.stringify(record, null, 2) + '\n', { flush: true });
    await fsp.rename(`${path}.tmp`, path);
  }

  /**
   * Takes the layer's lock for as long as a mount serves it; fails at once if another process
   * holds it. Returns the release function.
   */
  async lock(name: string): Promise<() => Promise<void>> {
    const handle = await fsp.open(join(this.#paths.container(name), 'lock'), 'a');
    try {
      await native.flock(handle.fd, native.constants.LOCK_EX | native.constants.LOCK_NB);
    } catch (err) {
      await handle.close();
      if (isErrno(err, 'EAGAIN', 'EWOULDBLOCK')) {
        const record = await this.get(name);
        const where = record?.mountpoint === undefined ? '' : ` at ${record.mountpoint}`;
        throw new StoreError('ERR_STORE_IN_USE', `writable layer ${name} is already mounted${where}${record?.pid === undefined ? '' : ` (pid ${record.pid})`}`);
      }
      throw err;
    }
    return async () => {
      await handle.close().catch(() => undefined);
    };
  }

  /** Whether a process holds the layer's lock (it is mounted). */
  async inUse(name: string): Promise<boolean> {
    try {
      const release = await this.lock(name);
      await release();
      return false;
    } catch (err) {
      if (err instanceof StoreError && err.code === 'ERR_STORE_IN_USE') return true;
      throw err;
    }
  }

  /** Deletes a writable layer that is not mounted (its upper too, unless the user chose it). */
  async remove(name: string, options: { whileLocked?: boolean } = {}): Promise<void> {
    const record = await this.get(name);
    if (record === undefined) throw new StoreError('ERR_STORE_NOT_FOUND', `no writable layer named ${name}`);
    const release = options.whileLocked === true ? async () => undefined : await this.lock(name);
    try {
      const graveyard = await this.#temp.make('rm');
      await fsp.rename(this.#paths.container(name), join(graveyard, 'c'));
      await fsp.rm(graveyard, { recursive: true, force: true });
    } finally {
      await release();
    }
  }

  #metaPath(name: string): string {
    return join(this.#paths.container(name), 'meta.json');
  }
}
