// pullImage against a real registry (Debian's docker-registry) in its three auth modes: every
// manifest and layer media type, index and manifest-list platform selection, digest pinning,
// layers shared between images, a second pull that only asks for the manifest, the concurrency
// limit, and Bearer tokens cached per scope and refreshed when refused. What the client sent is
// recorded by the real HTTP transport it uses (RecordingTransport), the token issuer counts the
// tokens it issued.
import './pull-support.js';
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Digest, digestHex, sha256 } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { pullImage } from '../../src/pull/pull.js';
import { hostPlatform } from '../../src/registry/platform.js';
import { openSource } from '../../src/source/open.js';
import { Store } from '../../src/store/store.js';
import { file } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { buildIndex, buildTestImage, type Compression, type ImageFormat, type Platform, type TestImage } from './harness/images.js';
import { pushIndex, pushTestImage } from './harness/push.js';
import { registrySkip, useRegistry } from './harness/registry-server.js';
import {
  assertLayerFiles,
  dockerAuths,
  FAST_RETRY,
  makeContext,
  noise,
  pull,
  rejectsWithCode,
  type SentRequest,
  storeContents,
  type TestContext,
} from './pull-support.js';

const USERS = { alice: 'wonderland-8f3e', bob: 'builder-77c1' };
const ALICE = { username: 'alice', password: USERS.alice };
const skip = registrySkip();

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
const ARM64: Platform = { os: 'linux', architecture: 'arm64', variant: 'v8' };
const ARMV7: Platform = { os: 'linux', architecture: 'arm', variant: 'v7' };

async function freshStore(temps: TempDirs, prefix = 'pull'): Promise<{ dir: string; store: Store }> {
  const dir = await temps.make(prefix);
  return { dir, store: await Store.open(join(dir, 'store')) };
}

const authorizationOf = (r: SentRequest): string | undefined => r.headers.authorization;

describe('pull from a registry without auth', { skip }, () => {
  const reg = useRegistry();
  const temps = new TempDirs();
  after(() => temps.cleanup());

  const combos: Array<[ImageFormat, Compression]> = [
    ['oci', 'gzip'],
    ['oci', 'zstd'],
    ['oci', 'none'],
    ['docker', 'gzip'],
    ['docker', 'none'],
  ];

  for (const [format, compression] of combos) {
    it(`pulls a ${format} manifest with ${compression} layers: stored, verified, extracted`, async () => {
      const files: Array<Record<string, string>> = [{ 'etc/combo': `${format}/${compression}\n` }, { 'usr/bin/tool': `tool for ${format}/${compression}\n` }];
      const image = await buildTestImage(files.map((f) => Object.entries(f).map(([p, c]) => file(p, c))), { format, compression });
      const repository = `library/matrix-${format}-${compression}`;
      await pushTestImage(reg(), repository, 'v1', image);
      const { dir, store } = await freshStore(temps);
      const context = await makeContext(dir);

      const result = await pull(store, `${reg().host}/${repository}:v1`, context);

      assert.equal(result.image.digest, image.digest);
      assert.deepEqual(result.image.refs, [`${reg().host}/${repository}:v1`]);
      assert.equal(result.image.id, image.configDigest);
      assert.equal(result.platform, undefined, 'a plain manifest involves no platform choice');
      assert.deepEqual(result.layers, image.layers.map((l) => ({ digest: l.digest, outcome: 'downloaded' })));
      assert.deepEqual(result.image.layers.map((l) => [l.mediaType, l.diffId]), image.layers.map((l) => [l.mediaType, l.diffId]));
      assert.ok((await store.blobs.read(image.digest)).equals(image.manifest), 'the manifest is stored byte for byte');
      assert.ok((await store.blobs.read(image.configDigest)).equals(image.config));
      for (const layer of image.layers) assert.ok((await store.blobs.read(layer.digest)).equals(layer.blob));
      await assertLayerFiles(store, image, files, assert.equal);
      assert.deepEqual((await storeContents(store)).downloads, {}, 'no partial download is left');

      const manifestRequest = context.http.manifestRequests()[0]!;
      for (const type of [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList]) {
        assert.ok(manifestRequest.headers.accept?.includes(type), `Accept names ${type}`);
      }
      const events = result.events.map((e) => e.type);
      assert.equal(events[0], 'resolved');
      assert.equal(events.filter((t) => t === 'layer-done').length, 2);
      assert.ok(result.events.some((e) => e.type === 'layer-source' && e.servedBy === `registry ${reg().host}`));
    });
  }

  describe('an OCI index and a Docker manifest list with several platforms', () => {
    const images = new Map<string, TestImage>();
    const platforms = [AMD64, ARM64, ARMV7];

    before(async () => {
      for (const format of ['oci', 'docker'] as const) {
        const built: TestImage[] = [];
        for (const platform of platforms) {
          const name = `${platform.architecture}${platform.variant ?? ''}`;
          const image = await buildTestImage([[file('etc/arch', `${format} ${name}\n`)]], { format, platform });
          images.set(`${format}/${name}`, image);
          built.push(image);
        }
        await pushIndex(reg(), `library/multi-${format}`, 'latest', buildIndex(built.map((image) => ({ image })), format), built);
      }
    });

    for (const format of ['oci', 'docker'] as const) {
      it(`${format}: resolves to this host's platform by default, or to the one asked for`, async () => {
        const { dir, store } = await freshStore(temps);
        const context = await makeContext(dir);
        const ref = `${reg().host}/library/multi-${format}:latest`;

        const host = hostPlatform();
        const hostKey = `${format}/${host.architecture}${host.architecture === 'arm64' ? 'v8' : (host.variant ?? '')}`;
        if (images.has(hostKey)) {
          const byDefault = await pull(store, ref, context);
          assert.equal(byDefault.image.digest, images.get(hostKey)!.digest);
        }

        const arm64 = await pull(store, ref, context, { platform: { os: 'linux', architecture: 'arm64' } });
        assert.equal(arm64.image.digest, images.get(`${format}/arm64v8`)!.digest, 'arm64 is arm64/v8');
        assert.equal(arm64.platform, 'linux/arm64');
        const resolved = arm64.events.find((e) => e.type === 'resolved');
        assert.equal(resolved?.type === 'resolved' ? resolved.platform : undefined, 'linux/arm64');
        assert.equal(await readFile(join(store.layers.treePath(arm64.image.layers[0]!.diffId), 'etc/arch'), 'utf8'), `${format} arm64v8\n`);

        const armv7 = await pull(store, ref, context, { platform: ARMV7 });
        assert.equal(armv7.image.digest, images.get(`${format}/armv7`)!.digest);
        assert.equal((await store.findImage(ref))?.digest, armv7.image.digest, 'the name follows the last pull');

        // The index by tag, then the chosen manifest by its digest.
        const manifestPaths = context.http.manifestRequests().slice(-2).map((r) => r.path);
        assert.deepEqual(manifestPaths, [`/v2/library/multi-${format}/manifests/latest`, `/v2/library/multi-${format}/manifests/${armv7.image.digest}`]);
      });

      it(`${format}: no image for the platform: an error listing the platforms there are, nothing stored`, async () => {
        const { dir, store } = await freshStore(temps);
        const context = await makeContext(dir);
        const err = await rejectsWithCode(
          pull(store, `${reg().host}/library/multi-${format}:latest`, context, { platform: { os: 'linux', architecture: 's390x' } }),
          'ERR_NO_MATCHING_PLATFORM',
        );
        assert.equal(
          err.message,
          `no image for linux/s390x in ${reg().host}/library/multi-${format}:latest; available: linux/amd64, linux/arm64/v8, linux/arm/v7`,
        );
        assert.deepEqual(await storeContents(store), { blobs: [], layers: [], downloads: {}, names: [] });
        assert.equal(context.http.blobRequests().length, 0, 'no blob was fetched');
      });
    }
  });

  it('pulls by digest: the manifest is asked for by digest, and the image named by it; name:tag@digest uses the digest', async () => {
    const image = await buildTestImage([[file('etc/pinned', 'pinned\n')]]);
    await pushTestImage(reg(), 'library/pinned', 'v1', image);
    const { dir, store } = await freshStore(temps);
    const context = await makeContext(dir);

    const byDigest = await pull(store, `${reg().host}/library/pinned@${image.digest}`, context);
    assert.equal(byDigest.image.digest, image.digest);
    assert.deepEqual(byDigest.image.refs, [`${reg().host}/library/pinned@${image.digest}`]);
    assert.deepEqual(context.http.manifestRequests().map((r) => r.path), [`/v2/library/pinned/manifests/${image.digest}`]);

    context.http.clear();
    const both = await pull(store, `${reg().host}/library/pinned:no-such-tag@${image.digest}`, context);
    assert.equal(both.image.digest, image.digest);
    assert.deepEqual(context.http.manifestRequests().map((r) => r.path), [`/v2/library/pinned/manifests/${image.digest}`], 'the digest wins over the tag');
  });

  it('a manifest whose bytes changed in the registry: by digest it is refused, by tag its digest is computed from the bytes', async () => {
    const image = await buildTestImage([[file('etc/tampered', 'original\n')]]);
    await pushTestImage(reg(), 'library/tampered', 'v1', image);
    // The registry serves the blob file as it is; the tag still links to the original digest,
    // which the registry keeps sending as Docker-Content-Digest.
    const hex = digestHex(image.digest);
    const data = join(reg().storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const changed = Buffer.concat([image.manifest, Buffer.from('\n')]);
    await writeFile(data, changed);
    const headerDigest = (await fetch(`${reg().url}/v2/library/tampered/manifests/v1`, { headers: { Accept: image.manifestMediaType } })).headers.get('docker-content-digest');
    assert.equal(headerDigest, image.digest, 'precondition: the registry still claims the original digest');

    const { dir, store } = await freshStore(temps);
    const context = await makeContext(dir);
    const err = await rejectsWithCode(pull(store, `${reg().host}/library/tampered@${image.digest}`, context), 'ERR_DIGEST_MISMATCH');
    assert.match(err.message, new RegExp(`sent content with digest ${sha256(changed)}`));
    assert.deepEqual(await storeContents(store), { blobs: [], layers: [], downloads: {}, names: [] });

    const byTag = await pull(store, `${reg().host}/library/tampered:v1`, context);
    assert.equal(byTag.image.digest, sha256(changed), 'the digest of the bytes received, not the header');
    assert.ok((await store.blobs.read(sha256(changed))).equals(changed));
  });

  it('images sharing layers share them on disk: the shared layer is downloaded and extracted once', async () => {
    const base = [file('etc/os-release', 'NAME=base\n'), file('usr/lib/libbig.so', noise(64 * 1024, 7))];
    const first = await buildTestImage([base, [file('app/one', '1\n')]]);
    const second = await buildTestImage([base, [file('app/two', '2\n')]]);
    assert.equal(first.layers[0]!.digest, second.layers[0]!.digest, 'precondition: one base blob');
    await pushTestImage(reg(), 'library/share-one', 'v1', first);
    await pushTestImage(reg(), 'library/share-two', 'v1', second);
    const { dir, store } = await freshStore(temps);
    const context = await makeContext(dir);

    await pull(store, `${reg().host}/library/share-one:v1`, context);
    context.http.clear();
    const two = await pull(store, `${reg().host}/library/share-two:v1`, context);

    assert.deepEqual(two.layers, [
      { digest: second.layers[0]!.digest, outcome: 'cached' },
      { digest: second.layers[1]!.digest, outcome: 'downloaded' },
    ]);
    const fetched = context.http.blobRequests().map((r) => r.path.split('/').pop());
    assert.deepEqual(fetched.sort(), [second.configDigest, second.layers[1]!.digest].sort(), 'the base layer is not fetched again');
    assert.deepEqual((await storeContents(store)).layers, [first.layers[0]!.diffId, first.layers[1]!.diffId, second.layers[1]!.diffId].sort());
    const df = await store.diskUsage();
    assert.equal(df.images, 2);
    assert.equal(df.layers, 3, 'three layers on disk for four layer uses');
    assert.ok(df.sharedSize >= 64 * 1024, `the shared base layer is counted as shared (${df.sharedSize})`);
    assert.equal(df.unsharedTotal, df.layersSize + df.sharedSize);
  });

  it('a second pull of the same tag only asks for the manifest', async () => {
    const image = await buildTestImage([[file('a', 'a\n')], [file('b', 'b\n')], [file('c', 'c\n')]]);
    await pushTestImage(reg(), 'library/again', 'v1', image);
    const { dir, store } = await freshStore(temps);
    const context = await makeContext(dir);
    const ref = `${reg().host}/library/again:v1`;

    await pull(store, ref, context);
    const before = await storeContents(store);
    context.http.clear();
    const again = await pull(store, ref, context);

    assert.deepEqual(context.http.sent.map((r) => `${r.method} ${r.path}`), ['GET /v2/library/again/manifests/v1']);
    assert.equal(again.image.digest, image.digest);
    assert.deepEqual(again.layers.map((l) => l.outcome), ['cached', 'cached', 'cached']);
    assert.ok(again.events.every((e) => e.type !== 'layer-start' || e.action === 'cached'));
    assert.deepEqual(await storeContents(store), before);
  });

  it('a second pull through an index asks for the index and the manifest only', async () => {
    const { dir, store } = await freshStore(temps);
    const context = await makeContext(dir);
    const ref = `${reg().host}/library/multi-oci:latest`;
    await pull(store, ref, context, { platform: ARM64 });
    context.http.clear();
    await pull(store, ref, context, { platform: ARM64 });
    assert.equal(context.http.blobRequests().length, 0);
    assert.equal(context.http.sent.length, 2);
    assert.deepEqual(context.http.sent.map((r) => r.path.replace(/sha256:[0-9a-f]{64}/, 'DIGEST')), [
      '/v2/library/multi-oci/manifests/latest',
      '/v2/library/multi-oci/manifests/DIGEST',
    ]);
  });

  it('plain HTTP for loopback names and insecure-listed hosts only; HTTPS for any other host', async (t) => {
    const image = await buildTestImage([[file('etc/plain', 'plain\n')]]);
    await pushTestImage(reg(), 'library/plain', 'v1', image);
    const port = reg().host.split(':')[1]!;
    const { dir, store } = await freshStore(temps);

    const local = await makeContext(dir);
    assert.equal((await pull(store, `localhost:${port}/library/plain:v1`, local)).image.digest, image.digest);
    assert.ok(local.http.sent.every((r) => r.url.startsWith(`http://localhost:${port}/`)));

    // A name that resolves to 127.0.0.1 without being a loopback name (here: this machine's name).
    const name = hostname().toLowerCase();
    const address = await lookup(name, { family: 4 }).catch(() => undefined);
    if (address?.address.startsWith('127.') !== true || !/^[a-z0-9-]+$/.test(name)) {
      t.diagnostic(`the host name ${name} does not resolve to 127.0.0.1 here: the insecure-registries half is not tested`);
      return;
    }
    const strict = await makeContext(dir, { retry: { ...FAST_RETRY, attempts: 1 } });
    await rejectsWithCode(pull(store, `${name}:${port}/library/plain:v1`, strict), 'ERR_REGISTRY_NETWORK');
    assert.deepEqual(strict.http.sent.map((r) => r.url), [`https://${name}:${port}/v2/library/plain/manifests/v1`], 'HTTPS, never a silent downgrade');

    const insecure = await makeContext(dir, { registries: { 'insecure-registries': [`${name}:${port}`] } });
    const pulled = await pull(store, `${name}:${port}/library/plain:v1`, insecure);
    assert.equal(pulled.image.digest, image.digest);
    assert.ok(insecure.http.sent.every((r) => r.url.startsWith(`http://${name}:${port}/`)));
  });

  it('downloads at most maxConcurrentDownloads layers at a time', async () => {
    const image = await buildTestImage(Array.from({ length: 6 }, (_, i) => [file(`layer${i}`, noise(128 * 1024, i + 1))]));
    await pushTestImage(reg(), 'library/wide', 'v1', image);
    for (const limit of [1, 2]) {
      const { dir, store } = await freshStore(temps);
      const context = await makeContext(dir);
      let inFlight = 0;
      let peak = 0;
      const opened = await openSource(`${reg().host}/library/wide:v1`, context);
      const result = await pullImage(store, opened.source, opened.reference, {
        platform: hostPlatform(),
        maxConcurrentDownloads: limit,
        names: opened.names,
        retry: FAST_RETRY,
        onEvent: (e) => {
          if (e.type === 'layer-start' && e.action === 'download') peak = Math.max(peak, ++inFlight);
          if (e.type === 'layer-done') inFlight--;
        },
      });
      assert.equal(result.layers.length, 6);
      assert.ok(result.layers.every((l) => l.outcome === 'downloaded'));
      assert.equal(peak, limit, `at most ${limit} at a time, and that many in parallel`);
    }
  });
});

describe('pull from a registry with Basic auth (htpasswd)', { skip }, () => {
  const reg = useRegistry({ kind: 'basic', users: USERS });
  const temps = new TempDirs();
  let image: TestImage;
  before(async () => {
    image = await buildTestImage([[file('etc/secret-app', 'basic\n')], [file('bin/run', 'run\n')]]);
    await pushTestImage(reg(), 'team/app', 'v1', image, ALICE);
  });
  after(() => temps.cleanup());

  it('pulls with credentials from the Docker config (auths): Basic is sent once challenged, to every request', async () => {
    const { dir, store } = await freshStore(temps);
    const context = await makeContext(dir, { dockerConfig: dockerAuths(reg().host, 'bob', USERS.bob) });
    const result = await pull(store, `${reg().host}/team/app:v1`, context);
    assert.equal(result.image.digest, image.digest);
    const basic = `Basic ${Buffer.from(`bob:${USERS.bob}`).toString('base64')}`;
    const [first, ...rest] = context.http.apiRequests();
    assert.equal(first?.headers.authorization, undefined, 'the first request goes without credentials');
    assert.ok(rest.length >= 4);
    assert.deepEqual(new Set(rest.map(authorizationOf)), new Set([basic]), 'every request after the challenge carries Basic');
  });

  it('pulls with credentials from a credential helper (credHelpers)', async () => {
    const { dir, store } = await freshStore(temps);
    const bin = join(dir, 'bin');
    await mkdir(bin);
    const helper = join(bin, 'docker-credential-layerfs-test');
    // A docker-credential-* program: `get` reads the server URL on stdin, answers JSON.
    await writeFile(
      helper,
      `#!/bin/sh\nread server\nif [ "$1" = get ] && [ "$server" = "${reg().host}" ]; then\n  printf '{"ServerURL":"%s","Username":"alice","Secret":"${USERS.alice}"}' "$server"\nelse\n  echo "credentials not found in native keychain"; exit 1\nfi\n`,
    );
    await chmod(helper, 0o755);
    const context = await makeContext(dir, { dockerConfig: { credHelpers: { [reg().host]: 'layerfs-test' } }, path: [bin] });
    const result = await pull(store, `${reg().host}/team/app:v1`, context);
    assert.equal(result.image.digest, image.digest);
    assert.equal(context.http.apiRequests().at(-1)?.headers.authorization, `Basic ${Buffer.from(`alice:${USERS.alice}`).toString('base64')}`);
  });

  it('without credentials: a clear error naming `layerfs login`, nothing stored', async () => {
    const { dir, store } = await freshStore(temps);
    const context = await makeContext(dir);
    const err = await rejectsWithCode(pull(store, `${reg().host}/team/app:v1`, context), 'ERR_REGISTRY_AUTH');
    assert.equal(err.message, `${reg().host} requires a user name and password; run \`layerfs login ${reg().host}\``);
    assert.deepEqual(await storeContents(store), { blobs: [], layers: [], downloads: {}, names: [] });
  });

  it('a wrong password: refused with a clear error that does not contain it', async () => {
    const { dir, store } = await freshStore(temps);
    const wrong = 'not-the-password-5521';
    const context = await makeContext(dir, { dockerConfig: dockerAuths(reg().host, 'alice', wrong) });
    const err = await rejectsWithCode(pull(store, `${reg().host}/team/app:v1`, context), 'ERR_REGISTRY_AUTH', /authentication failed \(the credentials were refused\)/);
    assert.equal(err.message.includes(wrong), false);
    assert.equal(err.message.includes(Buffer.from(`alice:${wrong}`).toString('base64')), false);
    assert.equal(context.http.manifestRequests().length, 2, 'challenged once, refused once: no retry loop');
    assert.deepEqual(await storeContents(store), { blobs: [], layers: [], downloads: {}, names: [] });
  });
});

describe('pull from a registry with token auth', { skip }, () => {
  const reg = useRegistry({ kind: 'token', users: USERS });
  const temps = new TempDirs();
  const images = new Map<string, TestImage>();
  const issuer = () => reg().tokenIssuer!;
  before(async () => {
    for (const [repository, tag, text] of [['public/app', 'v1', 'one'], ['public/app', 'v2', 'two'], ['private/app', 'v1', 'private']] as const) {
      const image = await buildTestImage([[file('etc/shared', 'shared\n')], [file('etc/which', `${text}\n`)]]);
      await pushTestImage(reg(), repository, tag, image, ALICE);
      images.set(`${repository}:${tag}`, image);
    }
  });
  after(() => temps.cleanup());

  async function pullWith(context: TestContext, store: Store, input: string, pulls: string[]): Promise<Digest[]> {
    // One source (one authenticator) for several references of its repository.
    const opened = await openSource(input, context);
    const digests: Digest[] = [];
    for (const reference of pulls) {
      const result = await pullImage(store, opened.source, reference, { platform: hostPlatform(), maxConcurrentDownloads: 3, names: [`test/${reference}`], retry: FAST_RETRY });
      digests.push(result.image.digest);
    }
    return digests;
  }

  it('anonymous pull of a public repository: one anonymous token per scope serves every request', async () => {
    const { dir, store } = await freshStore(temps);
    const context = await makeContext(dir);
    issuer().reset();
    const digests = await pullWith(context, store, `${reg().host}/public/app:v1`, ['v1', 'v2']);
    assert.deepEqual(digests, [images.get('public/app:v1')!.digest, images.get('public/app:v2')!.digest]);
    assert.equal(issuer().countScope('repository:public/app:pull'), 1, 'one token for two pulls of the repository');
    assert.deepEqual(
      issuer().requests.map((r) => ({ credentials: r.credentials, status: r.status, service: r.service, scopes: r.scopes })),
      [{ credentials: false, status: 200, service: issuer().service, scopes: ['repository:public/app:pull'] }],
    );
    const bearer = context.http.apiRequests().slice(1).map(authorizationOf);
    assert.ok(bearer.length >= 6);
    assert.equal(new Set(bearer).size, 1, 'the same token on every request after the challenge');
    assert.match(bearer[0]!, /^Bearer ey/);
  });

  it('tokens are per scope: another repository gets its own', async () => {
    const { dir, store } = await freshStore(temps);
    const context = await makeContext(dir, { dockerConfig: dockerAuths(reg().host, 'alice', USERS.alice) });
    issuer().reset();
    await pull(store, `${reg().host}/public/app:v1`, context);
    await pull(store, `${reg().host}/private/app:v1`, context);
    assert.equal(issuer().countScope('repository:public/app:pull'), 1);
    assert.equal(issuer().countScope('repository:private/app:pull'), 1);
    assert.equal(issuer().requests.length, 2);
    assert.ok(issuer().requests.every((r) => r.credentials && r.user === 'alice'), 'asked for as the user');
  });

  it('a private repository: anonymous access is refused with a clear error, nothing stored', async () => {
    const { dir, store } = await freshStore(temps);
    const context = await makeContext(dir);
    const err = await rejectsWithCode(pull(store, `${reg().host}/private/app:v1`, context), 'ERR_REGISTRY_AUTH');
    assert.match(err.message, new RegExp(`authentication failed \\(no credentials; run \`layerfs login ${reg().host.replace(/\./g, '\\.')}\`\\)`));
    assert.deepEqual(await storeContents(store), { blobs: [], layers: [], downloads: {}, names: [] });
  });

  it('a wrong password is refused by the token server: a clear error that does not contain it', async () => {
    const { dir, store } = await freshStore(temps);
    const wrong = 'wrong-token-password-0042';
    const context = await makeContext(dir, { dockerConfig: dockerAuths(reg().host, 'alice', wrong) });
    const err = await rejectsWithCode(pull(store, `${reg().host}/private/app:v1`, context), 'ERR_REGISTRY_AUTH');
    assert.equal(err.message, `${reg().host} refused the stored credentials (token server answered 401); check them with \`layerfs login ${reg().host}\``);
    assert.equal(err.message.includes(wrong), false);
  });

  it('a cached token that the registry refuses is dropped and a new one asked for', async () => {
    const { dir, store } = await freshStore(temps);
    const context = await makeContext(dir);
    const opened = await openSource(`${reg().host}/public/app:v1`, context);
    const options = { platform: hostPlatform(), maxConcurrentDownloads: 3, names: ['test/refresh'], retry: FAST_RETRY };
    issuer().reset();
    // Tokens that expired long ago (beyond the registry's leeway) while the response says 300 s.
    issuer().configure({ lifetime: -120, expiresIn: 300 });
    try {
      await rejectsWithCode(pullImage(store, opened.source, 'v1', options), 'ERR_REGISTRY_AUTH', /authentication failed/);
    } finally {
      issuer().configure({ lifetime: undefined });
    }
    assert.equal(issuer().requests.length, 1, 'one token, refused: no loop');
    const stale = context.http.apiRequests().at(-1)!.headers.authorization;
    assert.match(stale ?? '', /^Bearer /);

    context.http.clear();
    const result = await pullImage(store, opened.source, 'v1', options);
    assert.equal(result.image.digest, images.get('public/app:v1')!.digest);
    const [first, second] = context.http.apiRequests();
    assert.equal(first?.headers.authorization, stale, 'the cached token is tried first');
    assert.equal(issuer().requests.length, 2, 'and a new one asked for when it is refused');
    assert.notEqual(second?.headers.authorization, stale);
    assert.match(second?.headers.authorization ?? '', /^Bearer /);
  });
});
