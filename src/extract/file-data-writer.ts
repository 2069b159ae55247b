/**
 * Writes a regular file's data, large chunks in the background.
 *
 * The JS thread is the extractor's bottleneck (parsing, hashing, metadata syscalls); copying a
 * 1 MiB chunk into the page cache, or sleeping in write(2) while the kernel throttles dirty pages,
 * need not be. Chunks of 64 KiB and more are therefore written by the thread pool with positional
 * writes (so they may complete in any order) while the JS thread moves on to the next chunk; small
 * chunks are written at once (a thread-pool round trip would cost more than the copy). At most
 * MAX_IN_FLIGHT bytes are queued per file, which bounds memory.
 *
 * (Handing whole small files to the thread pool — write, chown, chmod, utimensat, close — was
 * measured too: on 2 cores it made extraction 2-3x slower, as thousands of small requests queue in
 * front of the gzip decompressor on the same pool.)
 */
import { write, writeSync } from 'node:fs';

const ASYNC_MIN_CHUNK = 64 * 1024;
const MAX_IN_FLIGHT = 8 * 1024 * 1024;

export class FileDataWriter {
  readonly #fd: number;
  #position = 0;
  #inFlightBytes = 0;
  #inFlight = 0;
  #error: unknown;
  /** Woken whenever a background write completes. */
  #waiters: Array<() => void> = [];

  constructor(fd: number) {
    this.#fd = fd;
  }

  /** Writes `chunk` after the previous ones; a promise means "wait before giving more". */
  write(chunk: Buffer): Promise<void> | undefined {
    if (this.#error !== undefined) throw this.#error;
    const position = this.#position;
    this.#position += chunk.length;
    if (chunk.length < ASYNC_MIN_CHUNK) {
      let done = 0;
      while (done < chunk.length) done += writeSync(this.#fd, chunk, done, chunk.length - done, position + done);
      return undefined;
    }
    this.#inFlight++;
    this.#inFlightBytes += chunk.length;
    this.#writeAll(chunk, 0, position);
    return this.#inFlightBytes > MAX_IN_FLIGHT ? this.#until(() => this.#inFlightBytes <= MAX_IN_FLIGHT / 2) : undefined;
  }

  /** Waits for every background write; throws the first failure. */
  async flush(): Promise<void> {
    await this.settle();
    if (this.#error !== undefined) throw this.#error;
  }

  /** Waits for every background write, failed or not (before the fd may be closed). */
  async settle(): Promise<void> {
    await this.#until(() => this.#inFlight === 0);
  }

  #writeAll(chunk: Buffer, offset: number, position: number): void {
    write(this.#fd, chunk, offset, chunk.length - offset, position, (err, written) => {
      if (err === null && offset + written < chunk.length) {
        this.#writeAll(chunk, offset + written, position + written); // short write: go on
        return;
      }
      if (err !== null) this.#error ??= err;
      this.#inFlight--;
      this.#inFlightBytes -= chunk.length;
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const wake of waiters) wake();
    });
  }

  async #until(done: () => boolean): Promise<void> {
    while (!done()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
}
