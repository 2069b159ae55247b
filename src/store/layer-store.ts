import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { isErrno } from '../errors.js';
import { type Digest, isDigest } from '../oci/digest.js';
import * as native from '../native/index.js';
import { tryWithLock, withLock } from './lock.js';
import type { StorePaths } from './paths.js';
import type { TempArea } from './temp-area.js';

/** Where a fill callback writes a new layer (both inside one temp directory). */
export interface LayerTarget {
  /** Empty directory for the layer's tree. */
  treeDir: string;
  /** Where to write the layer's metadata index. */
  indexPath: string;
}

export interface LayerInfo {
  diffId: Digest;
  /** Bytes the extracted tree takes on disk. */
  size: number;
  createdAt: string;
  /** Last time a mount or pull used the layer (the LRU order). */
  lastUsed: Date;
}

interface LayerMeta {
  diffId: Digest;
  size: number;
  createdAt: string;
}

/**
 * Extracted layers by diffID. A layer is filled in the temp area and renamed into place whole,
 * so a layer directory that exists is complete; a crash leaves only a temp directory behind.
 * Filling is single-flight across processes (flock per layer): the second process waits and
 * then uses the first one's result.
 */
export class LayerStore {
  readonly #paths: StorePaths;
  readonly #temp: TempArea;

  constructor(paths: StorePaths, temp: TempArea) {
    this.#paths = paths;
    this.#temp = temp;
  }

  treePath(diffId: Digest): string {
    return this.#paths.layerTree(diffId);
  }

  indexPath(diffId: Digest): string {
    return this.#paths.layerIndex(diffId);
  }

  async has(diffId: Digest): Promise<boolean> {
    return (await fsp.stat(this.#paths.layerMeta(diffId)).catch(() => undefined)) !== undefined;
  }

  /** Makes sure the layer exists, running `fill` only if no process has extracted it yet. */
  async ensure(diffId: Digest, fill: (target: LayerTarget) => Promise<void>): Promise<'existing' | 'created'> {
    if (await this.has(diffId)) {
      await this.touch(diffId);
      return 'existing';
    }
    await fsp.mkdir(this.#paths.locksDir, { recursive: true });
    return withLock(this.#lockPath(diffId), 'exclusive', async () => {
      if (await this.has(diffId)) return 'existing';
      await this.#temp.withDir('layer', async (dir) => {
        const treeDir = join(dir, 'fs');
        await fsp.mkdir(treeDir, { mode: 0o755 });
        await fill({ treeDir, indexPath: join(dir, 'index') });
        const meta: LayerMeta = { diffId, size: await diskUsage(treeDir), createdAt: new Date().toISOString() };
        await fsp.writeFile(join(dir, 'meta.json'), JSON.stringify(meta) + '\n', { flush: true });
        await fsp.writeFile(join(dir, 'used'), '');
        await fsp.mkdir(this.#paths.layersDir, { recursive: true });
        // meta.json is what `has` looks for, and it only appears with this rename: complete or absent.
        await native.renameat2(dir, this.#paths.layer(diffId), native.constants.RENAME_NOREPLACE);
      });
      return 'created';
    });
  }

  /** Records a use (the LRU order is the mtime of each layer's `used` file). */
  async touch(diffId: Digest): Promise<void> {
    const now = new Date();
    await fsp.utimes(join(this.#paths.layer(diffId), 'used'), now, now).catch(() => undefined);
  }

  async info(diffId: Digest): Promise<LayerInfo | undefined> {
    try {
      const meta = JSON.parse(await fsp.readFile(this.#paths.layerMeta(diffId), 'utf8')) as LayerMeta;
      const used = await fsp.stat(join(this.#paths.layer(diffId), 'used')).catch(() => undefined);
      return { diffId, size: meta.size, createdAt: meta.createdAt, lastUsed: used?.mtime ?? new Date(meta.createdAt) };
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  async list(): Promise<LayerInfo[]> {
    const names = await fsp.readdir(this.#paths.layersDir).catch(() => [] as string[]);
    const infos = await Promise.all(
      names.map((n) => `sha256:${n}`).filter(isDigest).map((diffId) => this.info(diffId)),
    );
    return infos.filter((i): i is LayerInfo => i !== undefined);
  }

  /**
   * Removes a layer unless another process holds its lock (it is being filled or checked);
   * `stillRemovable` is asked again under the lock, so a lease taken meanwhile is respected.
   */
  async remove(diffId: Digest, stillRemovable: () => Promise<boolean> = async () => true): Promise<boolean> {
    await fsp.mkdir(this.#paths.locksDir, { recursive: true });
    const result = await tryWithLock(this.#lockPath(diffId), async () => {
      if (!(await stillRemovable())) return false;
      const dir = this.#paths.layer(diffId);
      const graveyard = await this.#temp.make('remove');
      try {
        // Renamed away first: the layer vanishes at once and never looks half-deleted.
        await fsp.rename(dir, join(graveyard, 'layer'));
      } catch (err) {
        await fsp.rm(graveyard, { recursive: true, force: true });
        if (isErrno(err, 'ENOENT')) return false;
        throw err;
      }
      await fsp.rm(graveyard, { recursive: true, force: true });
      return true;
    });
    return result.locked && result.value;
  }

  /** Shared lock on a layer while it is being verified or mounted-checked. */
  withSharedLock<T>(diffId: Digest, fn: () => Promise<T>): Promise<T> {
    return withLock(this.#lockPath(diffId), 'shared', fn);
  }

  #lockPath(diffId: Digest): string {
    return this.#paths.lock(`layer-${diffId.slice(7)}`);
  }
}

/** Bytes on disk under `dir` (st_blocks), each hardlinked inode counted once. */
export async function diskUsage(dir: string): Promise<number> {
  const seen = new Set<bigint>();
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    const st = await fsp.lstat(path, { bigint: true });
    if (st.nlink > 1n && !st.isDirectory()) {
      if (seen.has(st.ino)) return;
      seen.add(st.ino);
    }
    total += Number(st.blocks) * 512;
    if (st.isDirectory()) {
      for (const name of await fsp.readdir(path)) await walk(join(path, name));
    }
  };
  await walk(dir);
  return total;
}
