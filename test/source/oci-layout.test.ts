// oci: sources on real directories: layouts written here by hand (as the spec describes them)
// and one written by skopeo, read back by tag, by digest, nested, and broken in the ways a
// layout on disk can be.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { type Digest, digestHex, sha256 } from '../../src/oci/digest.js';
import { parseManifest } from '../../src/oci/manifest.js';
import { MediaType, REF_NAME_ANNOTATION } from '../../src/oci/media-types.js';
import type { Descriptor } from '../../src/oci/types.js';
import { openOciLayout } from '../../src/source/oci-layout.js';
import { dir, file } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { type BuiltImage, buildImage } from '../image/image-fixtures.js';

const hasSkopeo = spawnSync('skopeo', ['--version'], { stdio: 'ignore' }).status === 0;
const NO_SKOPEO = 'skopeo is not installed (apt-get install skopeo)';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Writes `blobs` and an index.json listing `entries` (an OCI image layout, by the spec). */
async function writeLayout(root: string, blobs: Buffer[], entries: Descriptor[], layoutFile = '{"imageLayoutVersion":"1.0.0"}'): Promise<void> {
  await fsp.mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
  await fsp.writeFile(join(root, 'oci-layout'), layoutFile);
  for (const blob of blobs) await fsp.writeFile(join(root, 'blobs', 'sha256', digestHex(sha256(blob))), blob);
  await fsp.writeFile(join(root, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: entries }));
}

function imageBlobs(image: BuiltImage): Buffer[] {
  return [image.manifest, image.config, ...image.layers.map((l) => l.blob)];
}

function entry(bytes: Buffer, mediaType: string, name?: string): Descriptor {
  return { mediaType, digest: sha256(bytes), size: bytes.length, ...(name === undefined ? {} : { annotations: { [REF_NAME_ANNOTATION]: name } }) };
}

async function rejectsWith(promise: Promise<unknown> | (() => unknown), code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(async () => (typeof promise === 'function' ? promise() : promise), (err: Error & { code?: string }) => {
    assert.equal(err.code, code, `${err.message} (expected ${code})`);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  });
}

describe('oci: layout source', () => {
  const temps = new TempDirs();
  let image: BuiltImage;
  let other: BuiltImage;
  let index: Buffer;

  before(async () => {
    image = await buildImage([[dir('etc'), file('etc/hello', 'hello')], [file('data', 'x'.repeat(5000))]]);
    other = await buildImage([[file('other', 'other')]], '2026-12-01T00:00:00Z');
    // An index of two single-platform images, as multi-arch layouts have.
    index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [
          { ...entry(image.manifest, MediaType.ociManifest), platform: { architecture: 'amd64', os: 'linux' } },
          { ...entry(other.manifest, MediaType.ociManifest), platform: { architecture: 'arm64', os: 'linux' } },
        ],
      }),
    );
  });
  after(() => temps.cleanup());

  async function standardLayout(): Promise<string> {
    const root = await temps.make('oci');
    await writeLayout(root, [...imageBlobs(image), ...imageBlobs(other), index], [
      entry(image.manifest, MediaType.ociManifest, 'v1'),
      entry(other.manifest, MediaType.ociManifest, 'docker.io/library/other:2'),
      entry(index, MediaType.ociIndex, 'multi'),
    ]);
    return root;
  }

  it('serves a manifest by tag and by digest, checked against index.json', async () => {
    const root = await standardLayout();
    const source = await openOciLayout(root);
    assert.equal(source.name, `oci:${root}`);
    const byTag = await source.manifest('v1');
    assert.deepEqual(byTag.bytes, image.manifest);
    assert.equal(byTag.digest, sha256(image.manifest));
    assert.equal(byTag.mediaType, MediaType.ociManifest);
    const byDigest = await source.manifest(sha256(image.manifest));
    assert.deepEqual(byDigest, byTag);
    assert.equal(parseManifest(byTag.bytes).layers.length, 2);
    await source.close();
  });

  it('matches ref names exactly, full image names included', async () => {
    const source = await openOciLayout(await standardLayout());
    assert.deepEqual(source.refNames(), ['v1', 'docker.io/library/other:2', 'multi']);
    assert.deepEqual((await source.manifest('docker.io/library/other:2')).bytes, other.manifest);
    await rejectsWith(source.manifest('other:2'), 'ERR_REGISTRY_NOT_FOUND', /it has: v1, docker\.io\/library\/other:2, multi/);
    await rejectsWith(source.manifest('V1'), 'ERR_REGISTRY_NOT_FOUND');
  });

  it('serves a nested index; its manifests are then asked for by digest', async () => {
    const source = await openOciLayout(await standardLayout());
    const top = await source.manifest('multi');
    assert.equal(top.mediaType, MediaType.ociIndex);
    assert.deepEqual(top.bytes, index);
    const children = (JSON.parse(top.bytes.toString()) as { manifests: Descriptor[] }).manifests;
    const arm = await source.manifest(children[1]!.digest);
    assert.deepEqual(arm.bytes, other.manifest);
    assert.equal(arm.mediaType, MediaType.ociManifest, 'sniffed from the blob: index.json does not list it');
  });

  it('streams blobs from an offset, naming itself as the server', async () => {
    const root = await standardLayout();
    const source = await openOciLayout(root);
    const layer = image.layers[1]!;
    const descriptor = { mediaType: MediaType.ociLayerGzip, digest: layer.digest, size: layer.blob.length };
    const whole = await source.blob(descriptor);
    assert.deepEqual(await readAll(whole.stream), layer.blob);
    assert.equal(whole.servedBy, `oci:${root}`);
    const tail = await source.blob(descriptor, 10);
    assert.equal(tail.offset, 10);
    assert.deepEqual(await readAll(tail.stream), layer.blob.subarray(10));
    assert.deepEqual(await readAll((await source.blob(descriptor, layer.blob.length)).stream), Buffer.alloc(0));
  });

  it('defaults to the only image, by its ref name or else its digest; refuses to guess among several', async () => {
    const single = await temps.make('oci');
    await writeLayout(single, imageBlobs(image), [entry(image.manifest, MediaType.ociManifest, 'only')]);
    assert.equal((await openOciLayout(single)).defaultReference(), 'only');

    const unnamed = await temps.make('oci');
    await writeLayout(unnamed, imageBlobs(image), [entry(image.manifest, MediaType.ociManifest)]);
    const source = await openOciLayout(unnamed);
    assert.deepEqual(source.refNames(), []);
    assert.equal(source.defaultReference(), sha256(image.manifest));
    assert.deepEqual((await source.manifest(source.defaultReference())).bytes, image.manifest);

    const several = await openOciLayout(await standardLayout());
    assert.throws(() => several.defaultReference(), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_REFERENCE_INVALID');
      assert.match(err.message, /3 images.*v1, docker\.io\/library\/other:2, multi/);
      return true;
    });

    const empty = await temps.make('oci');
    await writeLayout(empty, [], []);
    await rejectsWith(async () => (await openOciLayout(empty)).defaultReference(), 'ERR_SOURCE_INVALID', /no images/);
  });

  it('reports a missing blob with its digest and the layout', async () => {
    const root = await standardLayout();
    const layer = image.layers[0]!;
    await fsp.rm(join(root, 'blobs', 'sha256', digestHex(layer.digest)));
    await fsp.rm(join(root, 'blobs', 'sha256', digestHex(sha256(other.manifest))));
    const source = await openOciLayout(root);
    const missing = new RegExp(`${layer.digest}.*oci:${root}`);
    await rejectsWith(source.blob({ mediaType: MediaType.ociLayerGzip, digest: layer.digest, size: 1 }), 'ERR_REGISTRY_NOT_FOUND', missing);
    await rejectsWith(source.manifest('docker.io/library/other:2'), 'ERR_REGISTRY_NOT_FOUND', new RegExp(sha256(other.manifest)));
    await rejectsWith(source.manifest(sha256('nothing')), 'ERR_REGISTRY_NOT_FOUND');
  });

  it('validates digests before they name a file', async () => {
    const source = await openOciLayout(await standardLayout());
    await rejectsWith(source.manifest('sha256:../../../../etc/passwd'), 'ERR_REFERENCE_INVALID');
    await rejectsWith(source.manifest(`sha256:${'A'.repeat(64)}`), 'ERR_REFERENCE_INVALID');
    await rejectsWith(source.manifest(`sha512:${'a'.repeat(128)}`), 'ERR_UNSUPPORTED');
    const bad = (digest: string): Descriptor => ({ mediaType: MediaType.ociLayer, digest: digest as Digest, size: 1 });
    await rejectsWith(source.blob(bad('../../etc/passwd')), 'ERR_SOURCE_INVALID');
    await rejectsWith(source.blob(bad('sha256:../../../etc/passwd')), 'ERR_REFERENCE_INVALID');
    await assert.rejects(source.blob({ mediaType: MediaType.ociLayer, digest: image.layers[0]!.digest, size: 1 }, -1), RangeError);
  });

  it('checks manifests against their digest and the size index.json gives', async () => {
    const root = await standardLayout();
    const path = join(root, 'blobs', 'sha256', digestHex(sha256(image.manifest)));
    await fsp.writeFile(path, Buffer.concat([image.manifest, Buffer.from(' ')]));
    const source = await openOciLayout(root);
    await rejectsWith(source.manifest('v1'), 'ERR_DIGEST_MISMATCH', new RegExp(sha256(image.manifest)));
    await rejectsWith(source.manifest(sha256(image.manifest)), 'ERR_DIGEST_MISMATCH');
    // A config is a blob but no manifest: asking for it as one is refused, not misread.
    await rejectsWith(source.manifest(sha256(image.config)), 'ERR_UNSUPPORTED', /schemaVersion/);
  });

  it('refuses blobs that are not regular files', async () => {
    const root = await standardLayout();
    const layer = image.layers[0]!;
    const path = join(root, 'blobs', 'sha256', digestHex(layer.digest));
    await fsp.rm(path);
    execFileSync('mkfifo', [path]);
    const source = await openOciLayout(root);
    const descriptor = { mediaType: MediaType.ociLayerGzip, digest: layer.digest, size: layer.blob.length };
    await rejectsWith(source.blob(descriptor), 'ERR_SOURCE_INVALID', /not a regular file/);
    await fsp.rm(path);
    await fsp.mkdir(path);
    await rejectsWith(source.blob(descriptor), 'ERR_SOURCE_INVALID', /not a regular file/);
  });

  it('refuses what is not an OCI layout, with the reason', async () => {
    await rejectsWith(openOciLayout('/nonexistent/layerfs-layout'), 'ERR_REGISTRY_NOT_FOUND');
    const noLayoutFile = await temps.make('oci');
    await rejectsWith(openOciLayout(noLayoutFile), 'ERR_SOURCE_INVALID', /not an OCI image layout: it has no oci-layout/);

    const cases: Array<[string, string, RegExp]> = [
      ['{"imageLayoutVersion":"2.0.0"}', 'ERR_UNSUPPORTED', /2\.0\.0/],
      ['{"imageLayoutVersion":1}', 'ERR_SOURCE_INVALID', /no imageLayoutVersion/],
      ['not json', 'ERR_SOURCE_INVALID', /oci-layout is not JSON/],
    ];
    for (const [layoutFile, code, pattern] of cases) {
      const root = await temps.make('oci');
      await writeLayout(root, [], [], layoutFile);
      await rejectsWith(openOciLayout(root), code, pattern);
    }

    const noIndex = await temps.make('oci');
    await writeLayout(noIndex, [], []);
    await fsp.rm(join(noIndex, 'index.json'));
    await rejectsWith(openOciLayout(noIndex), 'ERR_SOURCE_INVALID', /no index\.json/);

    const badIndex = await temps.make('oci');
    await writeLayout(badIndex, [], []);
    await fsp.writeFile(join(badIndex, 'index.json'), '{"schemaVersion":2,"manifests":[{"digest":"sha256:x"}]}');
    await rejectsWith(openOciLayout(badIndex), 'ERR_SOURCE_INVALID', /index\.json entry 0 has no mediaType/);

    const hugeIndex = await temps.make('oci');
    await writeLayout(hugeIndex, [], []);
    await fsp.truncate(join(hugeIndex, 'index.json'), 5 * 1024 * 1024); // sparse: costs no disk
    await rejectsWith(openOciLayout(hugeIndex), 'ERR_SOURCE_INVALID', /index\.json is 5242880 bytes, more than the 4194304 allowed/);

    const aFile = join(noLayoutFile, 'plain');
    await fsp.writeFile(aFile, '');
    await rejectsWith(openOciLayout(aFile), 'ERR_SOURCE_INVALID', /not a directory/);
  });

  it('reads a layout that skopeo wrote', async (t) => {
    if (!hasSkopeo) return t.skip(NO_SKOPEO);
    const root = await standardLayout();
    const copy = join(await temps.make('oci'), 'copy');
    execFileSync('skopeo', ['--insecure-policy', 'copy', '-q', `oci:${root}:v1`, `oci:${copy}:copied`]);
    const source = await openOciLayout(copy);
    assert.deepEqual(source.refNames(), ['copied']);
    const fetched = await source.manifest(source.defaultReference());
    const manifest = parseManifest(fetched.bytes);
    assert.equal(manifest.config.digest, sha256(image.config));
    for (const [i, layer] of manifest.layers.entries()) {
      assert.equal(layer.digest, image.layers[i]!.digest, 'skopeo keeps the compressed blobs as they are');
      assert.equal(sha256(await readAll((await source.blob(layer)).stream)), layer.digest);
    }
  });
});
