import { createHash, type Hash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import type { Digest } from '../oci/digest.js';
import { VerifyError } from '../oci/verify.js';

/**
 * A blob being downloaded: `downloads/<hex>` holds the bytes received so far, so a pull that was
 * interrupted (Ctrl-C, a crash, a dead connection) continues where it stopped. The file is only
 * ever appended to by the holder of the blob's lock; every byte, old and new, goes through the
 * running hash, and the blob enters the store only if digest and size match at the end.
 */
export class PartialBlob {
  readonly path: string;
  readonly digest: Digest;
  readonly expectedSize: number;
  readonly #file: fsp.FileHandle;
  readonly #hash: Hash = createHash('sha256');
  /** Bytes on disk, which is also where the next append goes. */
  #size: number;
  /** Bytes that went through the hash (all of them, before commit). */
  #hashed = 0;

  private constructor(path: string, digest: Digest, expectedSize: number, file: fsp.FileHandle, size: number) {
    this.path = path;
    this.digest = digest;
    this.expectedSize = expectedSize;
    this.#file = file;
    this.#size = size;
  }

  /** Opens (or starts) the partial download of `digest`. The caller holds the blob's lock. */
  static async open(path: string, digest: Digest, expectedSize: number): Promise<PartialBlob> {
    const file = await fsp.open(path, 'a+', 0o600);
    let { size } = await file.stat();
    if (size > expectedSize) {
      // Longer than the blob can be: not a prefix of it. Start again.
      await file.truncate(0);
      size = 0;
    }
    return new PartialBlob(path, digest, expectedSize, file, size);
  }

  /** Bytes already downloaded by earlier attempts. */
  get size(): number {
    return this.#size;
  }

  /** The bytes already on disk, hashed as they are read (call once, before any append). */
  async *replay(): AsyncGenerator<Buffer> {
    if (this.#size === 0) return;
    for await (const chunk of createReadStream(this.path, { start: 0, end: this.#size - 1, highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
      this.#hash.update(chunk);
      this.#hashed += chunk.length;
      yield chunk;
    }
  }

  async append(chunk: Buffer): Promise<void> {
    if (this.#size + chunk.length > this.expectedSize) {
      throw new VerifyError('ERR_SIZE_MISMATCH', `blob ${this.digest}: more than the expected ${this.expectedSize} bytes`);
    }
    this.#hash.update(chunk);
    this.#hashed += chunk.length;
    let written = 0;
    while (written < chunk.length) {
      const { bytesWritten } = await this.#file.write(chunk, written, chunk.length - written, this.#size + written);
      written += bytesWritten;
    }
    this.#size += chunk.length;
  }

  /** Checks size and digest and makes the file durable; throws VerifyError on a mismatch. */
  async verify(): Promise<void> {
    if (this.#hashed !== this.#size) throw new Error('PartialBlob.verify before every byte was hashed');
    if (this.#size !== this.expectedSize) {
      throw new VerifyError('ERR_SIZE_MISMATCH', `blob ${this.digest}: got ${this.#size} bytes, expected ${this.expectedSize}`);
    }
    const digest = `sha256:${this.#hash.copy().digest('hex')}`;
    if (digest !== this.digest) throw new VerifyError('ERR_DIGEST_MISMATCH', `blob ${this.digest}: content has digest ${digest}`);
    await this.#file.sync();
  }

  async close(): Promise<void> {
    await this.#file.close().catch(() => undefined);
  }

  /** Drops what was downloaded (it failed verification: no prefix of it can be trusted). */
  async discard(): Promise<void> {
    await this.close();
    await fsp.rm(this.path, { force: true });
  }
}
