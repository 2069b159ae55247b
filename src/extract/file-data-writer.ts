/**
 * Writes regular files' data, large chunks in the background.
 *
 * The JS thread is the extractor's bottleneck (parsing, hashing, metadata syscalls); copying a
 * 1 MiB chunk into the page cache, or sleeping in write(2) while the kernel throttles dirty pages,
 * need not be. Chunks of 64 KiB and more are therefore written by the thread pool with positional
 * writes (in any order), and a file whose writes are still running is finished (owner, mode,
 * xattrs, times, close) by a callback when they complete, while the JS thread goes on with the next
 * entries. Small chunks are written at once, and a file without background writes is finished at
 * once: a thread-pool round trip per small file would cost more than the work (handing whole small
 * files to the pool was measured 2-3x slower on 2 cores: thousands of small requests queue in front
 * of the gzip decompressor on the same pool).
 *
 * Nothing depends on a file being finished except directory metadata and the end of extraction,
 * which wait for `flush()`. Names are created synchronously and in archive order by the layer
 * writer, so a later entry that replaces or links the name sees it as usual.
 *
 * Bounded: at most MAX_BYTES of data queued and MAX_FILES files open with pending writes.
 */
import { closeSync, write, writeSync } from 'node:fs';

const ASYNC_MIN_CHUNK = 64 * 1024;
const MAX_BYTES = 8 * 1024 * 1024;
const MAX_FILES = 16;

export class DataWriters {
  #bytes = 0;
  #files = 0;
  #error: unknown;
  #waiters: Array<() => void> = [];

  /** A writer for `fd`; the fd belongs to it from now on (closed by `end` or `abandon`). */
  open(fd: number): FileDataWriter {
    return new FileDataWriter(fd, this);
  }

  /** Throws the first failure of a background write or finish. */
  check(): void {
    if (this.#error !== undefined) throw this.#error;
  }

  /** Waits for every pending write and finish; throws the first failure. */
  async flush(): Promise<void> {
    await this.settle();
    this.check();
  }

  /** Waits for every pending write and finish, failed or not. */
  async settle(): Promise<void> {
    await this.until(() => this.#files === 0);
  }

  /** @internal */
  until(done: () => boolean): Promise<void> | undefined {
    if (done()) return undefined;
    return (async () => {
      while (!done()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    })();
  }

  /** @internal */
  hasRoom(): boolean {
    return this.#bytes <= MAX_BYTES && this.#files <= MAX_FILES;
  }

  /** @internal accounting by FileDataWriter */
  account(bytes: number, files: number, error?: unknown): void {
    this.#bytes += bytes;
    this.#files += files;
    if (error !== undefined) this.#error ??= error;
    if (bytes < 0 || files < 0) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const wake of waiters) wake();
    }
  }
}

export class FileDataWriter {
  readonly #fd: number;
  readonly #pool: DataWriters;
  #position = 0;
  #pending = 0;
  #finish: (() => void) | undefined;
  #failed = false;
  /** Counted among the pool's files with background work. */
  #counted = false;

  constructor(fd: number, pool: DataWriters) {
    this.#fd = fd;
    this.#pool = pool;
  }

  /** Writes `chunk` after the previous ones; a promise means "wait before giving more". */
  write(chunk: Buffer): Promise<void> | undefined {
    this.#pool.check();
    const position = this.#position;
    this.#position += chunk.length;
    if (chunk.length < ASYNC_MIN_CHUNK) {
      for (let done = 0; done < chunk.length; ) done += writeSync(this.#fd, chunk, done, chunk.length - done, position + done);
      return undefined;
    }
    if (!this.#counted) {
      this.#counted = true;
      this.#pool.account(0, 1); // this file now has background work
    }
    this.#pending++;
    this.#pool.account(chunk.length, 0);
    this.#writeAll(chunk, 0, position);
    return this.#pool.until(() => this.#pool.hasRoom());
  }

  /** Waits until this file's background writes are done. */
  async written(): Promise<void> {
    await this.#pool.until(() => this.#pending === 0);
  }

  /**
   * No more data: runs `finish` (owner, mode, xattrs, times — synchronous calls on the fd) and
   * closes the fd, now or when the background writes complete. A failure of `finish` is thrown
   * here if it runs now, else reported by `DataWriters.check/flush`.
   */
  end(finish: () => void): void {
    this.#finish = finish;
    if (this.#pending === 0) this.#complete(true);
  }

  /** Extraction failed: just close the fd once pending writes are done. */
  abandon(): void {
    this.#failed = true;
    if (this.#finish === undefined) this.end(() => {});
  }

  #writeAll(chunk: Buffer, offset: number, position: number): void {
    write(this.#fd, chunk, offset, chunk.length - offset, position, (err, written) => {
      if (err === null && offset + written < chunk.length) {
        this.#writeAll(chunk, offset + written, position + written); // short write: go on
        return;
      }
      if (err !== null) {
        this.#failed = true;
        this.#pool.account(0, 0, err);
      }
      this.#pending--;
      this.#pool.account(-chunk.length, 0);
      if (this.#pending === 0 && this.#finish !== undefined) this.#complete(false);
    });
  }

  #complete(now: boolean): void {
    try {
      if (!this.#failed) this.#finish!();
    } catch (err) {
      if (now) throw err;
      this.#pool.account(0, 0, err);
    } finally {
      closeSync(this.#fd);
      if (this.#counted) this.#pool.account(0, -1);
    }
  }
}
