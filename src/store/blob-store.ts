import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { isErrno } from '../errors.js';
import { type Digest, sha256 } from '../oci/digest.js';
import { VerifyingStream } from '../oci/verify.js';
import { StoreError } from './errors.js';
import type { StorePaths } from './paths.js';
import { TempArea } from './temp-area.js';
import { tryWithLock, withLock } from './lock.js';
import { PartialBlob } from './partial-blob.js';

/**
 * Content-addressed blobs (`blobs/sha256/<hex>`). A blob is written to the temp area, verified
 * while it streams, fsynced and renamed into place; if the name exists another writer won and
 * its (identical, verified) copy is kept.
 */
export class BlobStore {
  readonly #paths: StorePaths;
  readonly #temp: TempArea;

  constructor(paths: StorePaths, temp: TempArea) {
    this.#paths = paths;
    this.#temp = temp;
  }

  path(digest: Digest): string {
    return this.#paths.blob(digest);
  }

  async size(digest: Digest): Promise<number | undefined> {
    const st = await fsp.stat(this.path(digest)).catch(() => undefined);
    return st?.isFile() ? st.size : undefined;
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.size(digest)) !== undefined;
  }

  open(digest: Digest): Readable {
    return createReadStream(this.path(digest));
  }

  async read(digest: Digest): Promise<Buffer> {
    try {
      return await fsp.readFile(this.path(digest));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new StoreError('ERR_STORE_NOT_FOUND', `blob ${digest} is not in the store`);
      throw err;
    }
  }

  /** Stores `bytes` (a manifest or config) and returns its digest. */
  async write(bytes: Buffer): Promise<Digest> {
    const digest = sha256(bytes);
    if (await this.has(digest)) return digest;
    await this.#temp.withDir('blob', async (dir) => {
      const file = join(dir, 'blob');
      await fsp.writeFile(file, bytes, { flush: true });
      await this.#commit(file, digest);
    });
    return digest;
  }

  /**
   * Streams `body` into the store, verifying digest and size at its end; nothing is visible
   * under the digest unless it matched. Returns the digest (the expected one, or the computed).
   */
  async ingest(body: Readable, expected: { digest?: Digest; size?: number }): Promise<Digest> {
    return this.#temp.withDir('blob', async (dir) => {
      const file = join(dir, 'blob');
      const verify = new VerifyingStream(expected);
      await pipeline(body, verify, createWriteStream(file, { flush: true }));
      const digest = verify.digest!;
      await this.#commit(file, digest);
      return digest;
    });
  }

  /**
   * Moves a file this process wrote, and hashed while writing, into the store under `digest`
   * (a committed layer): no second read to verify bytes that never left the process. The file
   * must be in the store's temp area (same filesystem).
   */
  async adopt(file: string, digest: Digest): Promise<void> {
    const handle = await fsp.open(file, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.#commit(file, digest);
  }

  /**
   * Runs `fn` with the resumable download of `digest` (see PartialBlob), under the blob's lock so
   * one process at a time appends to it; another process pulling the same blob waits, then finds
   * it stored. `fn` must end with `commitDownload` or leave the partial file for the next run.
   */
  async download<T>(digest: Digest, size: number, fn: (partial: PartialBlob) => Promise<T>): Promise<T> {
    await fsp.mkdir(this.#paths.downloadsDir, { recursive: true, mode: 0o700 });
    await fsp.mkdir(this.#paths.locksDir, { recursive: true, mode: 0o700 });
    return withLock(this.#paths.lock(`blob-${digest.slice(7)}`), 'exclusive', async () => {
      const partial = await PartialBlob.open(this.#paths.download(digest), digest, size);
      try {
        return await fn(partial);
      } finally {
        await partial.close();
        // Nothing arrived: an empty file would only be clutter in downloads/.
        if (partial.size === 0) await fsp.rm(partial.path, { force: true });
      }
    });
  }

  /** Verifies a finished download and moves it into the store. */
  async commitDownload(partial: PartialBlob): Promise<void> {
    try {
      await partial.verify();
    } catch (err) {
      await partial.discard();
      throw err;
    }
    await this.#commit(partial.path, partial.digest);
    await fsp.rm(partial.path, { force: true });
  }

  /** Partial downloads that no process is working on (for prune). */
  async removeIdleDownloads(): Promise<number> {
    const names = await fsp.readdir(this.#paths.downloadsDir).catch(() => [] as string[]);
    let freed = 0;
    await fsp.mkdir(this.#paths.locksDir, { recursive: true, mode: 0o700 });
    for (const name of names.filter((n) => /^[a-f0-9]{64}$/.test(n))) {
      // A download that holds its lock is in progress: left alone.
      await tryWithLock(this.#paths.lock(`blob-${name}`), async () => {
        const path = join(this.#paths.downloadsDir, name);
        freed += (await fsp.stat(path).catch(() => undefined))?.size ?? 0;
        await fsp.rm(path, { force: true });
      });
    }
    return freed;
  }

  async #commit(file: string, digest: Digest): Promise<void> {
    await fsp.mkdir(this.#paths.blobsDir, { recursive: true });
    try {
      // link() fails with EEXIST instead of replacing: the first complete copy wins.
      await fsp.link(file, this.path(digest));
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
    }
  }

  async remove(digest: Digest): Promise<void> {
    await fsp.rm(this.path(digest), { force: true });
  }

  async list(): Promise<Digest[]> {
    const names = await fsp.readdir(this.#paths.blobsDir).catch(() => [] as string[]);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}` as Digest);
  }
}
