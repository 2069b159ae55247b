import { log } from '../log.js';
import type { Descriptor } from '../oci/types.js';
import { Authenticator, type AuthCredentials } from '../registry/auth.js';
import { RegistryClient } from '../registry/client.js';
import { RegistryError } from '../registry/errors.js';
import { DEFAULT_RETRY, type HttpTransport, type RetryPolicy } from '../registry/http.js';
import type { BlobBody, FetchedManifest, ImageSource } from './types.js';

/** Where a registry's content can be fetched: its mirrors first, then the registry itself. */
export interface Endpoint {
  /** 'https://host[:port][/prefix]'. */
  baseUrl: string;
  mirror: boolean;
  /** How progress output names it: 'mirror https://m1', 'registry docker.io'. */
  label: string;
}

export interface RegistrySourceOptions {
  http: HttpTransport;
  /** Mirrors in order of preference, then the upstream registry (last). */
  endpoints: Endpoint[];
  /** Credentials for a host ('registry:port'), looked up when a server asks for them. */
  credentials: (host: string) => Promise<AuthCredentials | undefined>;
  /** Whether plain HTTP is allowed to a host (token realms are checked with it too). */
  allowPlainHttp: (host: string) => boolean;
  retry?: RetryPolicy;
}

/**
 * An image repository on a registry and its mirrors. A mirror that fails (down, missing the
 * content, refusing us) is skipped for the next one, and the upstream registry is asked last;
 * the upstream's error is the one reported. A mirror that cannot be reached, times out or answers
 * 429 or 5xx is not asked again by this source: each later request would only wait for the same
 * failure. One that lacks something (404) or refuses us may still have the rest.
 */
export class RegistrySource implements ImageSource {
  readonly name: string;
  readonly #clients: Array<{ endpoint: Endpoint; client: RegistryClient }>;
  readonly #mirrorsDown = new Set<Endpoint>();

  constructor(registry: string, repository: string, options: RegistrySourceOptions) {
    this.name = `${registry}/${repository}`;
    const authenticators = new Map<string, Authenticator>();
    this.#clients = options.endpoints.map((endpoint) => {
      const host = new URL(endpoint.baseUrl).host;
      let auth = authenticators.get(host);
      if (auth === undefined) {
        auth = new Authenticator(options.http, host, () => options.credentials(host), options.allowPlainHttp);
        authenticators.set(host, auth);
      }
      // A mirror gets one attempt per request: when it fails, the next source is the better
      // retry (waiting out a full backoff on every request to a dead mirror would take minutes).
      const retry = endpoint.mirror ? { ...(options.retry ?? DEFAULT_RETRY), attempts: 1 } : options.retry;
      return { endpoint, client: new RegistryClient(options.http, auth, endpoint.baseUrl, repository, { retry }) };
    });
    if (this.#clients.length === 0) throw new RegistryError('ERR_CONFIG', `no endpoint for ${registry}`);
  }

  /** The client of the registry itself (not a mirror): for tags, pushes and --remote inspect. */
  get upstream(): RegistryClient {
    return this.#clients[this.#clients.length - 1]!.client;
  }

  async manifest(reference: string): Promise<FetchedManifest> {
    return this.#firstThatWorks(`manifest ${reference}`, ({ client }) => client.getManifest(reference));
  }

  async blob(descriptor: Descriptor, offset = 0): Promise<BlobBody> {
    return this.#firstThatWorks(`blob ${descriptor.digest}`, async ({ endpoint, client }) => {
      const { stream, offset: start } = await client.getBlob(descriptor, offset);
      return { stream, offset: start, servedBy: endpoint.label };
    });
  }

  async close(): Promise<void> {
    // The HTTP transport belongs to whoever made it (it may serve several sources).
  }

  async #firstThatWorks<T>(what: string, fn: (c: { endpoint: Endpoint; client: RegistryClient }) => Promise<T>): Promise<T> {
    for (const entry of this.#clients) {
      if (this.#mirrorsDown.has(entry.endpoint)) continue;
      try {
        return await fn(entry);
      } catch (err) {
        if (!entry.endpoint.mirror) throw err;
        const down = err instanceof RegistryError && (err.temporary || err.code === 'ERR_REGISTRY_NETWORK');
        if (down) this.#mirrorsDown.add(entry.endpoint);
        log.warn(`${what}: ${entry.endpoint.label} failed (${(err as Error).message}); ${down ? 'not asking it again; ' : ''}trying the next source`);
      }
    }
    throw new Error('unreachable: the upstream registry is always last');
  }
}
