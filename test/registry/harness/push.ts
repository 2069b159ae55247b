// Pushes test images through the registry's own HTTP API (distribution spec), with plain fetch:
// deliberately independent of layerfs's registry client, so a bug there cannot hide in fixtures.
//
//   await pushTestImage(reg, 'library/app', 'v1', image);                 // tag
//   await pushIndex(reg, 'library/multi', 'latest', index, [amd64, arm64]);
//   const got = await getManifest(reg, 'library/app', 'v1');               // read back, same auth
//
// Auth is answered the way a client would: on 401, Basic credentials, or a Bearer token asked of
// the challenge's realm for `repository:<name>:pull,push`. Without `creds`, the first user of the
// registry's auth config is used (anonymous when it has none); `null` means anonymous.
import { type Digest, sha256 } from '../../../src/oci/digest.js';
import { MediaType } from '../../../src/oci/media-types.js';
import type { BuiltIndex, TestImage } from './images.js';
import type { RunningRegistry } from './registry-server.js';

export interface Credentials {
  username: string;
  password: string;
}

/** Anything with a base URL and (optionally) an auth config: a RunningRegistry, a FaultRegistry. */
export type PushTarget = Pick<RunningRegistry, 'url'> & Partial<Pick<RunningRegistry, 'auth'>>;

/** Every manifest type a registry may hold; 2.8 hides OCI manifests from clients that do not accept them. */
export const MANIFEST_ACCEPT = [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList].join(', ');

function defaultCreds(target: PushTarget): Credentials | undefined {
  const auth = target.auth;
  if (auth === undefined || auth.kind === 'none') return undefined;
  const first = Object.entries(auth.users)[0];
  return first === undefined ? undefined : { username: first[0], password: first[1] };
}

const basic = (c: Credentials): string => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;

/** `Bearer realm="x",service="y",scope="a b"` → { scheme, params }. Values have no escaped quotes in practice. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ');
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/([a-zA-Z_]+)="([^"]*)"/g)) params[m[1]!.toLowerCase()] = m[2]!;
  return { scheme, params };
}

/** One repository on one registry, with the Authorization header learned from the first 401. */
class Session {
  #authorization: string | undefined;

  constructor(
    readonly target: PushTarget,
    readonly repository: string,
    readonly creds: Credentials | undefined,
  ) {}

  /** `path` is relative to the registry (`/v2/...`) or an absolute URL (an upload Location). */
  async send(method: string, path: string, init: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Response> {
    const url = new URL(path, this.target.url).toString();
    const attempt = (): Promise<Response> =>
      fetch(url, {
        method,
        headers: { ...init.headers, ...(this.#authorization === undefined ? {} : { Authorization: this.#authorization }) },
        ...(init.body === undefined ? {} : { body: init.body }),
        redirect: 'follow',
      });
    const res = await attempt();
    if (res.status !== 401) return res;
    await res.arrayBuffer();
    await this.#authenticate(res.headers.get('www-authenticate') ?? '');
    return attempt();
  }

  async #authenticate(challenge: string): Promise<void> {
    const { scheme, params } = parseChallenge(challenge);
    if (scheme === 'basic') {
      if (this.creds === undefined) throw new Error(`push: ${this.target.url} wants Basic credentials and none were given`);
      this.#authorization = basic(this.creds);
      return;
    }
    if (scheme !== 'bearer' || params.realm === undefined) throw new Error(`push: unusable challenge ${JSON.stringify(challenge)}`);
    const tokenUrl = new URL(params.realm);
    if (params.service !== undefined) tokenUrl.searchParams.set('service', params.service);
    // Ask for push up front: the challenge of a HEAD only names pull, and a second round trip
    // for the POST that follows would just cost time.
    tokenUrl.searchParams.append('scope', `repository:${this.repository}:pull,push`);
    const res = await fetch(tokenUrl, { headers: this.creds === undefined ? {} : { Authorization: basic(this.creds) } });
    if (!res.ok) throw new Error(`push: token request to ${tokenUrl} failed: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (token === undefined) throw new Error(`push: token response without a token from ${tokenUrl}`);
    this.#authorization = `Bearer ${token}`;
  }
}

async function expectStatus(res: Response, ok: number[], what: string): Promise<void> {
  if (ok.includes(res.status)) {
    await res.arrayBuffer();
    return;
  }
  throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
}

/** Monolithic upload (POST, then PUT with the digest); skipped when HEAD says the blob is there. */
async function uploadBlob(session: Session, bytes: Buffer, digest: Digest = sha256(bytes)): Promise<void> {
  const base = `/v2/${session.repository}/blobs`;
  const head = await session.send('HEAD', `${base}/${digest}`);
  await head.arrayBuffer();
  if (head.status === 200) return;

  const started = await session.send('POST', `${base}/uploads/`);
  const location = started.headers.get('location');
  await expectStatus(started, [202], `push: starting upload of ${digest}`);
  if (location === null) throw new Error(`push: upload of ${digest} started without a Location`);

  const put = new URL(location, session.target.url);
  put.searchParams.set('digest', digest);
  const done = await session.send('PUT', put.toString(), {
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length) },
    body: bytes,
  });
  await expectStatus(done, [201], `push: finishing upload of ${digest}`);
}

async function putManifest(session: Session, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
  const res = await session.send('PUT', `/v2/${session.repository}/manifests/${reference}`, {
    headers: { 'Content-Type': mediaType },
    body: bytes,
  });
  const digest = res.headers.get('docker-content-digest') ?? sha256(bytes);
  await expectStatus(res, [201], `push: manifest ${session.repository}:${reference}`);
  return digest;
}

async function uploadImageBlobs(session: Session, image: TestImage): Promise<void> {
  await uploadBlob(session, image.config, image.configDigest);
  for (const layer of image.layers) await uploadBlob(session, layer.blob, layer.digest);
}

/** `creds` undefined: the registry's first user; null: anonymous. */
const session = (target: PushTarget, repository: string, creds: Credentials | null | undefined): Session =>
  new Session(target, repository, creds === null ? undefined : (creds ?? defaultCreds(target)));

/** Pushes config, layers and manifest; `reference` is a tag or the image's digest. */
export async function pushTestImage(reg: PushTarget, repository: string, reference: string, image: TestImage, creds?: Credentials | null): Promise<void> {
  const s = session(reg, repository, creds);
  await uploadImageBlobs(s, image);
  await putManifest(s, reference, image.manifest, image.manifestMediaType);
}

/** Pushes every image by digest (a registry refuses an index naming unknown manifests), then the index. */
export async function pushIndex(reg: PushTarget, repository: string, tag: string, index: BuiltIndex, images: TestImage[], creds?: Credentials | null): Promise<void> {
  const s = session(reg, repository, creds);
  for (const image of images) {
    await uploadImageBlobs(s, image);
    await putManifest(s, image.digest, image.manifest, image.manifestMediaType);
  }
  await putManifest(s, tag, index.bytes, index.mediaType);
}

/** Any bytes as a manifest; returns the digest the registry computed. Its blobs must be pushed first. */
export async function pushRawManifest(reg: PushTarget, repository: string, reference: string, bytes: Buffer, mediaType: string, creds?: Credentials | null): Promise<string> {
  return putManifest(session(reg, repository, creds), reference, bytes, mediaType);
}

/** Any bytes as a blob (for raw manifests); returns its digest. */
export async function pushBlob(reg: PushTarget, repository: string, bytes: Buffer, creds?: Credentials | null): Promise<Digest> {
  const digest = sha256(bytes);
  await uploadBlob(session(reg, repository, creds), bytes, digest);
  return digest;
}

export interface Fetched {
  status: number;
  headers: Headers;
  body: Buffer;
}

async function fetched(res: Response): Promise<Fetched> {
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** GET a manifest back (accepting every manifest type), answering auth challenges like a push. */
export async function getManifest(reg: PushTarget, repository: string, reference: string, creds?: Credentials | null): Promise<Fetched> {
  return fetched(await session(reg, repository, creds).send('GET', `/v2/${repository}/manifests/${reference}`, { headers: { Accept: MANIFEST_ACCEPT } }));
}

/** GET a blob back, following redirects, answering auth challenges like a push. */
export async function getBlob(reg: PushTarget, repository: string, digest: string, creds?: Credentials | null): Promise<Fetched> {
  return fetched(await session(reg, repository, creds).send('GET', `/v2/${repository}/blobs/${digest}`));
}
