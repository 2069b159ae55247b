/**
 * HTTP for the registry client: one undici Agent (keep-alive, bounded connections), redirects
 * followed by hand, network failures turned into RegistryErrors, bodies read under a size cap,
 * and the retry policy. Redirects are not left to undici because two rules matter here: a blob
 * redirected to another origin (S3, a CDN) must not receive the registry's Authorization, and a
 * redirect loop must end with a clear error instead of a hang.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { log } from '../log.js';
import { RegistryError } from './errors.js';

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  body?: Buffer | Readable;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  /** The URL that answered, after redirects. */
  url: string;
}

export interface HttpOptions {
  /** Milliseconds without a byte (headers or body) before the request fails. */
  stallTimeoutMs?: number;
  /** Connections per origin. */
  connections?: number;
}

const MAX_REDIRECTS = 10;

export class HttpTransport {
  readonly #options: HttpOptions;
  // undici is loaded on the first request: commands that end up not using the network (a mount
  // of a cached image) should not pay for loading it at start-up.
  #undici: Promise<{ agent: Agent; request: typeof import('undici').request }> | undefined;

  constructor(options: HttpOptions = {}) {
    this.#options = options;
  }

  #client(): Promise<{ agent: Agent; request: typeof import('undici').request }> {
    this.#undici ??= import('undici').then((loaded) => {
      // A CommonJS package: Node gives named exports and `default`, a bundle only `default`.
      const { Agent, request } = (loaded.default as typeof loaded.default | undefined) ?? loaded;
      const stall = this.#options.stallTimeoutMs ?? 30_000;
      const agent = new Agent({
        headersTimeout: stall,
        bodyTimeout: stall,
        connect: { timeout: stall },
        connections: this.#options.connections ?? 8,
        keepAliveTimeout: 10_000,
      });
      return { agent, request };
    });
    return this.#undici;
  }

  /**
   * Sends a request and follows redirects (GET and HEAD only; a redirected upload would have
   * to resend its body). `Authorization` goes only to the origin of the first URL.
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    const { agent, request } = await this.#client();
    let url = req.url;
    const origin = new URL(url).origin;
    for (let hop = 0; ; hop++) {
      const sameOrigin = new URL(url).origin === origin;
      const headers = sameOrigin ? req.headers : withoutAuthorization(req.headers);
      let response: Dispatcher.ResponseData;
      try {
        response = await request(url, { method: req.method, headers, body: req.body, dispatcher: agent });
      } catch (err) {
        throw networkError(err, req.method, url);
      }
      const location = header(response.headers, 'location');
      const redirect = [301, 302, 303, 307, 308].includes(response.statusCode) && location !== undefined;
      if (!redirect || (req.method !== 'GET' && req.method !== 'HEAD')) {
        return { status: response.statusCode, headers: response.headers, body: response.body, url };
      }
      await response.body.dump().catch(() => undefined);
      if (hop >= MAX_REDIRECTS) {
        throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${req.method} ${redact(req.url)}: more than ${MAX_REDIRECTS} redirects (a redirect loop?)`);
      }
      const next = new URL(location, url);
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${req.method} ${redact(req.url)}: redirect to unsupported URL scheme ${next.protocol}`);
      }
      if (new URL(url).protocol === 'https:' && next.protocol === 'http:') {
        throw new RegistryError('ERR_REGISTRY_INSECURE', `${req.method} ${redact(req.url)}: refusing a redirect from https to plain http (${redact(next.href)})`);
      }
      log.debug('http redirect', { from: redact(url), to: redact(next.href) });
      url = next.href;
    }
  }

  async close(): Promise<void> {
    if (this.#undici !== undefined) await (await this.#undici).agent.close();
  }
}

function withoutAuthorization(headers: Record<string, string> | undefined): Record<string, string> | undefined {
  if (headers === undefined) return undefined;
  return Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'authorization'));
}

/** A header's value (the first, if repeated); names are lower case in undici's responses. */
export function header(headers: HttpResponse['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Every value of a header that may be repeated (WWW-Authenticate, Link). */
export function headerValues(headers: HttpResponse['headers'], name: string): string[] {
  const value = headers[name];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/**
 * A URL fit for messages and logs: no query string (signed blob URLs carry credentials there)
 * and no user info.
 */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}${u.search === '' ? '' : '?…'}`;
  } catch {
    return '<invalid URL>';
  }
}

/** Reads a whole body, failing once it exceeds `limit` bytes (manifests, error bodies, tokens). */
export async function readCapped(response: HttpResponse, limit: number, what: string): Promise<Buffer> {
  const declared = Number(header(response.headers, 'content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    await response.body.dump().catch(() => undefined);
    throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${what} is ${declared} bytes, more than the limit of ${limit}`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) {
        response.body.destroy();
        throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${what} is more than the limit of ${limit} bytes`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw err instanceof RegistryError ? err : networkError(err, 'GET', response.url);
  }
  return Buffer.concat(chunks, total);
}

/** Discards a body so the connection can be reused. */
export async function discard(response: HttpResponse): Promise<void> {
  await response.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
}

/** Turns an undici/socket failure into a temporary RegistryError (timeouts told apart). */
export function networkError(err: unknown, method: string, url: string): RegistryError {
  if (err instanceof RegistryError) return err;
  const where = url.includes('://') ? `${method} ${redact(url)}` : url;
  const code = (err as { code?: unknown }).code;
  const detail = err instanceof Error ? err.message : String(err);
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new RegistryError('ERR_REGISTRY_TIMEOUT', `${where}: no data for too long (${detail})`, { temporary: true, cause: err });
  }
  if (code === 'ECONNREFUSED') {
    return new RegistryError('ERR_REGISTRY_NETWORK', `${where}: connection refused`, { temporary: true, cause: err });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new RegistryError('ERR_REGISTRY_NETWORK', `${where}: host not found`, { temporary: code === 'EAI_AGAIN', cause: err });
  }
  return new RegistryError('ERR_REGISTRY_NETWORK', `${where}: ${detail}`, { temporary: true, cause: err });
}

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** First backoff; doubles per attempt, with jitter. */
  baseDelayMs: number;
  /** The longest single wait, also for Retry-After. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 500, maxDelayMs: 30_000 };

/** Runs `fn` again after temporary failures (429, 5xx, network, timeouts), honouring Retry-After. */
export async function withRetries<T>(what: string, policy: RetryPolicy, fn: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!(err instanceof RegistryError) || !err.temporary || attempt >= policy.attempts) throw err;
      const delay = retryDelay(err, attempt, policy);
      log.info(`${what}: ${err.message}; trying again in ${Math.round(delay / 100) / 10} s (attempt ${attempt + 1} of ${policy.attempts})`);
      await sleep(delay);
    }
  }
}

export function retryDelay(err: RegistryError, attempt: number, policy: RetryPolicy): number {
  if (err.retryAfter !== undefined) return Math.min(err.retryAfter * 1000, policy.maxDelayMs);
  const exponential = policy.baseDelayMs * 2 ** (attempt - 1);
  return Math.min(exponential * (0.5 + Math.random() / 2), policy.maxDelayMs);
}

/** Retry-After as seconds: either a number of seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}
