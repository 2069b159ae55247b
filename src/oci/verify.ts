import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { Digest } from './digest.js';

export type VerifyErrorCode = 'ERR_DIGEST_MISMATCH' | 'ERR_SIZE_MISMATCH';

export class VerifyError extends Error {
  readonly code: VerifyErrorCode;
  constructor(code: VerifyErrorCode, message: string) {
    super(message);
    this.name = 'VerifyError';
    this.code = code;
  }
}

/**
 * Passes bytes through while hashing and counting them; at the end of the stream it fails if
 * the size or the digest differ from what was expected. Nothing unverified is ever reported as
 * complete: a consumer sees the error before it could commit what it wrote.
 */
export class VerifyingStream extends Transform {
  readonly #hash = createHash('sha256');
  readonly #expected: { digest?: Digest; size?: number };
  #size = 0;
  digest: Digest | undefined;

  constructor(expected: { digest?: Digest; size?: number }) {
    super();
    this.#expected = expected;
  }

  get size(): number {
    return this.#size;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#size += chunk.length;
    if (this.#expected.size !== undefined && this.#size > this.#expected.size) {
      done(new VerifyError('ERR_SIZE_MISMATCH', `more than the expected ${this.#expected.size} bytes`));
      return;
    }
    this.#hash.update(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.digest = `sha256:${this.#hash.digest('hex')}`;
    if (this.#expected.size !== undefined && this.#size !== this.#expected.size) {
      done(new VerifyError('ERR_SIZE_MISMATCH', `got ${this.#size} bytes, expected ${this.#expected.size}`));
    } else if (this.#expected.digest !== undefined && this.digest !== this.#expected.digest) {
      done(new VerifyError('ERR_DIGEST_MISMATCH', `content has digest ${this.digest}, expected ${this.#expected.digest}`));
    } else {
      done();
    }
  }
}
