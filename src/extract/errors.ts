/**
 * Errors of layer extraction. Every failure of `extractLayer`, `readLayerIndex` and
 * `verifyLayerAgainstIndex` is a LayerError with a stable `code`, so the store (and the CLI) can
 * tell a bad blob (retry the download, or give up on the image) from a local problem (disk full).
 * Filesystem failures keep the original Node error as `cause` (its `code` may be ENOSPC, EACCES...).
 */
export type LayerErrorCode =
  /** An entry name or hardlink target leaves the layer, has NUL bytes, or a parent is not a directory. */
  | 'ERR_LAYER_UNSAFE_PATH'
  /** sha256 of the compressed bytes differs from `expectedDigest`. */
  | 'ERR_LAYER_DIGEST_MISMATCH'
  /** sha256 of the uncompressed tar differs from `expectedDiffId`. */
  | 'ERR_LAYER_DIFFID_MISMATCH'
  /** The compressed stream is longer or shorter than `expectedSize`. */
  | 'ERR_LAYER_SIZE_MISMATCH'
  /** Not a valid (compressed) tar stream: bad checksum, bad PAX record, truncated, bad sparse map... */
  | 'ERR_LAYER_CORRUPT'
  /** A whiteout marker that names nothing or another marker, or a marker that is not a plain file. */
  | 'ERR_LAYER_INVALID_WHITEOUT'
  /** A PAX or GNU long-name header above the size cap (bounded memory). */
  | 'ERR_LAYER_TOO_LARGE_HEADER'
  /** Valid tar, but something layerfs does not extract (bzip2/xz, unknown entry type, non-UTF-8 name). */
  | 'ERR_LAYER_UNSUPPORTED'
  /** The target directory is missing, not a directory, or not empty. */
  | 'ERR_LAYER_BAD_TARGET'
  /** Reading the input stream failed (e.g. a reset connection); `cause` is the stream's error. */
  | 'ERR_LAYER_READ'
  /** A filesystem call failed while writing the layer; `cause` is the Node error. */
  | 'ERR_LAYER_IO'
  /** A metadata index file that is not a complete layerfs index. */
  | 'ERR_LAYER_INDEX_CORRUPT';

export class LayerError extends Error {
  readonly code: LayerErrorCode;
  /** The tar entry name (as in the archive) the error is about, when there is one. */
  readonly entry: string | undefined;

  constructor(code: LayerErrorCode, message: string, options?: { entry?: string; cause?: unknown }) {
    const entry = options?.entry;
    super(entry === undefined ? message : `${message} (entry ${JSON.stringify(entry)})`, {
      cause: options?.cause,
    });
    this.name = 'LayerError';
    this.code = code;
    this.entry = entry;
  }
}

export function isLayerError(err: unknown, ...codes: LayerErrorCode[]): err is LayerError {
  return err instanceof LayerError && (codes.length === 0 || codes.includes(err.code));
}
