import type { Node } from './node.js';

/** An open file of the mount: the host fd behind it and which copy of the node it reads. */
export interface OpenFile {
  node: Node;
  fd: number;
  flags: number;
  writable: boolean;
  /** node.generation when the fd was opened: a copy-up since then means the fd is on the old copy. */
  generation: number;
}

/** Open files by handle number (>= 1, reused after release, so numbers stay small). */
export class HandleTable {
  readonly #open = new Map<number, OpenFile>();
  readonly #free: number[] = [];
  #next = 1;

  add(file: OpenFile): number {
    const fh = this.#free.pop() ?? this.#next++;
    this.#open.set(fh, file);
    return fh;
  }

  get(fh: number): OpenFile | undefined {
    return this.#open.get(fh);
  }

  delete(fh: number): OpenFile | undefined {
    const file = this.#open.get(fh);
    if (file === undefined) return undefined;
    this.#open.delete(fh);
    this.#free.push(fh);
    return file;
  }

  all(): OpenFile[] {
    return [...this.#open.values()];
  }
}
