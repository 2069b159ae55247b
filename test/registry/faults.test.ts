// pullImage against the fault-injecting registry, for what a real registry cannot be made to do
// on demand: connections reset or closed mid-blob (resumed with Range, or restarted when Range is
// ignored), wrong bytes, 429 with Retry-After, 503s, dropped connections, redirects (to another
// origin, and in a loop), stalled bodies, an oversized manifest, oversized error bodies, a 401 that
// never ends, schema 1. Each case asserts the exact outcome: what was asked for, the error's code
// and message, and what the store holds afterwards (a failure leaves nothing in blobs/ or layers/
// and no name; downloads/ may keep a partial, which the next pull resumes from).
import './pull-support.js';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { type Digest, digestHex, sha256 } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { Store } from '../../src/store/store.js';
import { file, gzip } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { type Content, type FaultRegistry, OVERSIZED_MANIFEST_BYTES, type RecordedRequest, startFaultRegistry } from './harness/fault-server.js';
import { buildTestImage, type TestImage } from './harness/images.js';
import { type ContextOptions, dockerAuths, FAST_RETRY, makeContext, noise, partialSize, pull, rejectsWithCode, storeContents, type TestContext } from './pull-support.js';

const EMPTY = { blobs: [], layers: [], downloads: {}, names: [] };
const LAYER_SIZE = 300_000;

describe('pulling from a registry that misbehaves', () => {
  const temps = new TempDirs();
  let fake: FaultRegistry;
  let image: TestImage;
  let layer: TestImage['layers'][number];
  let content: Content;
  let ref: string;
  const contexts: TestContext[] = [];

  before(async () => {
    // One layer of incompressible data, big enough to be cut in the middle.
    image = await buildTestImage([[file('data/blob.bin', noise(LAYER_SIZE, 3)), file('etc/hello', 'hello\n')]]);
    layer = image.layers[0]!;
    content = {
      manifests: { 'library/app:v1': { bytes: image.manifest, mediaType: image.manifestMediaType } },
      blobs: { [image.configDigest]: image.config, [layer.digest]: layer.blob },
    };
    fake = await startFaultRegistry(content);
    ref = `${fake.host}/library/app:v1`;
  });
  afterEach(async () => {
    fake.setFaults([]);
    fake.setContent(content);
    for (const context of contexts.splice(0)) await context.http.close();
  });
  after(async () => {
    await fake.stop();
    await temps.cleanup();
  });

  async function setup(options: ContextOptions = {}): Promise<{ store: Store; context: TestContext }> {
    const dir = await temps.make('faults');
    const context = await makeContext(dir, options);
    contexts.push(context);
    fake.requests.splice(0);
    return { store: await Store.open(join(dir, 'store')), context };
  }

  const isLayer = (r: RecordedRequest): boolean => r.path.endsWith(`/blobs/${layer.digest}`);
  const layerGets = (): Array<string | undefined> => fake.requests.filter((r) => isLayer(r) && r.method === 'GET').map((r) => r.range);

  async function assertPulled(store: Store, result: { image: { digest: Digest } }): Promise<void> {
    assert.equal(result.image.digest, image.digest);
    assert.ok((await store.blobs.read(layer.digest)).equals(layer.blob), 'the stored blob is the right one');
    assert.deepEqual(await storeContents(store), {
      blobs: [image.configDigest, image.digest, layer.digest].sort(),
      layers: [layer.diffId],
      downloads: {},
      names: [ref],
    });
  }

  describe('broken blob bodies', () => {
    it('a connection reset mid-blob resumes with a Range request from the byte it stopped at', async () => {
      const { store, context } = await setup();
      fake.setFaults([{ kind: 'reset', afterBytes: 100_000, on: isLayer, times: 1 }]);
      await assertPulled(store, await pull(store, ref, context));
      assert.deepEqual(layerGets(), [undefined, 'bytes=100000-']);
    });

    it('a server that ignores Range sends the whole blob again: the bytes already had are skipped', async () => {
      const { store, context } = await setup();
      fake.setFaults({ ignoreRange: true, rules: [{ kind: 'reset', afterBytes: 100_000, on: isLayer, times: 1 }] });
      await assertPulled(store, await pull(store, ref, context));
      assert.deepEqual(layerGets(), [undefined, 'bytes=100000-'], 'asked for the rest, got everything (200), kept the right bytes');
    });

    it('a body closed short of its Content-Length resumes from where it ended', async () => {
      const { store, context } = await setup();
      fake.setFaults([{ kind: 'shortBody', sendBytes: 50_000, on: isLayer, times: 1 }]);
      await assertPulled(store, await pull(store, ref, context));
      assert.deepEqual(layerGets(), [undefined, 'bytes=50000-']);
    });

    it('a connection dropped before any answer is tried again', async () => {
      const { store, context } = await setup();
      fake.setFaults([{ kind: 'drop', on: isLayer, times: 1 }]);
      await assertPulled(store, await pull(store, ref, context));
      assert.deepEqual(layerGets(), [undefined, undefined]);
    });

    it('a body that always ends short fails after the retry policy; only the partial stays, and the next pull resumes from it', async () => {
      const { store, context } = await setup();
      fake.setFaults({ ignoreRange: true, rules: [{ kind: 'shortBody', sendBytes: 50_000, on: isLayer }] });
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_NETWORK');
      assert.equal(err.message, `blob ${layer.digest}: other side closed`);
      assert.deepEqual(layerGets(), [undefined, 'bytes=50000-', 'bytes=50000-'], `${FAST_RETRY.attempts} attempts without progress, then give up`);
      assert.deepEqual(await storeContents(store), { ...EMPTY, downloads: { [digestHex(layer.digest)]: 50_000 } });

      fake.setFaults([]);
      fake.requests.splice(0);
      const result = await pull(store, ref, context);
      await assertPulled(store, result);
      assert.deepEqual(layerGets(), ['bytes=50000-'], 'the next pull asks only for the rest');
      const start = result.events.find((e) => e.type === 'layer-start' && e.digest === layer.digest);
      assert.deepEqual(start, { type: 'layer-start', digest: layer.digest, size: layer.blob.length, action: 'download', resumedAt: 50_000 });
    });

    it('wrong bytes of the right length: rejected with a digest mismatch at the end of the stream, nothing kept', async () => {
      const { store, context } = await setup();
      fake.setFaults([{ kind: 'wrongBody', on: isLayer }]);
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_DIGEST_MISMATCH');
      assert.match(err.message, new RegExp(`^blob ${layer.digest}: content has digest sha256:[0-9a-f]{64}$`));
      assert.equal(err.message.endsWith(layer.digest), false);
      // The extractor gave up on the garbage early; the rest was still fetched to check the digest.
      assert.equal(layerGets()[0], undefined);
      assert.deepEqual(await storeContents(store), EMPTY, 'no blob, no layer, no partial to resume from');

      fake.setFaults([]);
      fake.requests.splice(0);
      await assertPulled(store, await pull(store, ref, context));
      assert.deepEqual(layerGets(), [undefined], 'the next pull starts afresh');
    });

    it('a blob longer than its descriptor says: rejected at once as a size mismatch', async () => {
      const { store, context } = await setup();
      fake.setContent({ ...content, blobs: { ...content.blobs, [layer.digest]: Buffer.concat([layer.blob, Buffer.from('trailing garbage')]) } });
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_DIGEST_MISMATCH');
      assert.equal(err.message, `blob ${layer.digest}: more than the expected ${layer.blob.length} bytes`);
      assert.deepEqual(await storeContents(store), EMPTY);
    });

    it('a config with the wrong bytes: rejected before any layer is fetched', async () => {
      const { store, context } = await setup();
      fake.setFaults([{ kind: 'wrongBody', on: (r) => r.path.endsWith(image.configDigest) }]);
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_DIGEST_MISMATCH');
      assert.match(err.message, new RegExp(`^image config: content has digest sha256:[0-9a-f]{64}, expected ${image.configDigest}$`));
      assert.deepEqual(layerGets(), []);
      assert.deepEqual(await storeContents(store), EMPTY);
    });

    it('a layer whose bytes match its digest but are no tar: the extractor\'s error, and nothing kept', async () => {
      const { store, context } = await setup();
      const inside = noise(200_000, 5);
      const blob = gzip(inside);
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(inside)] } }));
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: sha256(config), size: config.length },
        layers: [{ mediaType: MediaType.ociLayerGzip, digest: sha256(blob), size: blob.length }],
      }));
      fake.setContent({ manifests: { 'library/broken:v1': { bytes: manifest, mediaType: MediaType.ociManifest } }, blobs: { [sha256(config)]: config, [sha256(blob)]: blob } });
      const err = await rejectsWithCode(pull(store, `${fake.host}/library/broken:v1`, context), 'ERR_LAYER_CORRUPT');
      assert.match(err.message, /^not a valid tar stream/);
      const gets = fake.requests.filter((r) => r.path.endsWith(sha256(blob)));
      assert.equal(gets[0]!.range, undefined);
      assert.ok(gets.length <= 2, 'at most the rest is fetched once more, to tell bad bytes from a bad layer');
      assert.deepEqual(await storeContents(store), EMPTY);
    });

    it('a partial download whose earlier bytes are bad is found out at the end, dropped, and fetched again', async () => {
      const { store, context } = await setup();
      // What an interrupted earlier run might have left: the right length, one byte changed.
      const damaged = Buffer.from(layer.blob.subarray(0, 100_000));
      damaged[90_000] = damaged[90_000]! ^ 0x55;
      await mkdir(store.paths.downloadsDir, { recursive: true });
      await writeFile(join(store.paths.downloadsDir, digestHex(layer.digest)), damaged);
      const result = await pull(store, ref, context);
      await assertPulled(store, result);
      assert.deepEqual(layerGets(), ['bytes=100000-', undefined], 'resumed, found bad, started over once');
    });
  });

  describe('statuses, retries and Retry-After', () => {
    it('429 with Retry-After: waits as long as it is told, then succeeds', async () => {
      const { store, context } = await setup();
      fake.setFaults([{ kind: 'status', status: 429, retryAfter: 1, on: isLayer, times: 1 }]);
      const started = Date.now();
      await assertPulled(store, await pull(store, ref, context));
      const elapsed = Date.now() - started;
      // FAST_RETRY's own backoff is 10 ms: only Retry-After explains a wait of a second.
      assert.ok(elapsed >= 950, `waited ${elapsed} ms`);
      assert.deepEqual(layerGets(), [undefined, undefined]);
    });

    it('503 twice, then success', async () => {
      const { store, context } = await setup();
      fake.setFaults([{ kind: 'status', status: 503, on: 'manifests', times: 2 }]);
      await assertPulled(store, await pull(store, ref, context));
      assert.equal(fake.requests.filter((r) => r.path.includes('/manifests/')).length, 3);
    });

    it('503 for ever: fails after the policy\'s attempts (not more), with the status in a clear message', async () => {
      const { store, context } = await setup();
      fake.setFaults([{ kind: 'status', status: 503, on: isLayer }]);
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_HTTP');
      assert.equal((err as { status?: number }).status, 503);
      assert.equal(err.message, `blob ${layer.digest} at ${fake.url}/v2/library/app/blobs/${layer.digest}: HTTP 503 (UNKNOWN: injected 503)`);
      assert.equal(layerGets().length, FAST_RETRY.attempts);
      assert.deepEqual(await storeContents(store), EMPTY);
    });

    it('404 for the tag: not found, not retried', async () => {
      const { store, context } = await setup();
      const err = await rejectsWithCode(pull(store, `${fake.host}/library/app:nope`, context), 'ERR_REGISTRY_NOT_FOUND');
      assert.equal(err.message, `manifest library/app:nope: not found in library/app at ${fake.host} (MANIFEST_UNKNOWN: manifest unknown: library/app:nope)`);
      assert.equal(fake.requests.length, 1);
    });

    it('an error body is read only up to a cap, and a long registry message is cut short', async () => {
      const { store, context } = await setup();
      const huge = JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'x'.repeat(1024 * 1024) }] });
      fake.setFaults([{ kind: 'status', status: 500, body: huge, on: 'manifests' }]);
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_HTTP');
      assert.equal(err.message, `manifest library/app:v1 at ${fake.url}/v2/library/app/manifests/v1: HTTP 500`, 'the oversized body is not quoted');

      const long = JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'y'.repeat(5000) }] });
      fake.setFaults([{ kind: 'status', status: 500, body: long, on: 'manifests' }]);
      const cut = await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_HTTP');
      assert.ok(cut.message.length < 500, `${cut.message.length} characters`);
      assert.match(cut.message, /HTTP 500 \(UNKNOWN: y+\)$/);
    });
  });

  describe('redirects', () => {
    it('blobs redirected to another origin are fetched from there, without the registry\'s Authorization', async () => {
      const { store, context } = await setup({ dockerConfig: dockerAuths(`${fake.host}`, 'u', 'secret-p') });
      fake.setFaults({ basicAuth: { username: 'u', password: 'secret-p' }, rules: [{ kind: 'redirect' }] });
      await assertPulled(store, await pull(store, ref, context));
      const basic = `Basic ${Buffer.from('u:secret-p').toString('base64')}`;
      const cdn = fake.cdn.requests.map((r) => [r.path, r.authorization]);
      assert.deepEqual(cdn.sort(), [[`/content/${image.configDigest}`, undefined], [`/content/${layer.digest}`, undefined]].sort());
      const registryBlobs = fake.requests.filter((r) => r.server === 'registry' && r.path.includes('/blobs/') && r.authorization !== undefined);
      assert.equal(registryBlobs.length, 2);
      assert.ok(registryBlobs.every((r) => r.authorization === basic));
    });

    it('a redirect loop ends with a protocol error after 10 redirects, and is not retried', async () => {
      const { store, context } = await setup();
      fake.setFaults([{ kind: 'redirectLoop', on: isLayer }]);
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_PROTOCOL');
      assert.equal(err.message, `GET ${fake.url}/v2/library/app/blobs/${layer.digest}: more than 10 redirects (a redirect loop?)`);
      assert.equal(layerGets().length, 1);
      assert.equal(fake.requests.filter((r) => r.path.startsWith('/_loop/')).length, 10);
      assert.deepEqual(await storeContents(store), EMPTY);
    });
  });

  describe('stalls', () => {
    it('a body that stalls is given up after the stall timeout and resumed', async () => {
      const { store, context } = await setup({ stallTimeoutMs: 300 });
      fake.setFaults([{ kind: 'stall', afterBytes: 50_000, on: isLayer, times: 1 }]);
      const started = Date.now();
      await assertPulled(store, await pull(store, ref, context));
      assert.ok(Date.now() - started >= 300);
      assert.deepEqual(layerGets(), [undefined, 'bytes=50000-']);
    });

    it('a body that pauses for less than the timeout is simply waited for', async () => {
      const { store, context } = await setup({ stallTimeoutMs: 2_000 });
      fake.setFaults([{ kind: 'stall', afterBytes: 50_000, ms: 300, on: isLayer, times: 1 }]);
      await assertPulled(store, await pull(store, ref, context));
      assert.deepEqual(layerGets(), [undefined]);
    });

    it('a blob that never sends a byte: a timeout error after the policy\'s attempts, nothing kept', async () => {
      // undici checks body timeouts on a ~1 s clock: two attempts keep this short.
      const { store, context } = await setup({ stallTimeoutMs: 250, retry: { ...FAST_RETRY, attempts: 2 } });
      fake.setFaults([{ kind: 'stall', afterBytes: 0, on: isLayer }]);
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_TIMEOUT');
      assert.match(err.message, new RegExp(`^blob ${layer.digest}: no data for too long`));
      assert.equal(layerGets().length, 2);
      assert.deepEqual(await storeContents(store), EMPTY);
    });

    it('a manifest whose body stalls: a timeout error', async () => {
      const { store, context } = await setup({ stallTimeoutMs: 250, retry: { ...FAST_RETRY, attempts: 2 } });
      fake.setFaults([{ kind: 'stall', afterBytes: 10, on: 'manifests' }]);
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_TIMEOUT');
      assert.match(err.message, /no data for too long/);
      assert.equal(fake.requests.length, 2);
    });

    it('a pull that stops mid-blob leaves its partial, and the next pull resumes from it', async () => {
      const { store, context } = await setup({ stallTimeoutMs: 250, retry: { ...FAST_RETRY, attempts: 1 } });
      fake.setFaults([{ kind: 'stall', afterBytes: 120_000, on: isLayer, times: 1 }]);
      await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_TIMEOUT');
      assert.equal(await partialSize(store, layer.digest), 120_000);
      assert.deepEqual(await storeContents(store), { ...EMPTY, downloads: { [digestHex(layer.digest)]: 120_000 } });

      fake.requests.splice(0);
      await assertPulled(store, await pull(store, ref, context));
      assert.deepEqual(layerGets(), ['bytes=120000-']);
    });
  });

  describe('manifests', () => {
    it('an oversized manifest is refused without being read whole, and not asked for again', async () => {
      const { store, context } = await setup();
      fake.setFaults([{ kind: 'oversizedManifest' }]);
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_PROTOCOL');
      assert.equal(err.message, `manifest library/app:v1 is ${OVERSIZED_MANIFEST_BYTES} bytes, more than the limit of ${4 * 1024 * 1024}`);
      assert.equal(fake.requests.length, 1);

      fake.setFaults([{ kind: 'oversizedManifest', chunked: true }]);
      const chunked = await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_PROTOCOL');
      assert.equal(chunked.message, `manifest library/app:v1 is more than the limit of ${4 * 1024 * 1024} bytes`);
      assert.deepEqual(await storeContents(store), EMPTY);
    });

    it('a schema 1 manifest gets a clear "unsupported" error', async () => {
      const { store, context } = await setup();
      const schema1 = Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'library/old', tag: 'v1', fsLayers: [], history: [], signatures: [] }));
      fake.setContent({ ...content, manifests: { 'library/old:v1': { bytes: schema1, mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws' } } });
      const err = await rejectsWithCode(pull(store, `${fake.host}/library/old:v1`, context), 'ERR_UNSUPPORTED');
      assert.match(err.message, /^manifest library\/old:v1 is a Docker schema 1 manifest, which layerfs does not support/);
      assert.deepEqual(await storeContents(store), EMPTY);
    });

    it('pinned by digest, the registry sends other bytes: refused', async () => {
      const { store, context } = await setup();
      const other = Buffer.from(image.manifest.toString().replace('"schemaVersion":2', '"schemaVersion": 2'));
      fake.setContent({ ...content, manifests: { [`library/app:${image.digest}`]: { bytes: other, mediaType: image.manifestMediaType } } });
      const err = await rejectsWithCode(pull(store, `${fake.host}/library/app@${image.digest}`, context), 'ERR_DIGEST_MISMATCH');
      assert.equal(err.message, `manifest library/app:${image.digest}: the registry sent content with digest ${sha256(other)}`);
      assert.deepEqual(await storeContents(store), EMPTY);
    });

    it('a manifest whose layer has an unknown media type is refused before anything is fetched', async () => {
      const { store, context } = await setup();
      const manifest = JSON.parse(image.manifest.toString()) as { layers: Array<{ mediaType: string }> };
      manifest.layers[0]!.mediaType = 'application/vnd.example.unknown';
      fake.setContent({ ...content, manifests: { 'library/app:odd': { bytes: Buffer.from(JSON.stringify(manifest)), mediaType: MediaType.ociManifest } } });
      const err = await rejectsWithCode(pull(store, `${fake.host}/library/app:odd`, context), 'ERR_UNSUPPORTED');
      assert.equal(err.message, `${fake.host}/library/app has a layer of unsupported media type application/vnd.example.unknown`);
      assert.equal(fake.requests.filter((r) => r.path.includes('/blobs/')).length, 0);
    });
  });

  describe('authentication that never succeeds', () => {
    it('a Bearer challenge on every request: a clear auth error after one token, no loop', async () => {
      const { store, context } = await setup();
      fake.setFaults({ bearerNeverSucceeds: true });
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_AUTH');
      assert.equal(
        err.message,
        `manifest library/app:v1 at ${fake.url}/v2/library/app/manifests/v1: authentication failed (no credentials; run \`layerfs login ${fake.host}\`) (UNAUTHORIZED: authentication required)`,
      );
      assert.deepEqual(fake.requests.map((r) => r.path), ['/v2/library/app/manifests/v1', '/token', '/v2/library/app/manifests/v1']);
      assert.deepEqual(await storeContents(store), EMPTY);
    });

    it('the same with credentials: they are sent to the token server, refused, and never printed', async () => {
      const password = 'never-print-me-9314';
      const { store, context } = await setup({ dockerConfig: dockerAuths(fake.host, 'carol', password) });
      fake.setFaults({ bearerNeverSucceeds: true });
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_AUTH', /authentication failed \(the credentials were refused\)/);
      assert.equal(err.message.includes(password), false);
      assert.equal(err.message.includes(Buffer.from(`carol:${password}`).toString('base64')), false);
      const token = fake.requests.filter((r) => r.path === '/token');
      assert.equal(token.length, 1);
      assert.equal(token[0]!.authorization, `Basic ${Buffer.from(`carol:${password}`).toString('base64')}`);
    });

    it('Basic required and no credentials: an error saying to log in', async () => {
      const { store, context } = await setup();
      fake.setFaults({ basicAuth: { username: 'u', password: 'p' } });
      const err = await rejectsWithCode(pull(store, ref, context), 'ERR_REGISTRY_AUTH');
      assert.equal(err.message, `${fake.host} requires a user name and password; run \`layerfs login ${fake.host}\``);
      assert.equal(fake.requests.length, 1);
    });
  });
});
