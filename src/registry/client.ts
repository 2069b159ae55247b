/**
 * The distribution API for one repository on one endpoint (a registry or one of its mirrors):
 * manifests, blobs, tags. Every request goes through `#call`, which adds authorization, answers
 * challenges, maps statuses to RegistryErrors and retries what is temporary. This module knows
 * nothing of the store or of extraction: it hands out bytes and streams.
 */
import type { Readable } from 'node:stream';
import { type Digest, isDigest, sha256 } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import { type Authenticator, challengeOf, repositoryScope } from './auth.js';
import { RegistryError } from './errors.js';
import {
  DEFAULT_RETRY,
  type HttpRequest,
  type HttpResponse,
  type HttpTransport,
  type RetryPolicy,
  discard,
  header,
  headerValues,
  parseRetryAfter,
  readCapped,
  redact,
  withRetries,
} from './http.js';

/** Manifests larger than this are refused (Docker Hub's own limit is 4 MiB). */
export const MANIFEST_LIMIT = 4 * 1024 * 1024;
/** Error bodies are read only this far, for the registry's error message. */
const ERROR_BODY_LIMIT = 64 * 1024;
const TAGS_LIMIT = 16 * 1024 * 1024;

const SCHEMA1_TYPES = [
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
];

const MANIFEST_ACCEPT = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest, ...SCHEMA1_TYPES].join(', ');

export interface ManifestReply {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

export interface RegistryClientOptions {
  retry?: RetryPolicy;
}

interface CallOptions {
  expect: number[];
  /** 'pull,push' for uploads; more scopes for a cross-repository mount. */
  scopes?: string[];
  /** What the request is about, for messages ("manifest latest", "blob sha256:…"). */
  what: string;
  /** Statuses that are answers, not errors (404 for HEAD existence checks). */
  accept?: number[];
  /** Do not retry (the body is a stream that cannot be sent twice). */
  once?: boolean;
}

export class RegistryClient {
  /** The endpoint's base URL ('https://host[:port][/prefix]'). */
  readonly baseUrl: string;
  readonly repository: string;
  readonly #http: HttpTransport;
  readonly #auth: Authenticator;
  readonly #retry: RetryPolicy;

  constructor(http: HttpTransport, auth: Authenticator, baseUrl: string, repository: string, options: RegistryClientOptions = {}) {
    this.#http = http;
    this.#auth = auth;
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.repository = repository;
    this.#retry = options.retry ?? DEFAULT_RETRY;
  }

  /** GET a manifest or index by tag or digest; the digest is always computed from the bytes. */
  async getManifest(reference: string): Promise<ManifestReply> {
    const what = `manifest ${this.repository}:${reference}`;
    const { response, bytes } = await withRetries(what, this.#retry, async () => {
      const response = await this.#call({ method: 'GET', url: this.#url(`manifests/${reference}`), headers: { accept: MANIFEST_ACCEPT } }, { expect: [200], what, once: true });
      return { response, bytes: await readCapped(response, MANIFEST_LIMIT, what) };
    });
    const digest = sha256(bytes);
    if (isDigest(reference) && digest !== reference) {
      throw new RegistryError('ERR_DIGEST_MISMATCH', `${what}: the registry sent content with digest ${digest}`);
    }
    const mediaType = manifestMediaType(header(response.headers, 'content-type'), bytes);
    if (SCHEMA1_TYPES.includes(mediaType)) {
      throw new RegistryError('ERR_UNSUPPORTED', `${what} is a Docker schema 1 manifest, which layerfs does not support (deprecated since 2017; push the image again with a current tool)`);
    }
    return { bytes, mediaType, digest };
  }

  /** Whether a manifest exists, and its digest as the registry reports it. */
  async headManifest(reference: string): Promise<{ digest?: string; size?: number } | undefined> {
    const what = `manifest ${this.repository}:${reference}`;
    const response = await this.#call(
      { method: 'HEAD', url: this.#url(`manifests/${reference}`), headers: { accept: MANIFEST_ACCEPT } },
      { expect: [200], accept: [404], what },
    );
    await discard(response);
    if (response.status === 404) return undefined;
    const size = Number(header(response.headers, 'content-length'));
    return { digest: header(response.headers, 'docker-content-digest'), size: Number.isFinite(size) ? size : undefined };
  }

  /**
   * A blob's bytes from `offset` (with `Range` when offset > 0). The returned offset is where the
   * stream really starts: 0 when the server ignored the range. The bytes are not verified here.
   */
  async getBlob(descriptor: Descriptor, offset = 0): Promise<{ stream: Readable; offset: number }> {
    const what = `blob ${descriptor.digest}`;
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const response = await this.#call({ method: 'GET', url: this.#url(`blobs/${descriptor.digest}`), headers }, { expect: [200, 206], what });
    if (response.status === 206) {
      const start = /^bytes (\d+)-/.exec(header(response.headers, 'content-range') ?? '');
      if (start === null || Number(start[1]) !== offset) {
        response.body.destroy();
        throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${what}: asked for bytes from ${offset}, got Content-Range ${header(response.headers, 'content-range') ?? '(none)'}`);
      }
      return { stream: response.body, offset };
    }
    return { stream: response.body, offset: 0 };
  }

  /** Whether the registry has a blob (HEAD), with its size. */
  async hasBlob(digest: Digest, scopes?: string[]): Promise<number | undefined> {
    const response = await this.#call({ method: 'HEAD', url: this.#url(`blobs/${digest}`) }, { expect: [200], accept: [404], what: `blob ${digest}`, scopes });
    await discard(response);
    if (response.status === 404) return undefined;
    return Number(header(response.headers, 'content-length'));
  }

  /** Every tag of the repository, following `Link` pagination. */
  async listTags(): Promise<string[]> {
    const tags: string[] = [];
    let url: string | undefined = this.#url('tags/list?n=1000');
    for (let page = 0; url !== undefined && page < 10_000; page++) {
      const current: string = url;
      const response = await withRetries('tags', this.#retry, () => this.#call({ method: 'GET', url: current }, { expect: [200], what: `tags of ${this.repository}` }));
      const body = await readCapped(response, TAGS_LIMIT, 'tag list');
      let parsed: { tags?: unknown };
      try {
        parsed = JSON.parse(body.toString('utf8')) as { tags?: unknown };
      } catch {
        throw new RegistryError('ERR_REGISTRY_PROTOCOL', `tags of ${this.repository}: the registry sent something that is not JSON`);
      }
      if (parsed.tags !== null && parsed.tags !== undefined) {
        if (!Array.isArray(parsed.tags) || !parsed.tags.every((t) => typeof t === 'string')) {
          throw new RegistryError('ERR_REGISTRY_PROTOCOL', `tags of ${this.repository}: "tags" is not a list of strings`);
        }
        tags.push(...(parsed.tags as string[]));
      }
      url = nextLink(headerValues(response.headers, 'link'), current);
    }
    return tags;
  }

  /**
   * An authorized request for operations built on top of this client (uploads): `expect` lists
   * the statuses that count as success, `accept` those returned to the caller as answers.
   */
  request(req: HttpRequest, options: { expect: number[]; accept?: number[]; what: string; push?: boolean; scopes?: string[]; once?: boolean }): Promise<HttpResponse> {
    const scopes = options.scopes ?? [repositoryScope(this.repository, options.push === true ? 'pull,push' : 'pull')];
    return this.#call(req, { expect: options.expect, accept: options.accept, what: options.what, scopes, once: options.once });
  }

  /**
   * One authorized request: sends, answers a 401 challenge once, maps failures to errors.
   * Temporary failures are retried here unless `once` (the caller retries a larger unit).
   */
  async #call(req: HttpRequest, options: CallOptions): Promise<HttpResponse> {
    const attempt = async (): Promise<HttpResponse> => {
      const scopes = options.scopes ?? [repositoryScope(this.repository, 'pull')];
      const scope = scopes[0]!;
      let authorization = this.#auth.headerFor(scope);
      for (let round = 0; ; round++) {
        const headers = { ...req.headers, ...(authorization === undefined ? {} : { authorization }) };
        const response = await this.#http.send({ ...req, headers });
        if (response.status === 401 && round === 0) {
          // The cached token (if any) is refused or there was none: ask for one.
          await discard(response);
          this.#auth.invalidate(scope);
          authorization = await this.#auth.respond(challengeOf(response.headers), scopes);
          continue;
        }
        if (options.expect.includes(response.status) || options.accept?.includes(response.status)) return response;
        throw await this.#statusError(response, options.what);
      }
    };
    return options.once === true ? attempt() : withRetries(options.what, this.#retry, attempt);
  }

  async #statusError(response: HttpResponse, what: string): Promise<RegistryError> {
    const detail = await errorDetail(response);
    const where = `${what} at ${redact(response.url)}`;
    const status = response.status;
    if (status === 401) {
      const hint = (await this.#auth.hasCredentials()) ? 'the credentials were refused' : `no credentials; run \`layerfs login ${new URL(this.baseUrl).host}\``;
      return new RegistryError('ERR_REGISTRY_AUTH', `${where}: authentication failed (${hint})${detail}`, { status });
    }
    if (status === 403) return new RegistryError('ERR_REGISTRY_AUTH', `${where}: access denied${detail}`, { status });
    if (status === 404) return new RegistryError('ERR_REGISTRY_NOT_FOUND', `${what}: not found in ${this.repository} at ${new URL(this.baseUrl).host}${detail}`, { status });
    const temporary = status === 429 || status === 408 || status >= 500;
    const retryAfter = parseRetryAfter(header(response.headers, 'retry-after'));
    return new RegistryError('ERR_REGISTRY_HTTP', `${where}: HTTP ${status}${detail}`, { status, temporary, retryAfter });
  }

  #url(path: string): string {
    return `${this.baseUrl}/v2/${this.repository}/${path}`;
  }
}

/** The registry's own explanation, from its JSON error body ({"errors":[{code,message}]}). */
async function errorDetail(response: HttpResponse): Promise<string> {
  if (response.status === 0) return '';
  try {
    const body = await readCapped(response, ERROR_BODY_LIMIT, 'error body');
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const messages = (parsed.errors ?? [])
      .map((e) => [e.code, e.message].filter((x) => typeof x === 'string' && x !== '').join(': '))
      .filter((m) => m !== '');
    return messages.length === 0 ? '' : ` (${messages.join('; ').slice(0, 300)})`;
  } catch {
    response.body.destroy();
    return '';
  }
}

/**
 * The manifest's media type: Content-Type when it names a manifest type, else the document's
 * own `mediaType`, else its shape (OCI allows manifests without mediaType).
 */
export function manifestMediaType(contentType: string | undefined, bytes: Buffer): string {
  const fromHeader = contentType?.split(';')[0]?.trim();
  const known: string[] = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest, ...SCHEMA1_TYPES];
  if (fromHeader !== undefined && known.includes(fromHeader)) return fromHeader;
  let parsed: { mediaType?: unknown; manifests?: unknown; config?: unknown; schemaVersion?: unknown };
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as typeof parsed;
  } catch {
    throw new RegistryError('ERR_REGISTRY_PROTOCOL', 'the manifest is not valid JSON');
  }
  if (typeof parsed.mediaType === 'string') return parsed.mediaType;
  if (parsed.schemaVersion === 1) return SCHEMA1_TYPES[0]!;
  if (Array.isArray(parsed.manifests)) return MediaType.ociIndex;
  if (parsed.config !== undefined) return MediaType.ociManifest;
  throw new RegistryError('ERR_UNSUPPORTED', `unknown manifest type ${fromHeader ?? '(no Content-Type)'}`);
}

/** The `rel="next"` URL of a Link header, resolved against the current URL. */
export function nextLink(values: string[], current: string): string | undefined {
  for (const value of values) {
    for (const part of value.split(/,(?=\s*<)/)) {
      const match = /<([^>]*)>\s*;(.*)/.exec(part.trim());
      if (match !== null && /rel="?next"?/.test(match[2]!)) return new URL(match[1]!, current).href;
    }
  }
  return undefined;
}
