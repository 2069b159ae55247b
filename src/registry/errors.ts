/**
 * Errors of the registry client, of image sources and of their configuration. A failed HTTP
 * exchange carries its status; `temporary` says whether trying again may help (429, 5xx, a
 * dropped connection), which is what the retry policy looks at.
 */
export type RegistryErrorCode =
  | 'ERR_REFERENCE_INVALID' // a reference that does not parse
  | 'ERR_REGISTRY_AUTH' // 401/403, or a token that could not be obtained
  | 'ERR_REGISTRY_NOT_FOUND' // 404: no such repository, tag or blob
  | 'ERR_REGISTRY_HTTP' // any other unexpected status
  | 'ERR_REGISTRY_NETWORK' // connection refused, reset, DNS
  | 'ERR_REGISTRY_TIMEOUT' // no progress for too long
  | 'ERR_REGISTRY_PROTOCOL' // a reply that breaks the distribution spec (redirect loop, oversized body...)
  | 'ERR_REGISTRY_INSECURE' // plain HTTP to a host that is not allowed it
  | 'ERR_DIGEST_MISMATCH' // content does not match its digest or size
  | 'ERR_UNSUPPORTED' // schema 1 manifests, unknown media types
  | 'ERR_NO_MATCHING_PLATFORM' // an index without the wanted platform
  | 'ERR_SOURCE_INVALID' // a broken oci: layout or docker-archive: file
  | 'ERR_CREDENTIALS' // a docker config or credential helper that fails
  | 'ERR_CONFIG'; // layerfs's registries configuration file is invalid

export class RegistryError extends Error {
  readonly code: RegistryErrorCode;
  /** HTTP status of the reply that caused it, when there was one. */
  readonly status: number | undefined;
  /** True when the same request may succeed later (429, 5xx, network errors, timeouts). */
  readonly temporary: boolean;
  /** Seconds the server asked us to wait (Retry-After), if it did. */
  readonly retryAfter: number | undefined;

  constructor(
    code: RegistryErrorCode,
    message: string,
    options: { status?: number; temporary?: boolean; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.status = options.status;
    this.temporary = options.temporary ?? false;
    this.retryAfter = options.retryAfter;
  }
}

export function isRegistryError(err: unknown, code?: RegistryErrorCode): err is RegistryError {
  return err instanceof RegistryError && (code === undefined || err.code === code);
}
