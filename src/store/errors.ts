/** Errors of the local store, with stable codes the CLI and callers can act on. */
export type StoreErrorCode =
  | 'ERR_STORE_NOT_FOUND'
  | 'ERR_STORE_DIGEST_MISMATCH'
  | 'ERR_STORE_SIZE_MISMATCH'
  | 'ERR_STORE_IN_USE'
  | 'ERR_STORE_CORRUPT'
  | 'ERR_STORE_AMBIGUOUS'
  | 'ERR_STORE_EXISTS'
  | 'ERR_STORE_INVALID_NAME';

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}
