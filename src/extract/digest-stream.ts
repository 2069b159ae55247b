/**
 * sha256 and byte count of a stream, computed as the chunks go by (design decision 6: verification
 * lives in the stream). Used twice per layer: on the compressed bytes (the blob digest) and on the
 * uncompressed tar (the diffID). On the JS thread: a worker thread was measured too, and copying
 * the bytes to it cost about as much as hashing them here (sha256 uses the CPU's SHA extensions).
 */
import { createHash, type Hash } from 'node:crypto';
import { LayerError } from './errors.js';

export type Sha256Digest = `sha256:${string}`;

export class StreamDigest {
  readonly #hash: Hash = createHash('sha256');
  readonly #maxBytes: number | undefined;
  #bytes = 0;
  #digest: Sha256Digest | undefined;

  /** `maxBytes`: fail as soon as more bytes than this arrive (an announced size was exceeded). */
  constructor(maxBytes?: number) {
    this.#maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Passes `source` through, hashing and counting it. */
  async *tap(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      this.#bytes += chunk.length;
      if (this.#maxBytes !== undefined && this.#bytes > this.#maxBytes) {
        throw new LayerError(
          'ERR_LAYER_SIZE_MISMATCH',
          `layer blob is larger than its expected size of ${this.#maxBytes} bytes`,
        );
      }
      this.#hash.update(chunk);
      yield chunk;
    }
  }

  /** The final digest (call once the stream has ended). */
  digest(): Sha256Digest {
    this.#digest ??= `sha256:${this.#hash.digest('hex')}`;
    return this.#digest;
  }
}

/** Throws `code` when `expected` is given and differs from `actual` (case-insensitive hex). */
export function checkDigest(
  code: 'ERR_LAYER_DIGEST_MISMATCH' | 'ERR_LAYER_DIFFID_MISMATCH',
  what: string,
  expected: string | undefined,
  actual: Sha256Digest,
): void {
  if (expected === undefined) return;
  if (!/^sha256:[0-9a-fA-F]{64}$/.test(expected)) {
    throw new LayerError(code, `expected ${what} ${JSON.stringify(expected)} is not a sha256 digest`);
  }
  if (expected.toLowerCase() !== actual) {
    throw new LayerError(code, `${what} mismatch: expected ${expected}, got ${actual}`);
  }
}
