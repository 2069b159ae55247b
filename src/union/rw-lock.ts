/**
 * A readers-writer lock for async code: lookups and listings share it, anything that changes the
 * upper takes it alone, so no cache is filled from a tree that is half-way through a change.
 */
export class RwLock {
  #readers = 0;
  #writer = false;
  readonly #queue: Array<{ write: boolean; wake: () => void }> = [];

  async read<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#writer || this.#queue.length > 0) await this.#wait(false);
    else this.#readers++;
    try {
      return await fn();
    } finally {
      this.#readers--;
      this.#drain();
    }
  }

  async write<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#writer || this.#readers > 0 || this.#queue.length > 0) await this.#wait(true);
    else this.#writer = true;
    try {
      return await fn();
    } finally {
      this.#writer = false;
      this.#drain();
    }
  }

  #wait(write: boolean): Promise<void> {
    return new Promise((wake) => this.#queue.push({ write, wake }));
  }

  #drain(): void {
    while (!this.#writer && this.#queue.length > 0) {
      const next = this.#queue[0]!;
      if (next.write) {
        if (this.#readers > 0) return;
        this.#queue.shift();
        this.#writer = true;
        next.wake();
        return;
      }
      this.#queue.shift();
      this.#readers++;
      next.wake();
    }
  }
}
