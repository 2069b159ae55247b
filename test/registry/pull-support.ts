// Shared by the pull, faults, sources and CLI tests of the registry client: a transport that
// records what the client sent (the real HttpTransport underneath), source contexts with their own
// Docker config and registries config in a temp dir, one-call pulls, and a look at what a store
// holds on disk (blobs/, layers/, downloads/, names).
import './builtin-fetch.js';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { type RegistriesConfig, emptyRegistriesConfig, parseRegistriesConfig } from '../../src/config/registries.js';
import { type Digest, digestHex } from '../../src/oci/digest.js';
import { type PullEvent, type PullResult, pullImage } from '../../src/pull/pull.js';
import { HttpTransport, type HttpRequest, type HttpResponse, type RetryPolicy } from '../../src/registry/http.js';
import { type PlatformSpec, hostPlatform } from '../../src/registry/platform.js';
import { type OpenedSource, type SourceContext, openSource } from '../../src/source/open.js';
import type { Store } from '../../src/store/store.js';
import type { TestImage } from './harness/images.js';

/** Short waits, so retry paths are tested in milliseconds rather than seconds. */
export const FAST_RETRY: RetryPolicy = { attempts: 3, baseDelayMs: 10, maxDelayMs: 2_000 };

export interface SentRequest {
  method: string;
  url: string;
  /** Path and query of the URL. */
  path: string;
  headers: Record<string, string>;
}

/**
 * The real transport, recording each request the client makes (before redirects, which the
 * transport follows itself): what it asked for, with which headers.
 */
export class RecordingTransport extends HttpTransport {
  readonly sent: SentRequest[] = [];

  override async send(req: HttpRequest): Promise<HttpResponse> {
    const url = new URL(req.url);
    this.sent.push({ method: req.method, url: req.url, path: url.pathname + url.search, headers: { ...req.headers } });
    return super.send(req);
  }

  /** Requests of the distribution API (not those to a token server). */
  apiRequests(): SentRequest[] {
    return this.sent.filter((r) => r.path.startsWith('/v2/'));
  }

  blobRequests(): SentRequest[] {
    return this.sent.filter((r) => r.path.includes('/blobs/'));
  }

  manifestRequests(): SentRequest[] {
    return this.sent.filter((r) => r.path.includes('/manifests/'));
  }

  clear(): void {
    this.sent.splice(0);
  }
}

export interface ContextOptions {
  /** Written as `<dir>/docker/config.json` (DOCKER_CONFIG). */
  dockerConfig?: object;
  /** The registries config, as it would be written to registries.json. */
  registries?: object;
  retry?: RetryPolicy;
  stallTimeoutMs?: number;
  /** Directories put in front of PATH (for docker-credential-* helpers). */
  path?: string[];
}

export interface TestContext extends SourceContext {
  http: RecordingTransport;
}

/** A source context whose credentials and settings live in `dir` only (never the user's). */
export async function makeContext(dir: string, options: ContextOptions = {}): Promise<TestContext> {
  const dockerDir = join(dir, 'docker');
  await fsp.mkdir(dockerDir, { recursive: true });
  if (options.dockerConfig !== undefined) await fsp.writeFile(join(dockerDir, 'config.json'), JSON.stringify(options.dockerConfig), { mode: 0o600 });
  const registries: RegistriesConfig = options.registries === undefined ? emptyRegistriesConfig() : parseRegistriesConfig(options.registries, join(dir, 'registries.json'));
  return {
    http: new RecordingTransport({ stallTimeoutMs: options.stallTimeoutMs ?? 10_000 }),
    registries,
    env: { DOCKER_CONFIG: dockerDir, PATH: [...(options.path ?? []), process.env.PATH ?? '/usr/bin:/bin'].join(':') },
    home: dir,
    retry: options.retry ?? FAST_RETRY,
  };
}

/** A Docker config.json `auths` entry for user:password on `host`. */
export function dockerAuths(host: string, username: string, password: string): object {
  return { auths: { [host]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } } };
}

export interface Pulled extends PullResult {
  events: PullEvent[];
  opened: OpenedSource;
}

/** Opens `input` as the CLI would and pulls it into `store`, collecting the events. */
export async function pull(
  store: Store,
  input: string,
  context: SourceContext,
  options: { platform?: PlatformSpec; maxConcurrentDownloads?: number } = {},
): Promise<Pulled> {
  const opened = await openSource(input, context);
  const events: PullEvent[] = [];
  try {
    const result = await pullImage(store, opened.source, opened.reference, {
      platform: options.platform ?? hostPlatform(),
      maxConcurrentDownloads: options.maxConcurrentDownloads ?? 3,
      names: opened.names,
      onEvent: (event) => events.push(event),
      ...(context.retry === undefined ? {} : { retry: context.retry }),
    });
    return { ...result, events, opened };
  } finally {
    await opened.source.close();
  }
}

export interface StoreContents {
  blobs: Digest[];
  layers: Digest[];
  /** Partial downloads: hex name → bytes. */
  downloads: Record<string, number>;
  names: string[];
}

/** What the store holds on disk (sorted), for before/after comparisons. */
export async function storeContents(store: Store): Promise<StoreContents> {
  const downloads: Record<string, number> = {};
  for (const name of (await fsp.readdir(store.paths.downloadsDir).catch(() => [] as string[])).sort()) {
    downloads[name] = (await fsp.stat(join(store.paths.downloadsDir, name))).size;
  }
  return {
    blobs: (await store.blobs.list()).sort(),
    layers: (await store.layers.list()).map((l) => l.diffId).sort(),
    downloads,
    names: (await store.images.list()).map((r) => r.ref).sort(),
  };
}

/** Bytes of a partial download of `digest` in the store, or undefined when there is none. */
export async function partialSize(store: Store, digest: Digest): Promise<number | undefined> {
  return (await fsp.stat(join(store.paths.downloadsDir, digestHex(digest))).catch(() => undefined))?.size;
}

/** The image's layers are in the store, extracted, with these files (path → content). */
export async function assertLayerFiles(store: Store, image: TestImage, expected: Array<Record<string, string>>, assertEqual: (a: unknown, b: unknown, m?: string) => void): Promise<void> {
  for (const [i, files] of expected.entries()) {
    const layer = image.layers[i]!;
    assertEqual(await store.blobs.has(layer.digest), true, `blob of layer ${i} is stored`);
    assertEqual(await store.layers.has(layer.diffId), true, `layer ${i} is extracted`);
    for (const [path, content] of Object.entries(files)) {
      assertEqual(await fsp.readFile(join(store.layers.treePath(layer.diffId), path), 'utf8'), content, `layer ${i}: ${path}`);
    }
  }
}

/** A deterministic, incompressible buffer (so compressed sizes stay close to `size`). */
export function noise(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    // xorshift32
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** `fn` rejects with a RegistryError-like error of `code` whose message matches `pattern`. */
export async function rejectsWithCode(promise: Promise<unknown>, code: string, pattern?: RegExp): Promise<Error & { code: string }> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) throw new Error(`expected a rejection with ${code}, but it resolved`);
  const err = caught as Error & { code?: string };
  if (err.code !== code) throw new Error(`expected ${code}, got ${err.code ?? '(no code)'}: ${err.message}`, { cause: err });
  if (pattern !== undefined && !pattern.test(err.message)) throw new Error(`message ${JSON.stringify(err.message)} does not match ${pattern}`);
  return err as Error & { code: string };
}
