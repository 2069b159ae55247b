// Proves the registry test harness itself: a real docker-registry in each auth mode, images
// pushed through its HTTP API and read back byte for byte, the token issuer's rules, and each
// switch of the fault-injecting fake registry. The registry client's own tests build on these.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sha256 } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { file } from '../helpers/tar-builder.js';
import { type FaultRegistry, OVERSIZED_MANIFEST_BYTES, startFaultRegistry } from './harness/fault-server.js';
import { buildIndex, buildTestImage, type TestImage } from './harness/images.js';
import { getBlob, getManifest, MANIFEST_ACCEPT, parseChallenge, pushIndex, pushTestImage } from './harness/push.js';
import { registrySkip, type RunningRegistry, useRegistry } from './harness/registry-server.js';
import type { TokenIssuer } from './harness/token-issuer.js';

const USERS = { alice: 'wonderland', bob: 'builder' };
const ALICE = { username: 'alice', password: 'wonderland' };
const skipRegistry = registrySkip();

const layerA = [file('etc/hello', 'hello\n'), file('bin/tool', 'x'.repeat(5000), { mode: 0o755 })];
const layerB = [file('etc/hello', 'changed\n')];

/** Every blob of `image` and its manifest come back from the registry unchanged. */
async function assertPulledBack(reg: RunningRegistry, repository: string, reference: string, image: TestImage, creds?: typeof ALICE | null): Promise<void> {
  const manifest = await getManifest(reg, repository, reference, creds);
  assert.equal(manifest.status, 200);
  assert.equal(manifest.headers.get('content-type'), image.manifestMediaType);
  assert.equal(manifest.headers.get('docker-content-digest'), image.digest);
  assert.ok(manifest.body.equals(image.manifest), 'manifest bytes differ');
  for (const [digest, bytes] of [[image.configDigest, image.config], ...image.layers.map((l) => [l.digest, l.blob] as const)] as const) {
    const blob = await getBlob(reg, repository, digest, creds);
    assert.equal(blob.status, 200, `blob ${digest}`);
    assert.ok(blob.body.equals(bytes), `blob ${digest} differs`);
  }
}

async function tokenFor(issuer: TokenIssuer, scope: string, authorization?: string): Promise<{ status: number; token?: string }> {
  const url = new URL(issuer.realm);
  url.searchParams.set('service', issuer.service);
  url.searchParams.set('scope', scope);
  const res = await fetch(url, { headers: authorization === undefined ? {} : { Authorization: authorization } });
  const body = (await res.json()) as { token?: string };
  return { status: res.status, ...(body.token === undefined ? {} : { token: body.token }) };
}

const basicHeader = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('test images', () => {
  it('builds OCI and Docker images with the media types and digests they claim', async () => {
    const oci = await buildTestImage([layerA, layerB]);
    const manifest = JSON.parse(oci.manifest.toString()) as { mediaType: string; config: { digest: string; mediaType: string }; layers: Array<{ digest: string; mediaType: string; size: number }> };
    assert.equal(manifest.mediaType, MediaType.ociManifest);
    assert.equal(manifest.config.mediaType, MediaType.ociConfig);
    assert.equal(manifest.config.digest, sha256(oci.config));
    assert.deepEqual(manifest.layers.map((l) => l.mediaType), [MediaType.ociLayerGzip, MediaType.ociLayerGzip]);
    assert.deepEqual(manifest.layers.map((l) => l.digest), oci.layers.map((l) => sha256(l.blob)));
    const config = JSON.parse(oci.config.toString()) as { rootfs: { diff_ids: string[] }; architecture: string };
    assert.deepEqual(config.rootfs.diff_ids, oci.layers.map((l) => sha256(l.tar)));
    assert.equal(oci.digest, sha256(oci.manifest));

    const again = await buildTestImage([layerA, layerB]);
    assert.equal(again.digest, oci.digest, 'builds are deterministic');

    const docker = await buildTestImage([layerA], { format: 'docker' });
    assert.equal(docker.manifestMediaType, MediaType.dockerManifest);
    assert.equal(docker.layers[0]!.mediaType, MediaType.dockerLayerGzip);
    const zstd = await buildTestImage([layerA], { compression: 'zstd' });
    assert.equal(zstd.layers[0]!.mediaType, MediaType.ociLayerZstd);
    assert.equal(zstd.layers[0]!.blob.readUInt32LE(0), 0xfd2fb528, 'zstd frame magic');
    const plain = await buildTestImage([layerA], { compression: 'none' });
    assert.equal(plain.layers[0]!.mediaType, MediaType.ociLayer);
    assert.ok(plain.layers[0]!.blob.equals(plain.layers[0]!.tar));
    await assert.rejects(buildTestImage([layerA], { format: 'docker', compression: 'zstd' }), /zstd/);
  });

  it('builds indexes whose entries name each image and its platform', async () => {
    const amd64 = await buildTestImage([layerA]);
    const arm64 = await buildTestImage([layerA], { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    const index = buildIndex([{ image: amd64 }, { image: arm64 }], 'oci');
    const parsed = JSON.parse(index.bytes.toString()) as { mediaType: string; manifests: Array<{ digest: string; platform: object }> };
    assert.equal(index.mediaType, MediaType.ociIndex);
    assert.equal(parsed.mediaType, MediaType.ociIndex);
    assert.deepEqual(parsed.manifests.map((m) => m.digest), [amd64.digest, arm64.digest]);
    assert.deepEqual(parsed.manifests[1]!.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.equal(buildIndex([{ image: amd64 }], 'docker').mediaType, MediaType.dockerManifestList);
  });
});

describe('real registry without auth', { skip: skipRegistry }, () => {
  const reg = useRegistry();

  it('answers GET /v2/ on 127.0.0.1', async () => {
    assert.match(reg().host, /^127\.0\.0\.1:\d+$/);
    const res = await fetch(`${reg().url}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
  });

  it('takes OCI and Docker images and indexes, and gives back the same bytes', async () => {
    const oci = await buildTestImage([layerA, layerB]);
    const docker = await buildTestImage([layerA], { format: 'docker' });
    const arm64 = await buildTestImage([layerB], { compression: 'zstd', platform: { os: 'linux', architecture: 'arm64' } });
    const index = buildIndex([{ image: oci }, { image: arm64 }], 'oci');

    await pushTestImage(reg(), 'library/oci', 'v1', oci);
    await pushTestImage(reg(), 'library/docker', 'v1', docker);
    await pushTestImage(reg(), 'library/bydigest', oci.digest, oci);
    await pushIndex(reg(), 'library/multi', 'latest', index, [oci, arm64]);

    await assertPulledBack(reg(), 'library/oci', 'v1', oci);
    await assertPulledBack(reg(), 'library/docker', 'v1', docker);
    await assertPulledBack(reg(), 'library/bydigest', oci.digest, oci);
    await assertPulledBack(reg(), 'library/multi', arm64.digest, arm64);
    const got = await getManifest(reg(), 'library/multi', 'latest');
    assert.equal(got.headers.get('content-type'), MediaType.ociIndex);
    assert.ok(got.body.equals(index.bytes));
  });

  it('hides OCI manifests from clients that do not Accept them (distribution 2.8 behaviour)', async () => {
    const oci = await buildTestImage([layerA]);
    await pushTestImage(reg(), 'library/accept', 'v1', oci);
    const bare = await fetch(`${reg().url}/v2/library/accept/manifests/v1`);
    assert.equal(bare.status, 404, await bare.text());
    const ok = await fetch(`${reg().url}/v2/library/accept/manifests/v1`, { headers: { Accept: MANIFEST_ACCEPT } });
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
  });
});

describe('real registry with Basic auth', { skip: skipRegistry }, () => {
  const reg = useRegistry({ kind: 'basic', users: USERS });

  it('challenges anonymous requests with Basic and refuses a wrong password', async () => {
    const anon = await fetch(`${reg().url}/v2/`);
    assert.equal(anon.status, 401);
    assert.equal(parseChallenge(anon.headers.get('www-authenticate') ?? '').scheme, 'basic');
    const wrong = await fetch(`${reg().url}/v2/`, { headers: { Authorization: basicHeader('alice', 'nope') } });
    assert.equal(wrong.status, 401);
    const right = await fetch(`${reg().url}/v2/`, { headers: { Authorization: basicHeader('bob', 'builder') } });
    assert.equal(right.status, 200);
  });

  it('pushes with credentials and reads back with them', async () => {
    const image = await buildTestImage([layerA]);
    await pushTestImage(reg(), 'team/app', 'v1', image, ALICE);
    await assertPulledBack(reg(), 'team/app', 'v1', image, { username: 'bob', password: 'builder' });
    await assert.rejects(getManifest(reg(), 'team/app', 'v1', null), /Basic credentials/);
  });
});

describe('real registry with token auth', { skip: skipRegistry }, () => {
  const reg = useRegistry({ kind: 'token', users: USERS });
  const issuer = (): TokenIssuer => reg().tokenIssuer!;

  it('challenges with Bearer pointing at the token issuer', async () => {
    const res = await fetch(`${reg().url}/v2/`);
    assert.equal(res.status, 401);
    const { scheme, params } = parseChallenge(res.headers.get('www-authenticate') ?? '');
    assert.equal(scheme, 'bearer');
    assert.equal(params.realm, issuer().realm);
    assert.equal(params.service, issuer().service);
  });

  it('pushes as a user; anonymous pulls public/ repositories only', async () => {
    const image = await buildTestImage([layerA, layerB]);
    await pushTestImage(reg(), 'public/x', 'v1', image, ALICE);
    await pushTestImage(reg(), 'private/y', 'v1', image, ALICE);
    await assertPulledBack(reg(), 'public/x', 'v1', image, null);
    await assertPulledBack(reg(), 'private/y', 'v1', image, ALICE);

    const anonymous = await tokenFor(issuer(), 'repository:private/y:pull');
    assert.equal(anonymous.status, 200, 'a token is issued, but without the access asked for');
    const res = await fetch(`${reg().url}/v2/private/y/manifests/v1`, { headers: { Authorization: `Bearer ${anonymous.token}`, Accept: MANIFEST_ACCEPT } });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
    await assert.rejects(pushTestImage(reg(), 'public/x', 'v2', image, null), /HTTP 401/);
  });

  it('issuer: refuses a bad password, records scopes and credentials', async () => {
    issuer().reset();
    assert.equal((await tokenFor(issuer(), 'repository:public/x:pull', basicHeader('alice', 'nope'))).status, 401);
    assert.equal((await tokenFor(issuer(), 'repository:public/x:pull', basicHeader('mallory', 'x'))).status, 401);
    assert.equal((await tokenFor(issuer(), 'repository:public/x:pull', basicHeader('alice', 'wonderland'))).status, 200);
    assert.equal(issuer().countScope('repository:public/x:pull'), 3);
    assert.deepEqual(issuer().requests.map((r) => [r.status, r.credentials, r.user]), [[401, true, undefined], [401, true, undefined], [200, true, 'alice']]);
  });

  it('issuer: tokens past exp (beyond the registry\'s 60 s leeway) are rejected as invalid_token', async () => {
    const image = await buildTestImage([layerA]);
    await pushTestImage(reg(), 'public/expiry', 'v1', image, ALICE);
    issuer().configure({ lifetime: -120 });
    try {
      const { token } = await tokenFor(issuer(), 'repository:public/expiry:pull');
      const res = await fetch(`${reg().url}/v2/public/expiry/manifests/v1`, { headers: { Authorization: `Bearer ${token}`, Accept: MANIFEST_ACCEPT } });
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    } finally {
      issuer().configure({ lifetime: undefined });
    }
  });
});

/** Reads a body as far as it goes: the bytes that came, and the error that ended it, if any. */
async function readPartial(res: Response): Promise<{ bytes: Buffer; error?: unknown }> {
  const chunks: Buffer[] = [];
  const reader = res.body!.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { bytes: Buffer.concat(chunks) };
      chunks.push(Buffer.from(value));
    }
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error };
  }
}

describe('fault registry', () => {
  const blob = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));
  const digest = sha256(blob);
  const manifest = Buffer.from('{"schemaVersion":2}');
  const content = { manifests: { 'library/app:v1': { bytes: manifest, mediaType: MediaType.ociManifest } }, blobs: { [digest]: blob } };
  const blobUrl = (fake: FaultRegistry): string => `${fake.url}/v2/library/app/blobs/${digest}`;

  async function withFake(test: (fake: FaultRegistry) => Promise<void>): Promise<void> {
    const fake = await startFaultRegistry(content);
    try {
      await test(fake);
    } finally {
      await fake.stop();
    }
  }

  it('serves manifests by tag and digest, blobs whole and by Range, and records requests', () =>
    withFake(async (fake) => {
      const byTag = await fetch(`${fake.url}/v2/library/app/manifests/v1`);
      assert.equal(byTag.headers.get('docker-content-digest'), sha256(manifest));
      assert.ok(Buffer.from(await byTag.arrayBuffer()).equals(manifest));
      const byDigest = await fetch(`${fake.url}/v2/library/app/manifests/${sha256(manifest)}`);
      assert.equal(byDigest.status, 200);
      await byDigest.arrayBuffer();

      const ranged = await fetch(blobUrl(fake), { headers: { Range: 'bytes=1000-' } });
      assert.equal(ranged.status, 206);
      assert.equal(ranged.headers.get('content-range'), `bytes 1000-99999/100000`);
      assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(blob.subarray(1000)));
      assert.equal(fake.requests.at(-1)!.range, 'bytes=1000-');
      assert.equal(fake.requests.at(-1)!.authorization, undefined);

      fake.setFaults({ ignoreRange: true });
      const whole = await fetch(blobUrl(fake), { headers: { Range: 'bytes=1000-' } });
      assert.equal(whole.status, 200);
      assert.equal(Buffer.from(await whole.arrayBuffer()).length, blob.length);
    }));

  it('resets a blob after K bytes, once', () =>
    withFake(async (fake) => {
      fake.setFaults([{ kind: 'reset', afterBytes: 4096, times: 1 }]);
      const first = await readPartial(await fetch(blobUrl(fake)));
      assert.ok(first.error !== undefined, 'the body fails');
      assert.equal(first.bytes.length, 4096);
      const second = await readPartial(await fetch(blobUrl(fake)));
      assert.equal(second.error, undefined);
      assert.ok(second.bytes.equals(blob));
    }));

  it('sends short and wrong bodies', () =>
    withFake(async (fake) => {
      fake.setFaults([{ kind: 'shortBody', sendBytes: 10, times: 1 }, { kind: 'wrongBody', times: 1 }]);
      const short = await readPartial(await fetch(blobUrl(fake)));
      assert.ok(short.error !== undefined);
      assert.equal(short.bytes.length, 10);
      const wrong = Buffer.from(await (await fetch(blobUrl(fake))).arrayBuffer());
      assert.equal(wrong.length, blob.length);
      assert.notEqual(sha256(wrong), digest);
    }));

  it('answers 429 with Retry-After and 503 n times, then succeeds', () =>
    withFake(async (fake) => {
      fake.setFaults([{ kind: 'status', status: 429, retryAfter: 1, times: 1 }, { kind: 'status', status: 503, times: 2 }]);
      const statuses: Array<[number, string | null]> = [];
      for (let i = 0; i < 4; i++) {
        const res = await fetch(blobUrl(fake));
        statuses.push([res.status, res.headers.get('retry-after')]);
        await res.arrayBuffer();
      }
      assert.deepEqual(statuses, [[429, '1'], [503, null], [503, null], [200, null]]);
    }));

  it('redirects blobs to another origin, which records the Authorization header it got', () =>
    withFake(async (fake) => {
      fake.setFaults([{ kind: 'redirect' }]);
      const res = await fetch(blobUrl(fake), { redirect: 'manual' });
      assert.equal(res.status, 307);
      const location = res.headers.get('location')!;
      assert.ok(location.startsWith(`${fake.cdn.url}/content/${digest}`));
      const followed = await fetch(location, { headers: { Authorization: 'Bearer leak' } });
      assert.ok(Buffer.from(await followed.arrayBuffer()).equals(blob));
      assert.equal(fake.cdn.requests.length, 1);
      assert.equal(fake.cdn.requests[0]!.authorization, 'Bearer leak');
    }));

  it('redirects in a loop', () =>
    withFake(async (fake) => {
      fake.setFaults([{ kind: 'redirectLoop' }]);
      await assert.rejects(fetch(blobUrl(fake)), /fetch failed/);
      assert.ok(fake.requests.filter((r) => r.path.startsWith('/_loop/')).length >= 10);
    }));

  it('stalls a body past a client timeout', () =>
    withFake(async (fake) => {
      fake.setFaults([{ kind: 'stall', afterBytes: 100 }]);
      const started = Date.now();
      const res = await fetch(blobUrl(fake), { signal: AbortSignal.timeout(300) });
      const partial = await readPartial(res);
      assert.equal(partial.bytes.length, 100);
      assert.ok(partial.error !== undefined);
      assert.ok(Date.now() - started >= 250);
    }));

  it('serves an oversized manifest', () =>
    withFake(async (fake) => {
      fake.setFaults([{ kind: 'oversizedManifest' }]);
      const res = await fetch(`${fake.url}/v2/library/app/manifests/v1`);
      assert.equal(Number(res.headers.get('content-length')), OVERSIZED_MANIFEST_BYTES);
      assert.equal((await res.arrayBuffer()).byteLength, OVERSIZED_MANIFEST_BYTES);
    }));

  it('challenges with Bearer forever, or requires Basic credentials', () =>
    withFake(async (fake) => {
      fake.setFaults({ bearerNeverSucceeds: true });
      const first = await fetch(blobUrl(fake));
      const { scheme, params } = parseChallenge(first.headers.get('www-authenticate') ?? '');
      assert.equal(scheme, 'bearer');
      const token = ((await (await fetch(params.realm!)).json()) as { token: string }).token;
      const again = await fetch(blobUrl(fake), { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(again.status, 401);
      assert.match(again.headers.get('www-authenticate') ?? '', /invalid_token/);

      fake.setFaults({ basicAuth: { username: 'u', password: 'p' } });
      const anon = await fetch(blobUrl(fake));
      assert.equal(anon.status, 401);
      assert.match(anon.headers.get('www-authenticate') ?? '', /^Basic realm=/);
      const ok = await fetch(blobUrl(fake), { headers: { Authorization: basicHeader('u', 'p') } });
      assert.equal(ok.status, 200);
      await ok.arrayBuffer();
    }));
});
