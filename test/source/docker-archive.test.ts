// docker-archive: sources on real tar files: one written by skopeo from an OCI layout, legacy
// (Docker < 25) and Docker >= 25 archives written here and cross-checked with skopeo, and the
// tar member index underneath (GNU long names, PAX paths, links, truncation).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { type Digest, digestHex, sha256 } from '../../src/oci/digest.js';
import { parseConfig, parseManifest } from '../../src/oci/manifest.js';
import { MediaType, REF_NAME_ANNOTATION } from '../../src/oci/media-types.js';
import type { Descriptor, ImageManifest } from '../../src/oci/types.js';
import { DOCKER_LAYER_TAR, normalizeDockerReference, openDockerArchive } from '../../src/source/docker-archive.js';
import { TarFileIndex } from '../../src/source/tar-file-index.js';
import { dir, type EntrySpec, file, gzip, packTar, padded, RawTar, symlink, zstd } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { type BuiltImage, buildImage } from '../image/image-fixtures.js';

const hasSkopeo = spawnSync('skopeo', ['--version'], { stdio: 'ignore' }).status === 0;
const NO_SKOPEO = 'skopeo is not installed (apt-get install skopeo)';

function skopeo(...args: string[]): void {
  execFileSync('skopeo', ['--insecure-policy', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function rejectsWith(promise: Promise<unknown> | (() => unknown), code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(async () => (typeof promise === 'function' ? promise() : promise), (err: Error & { code?: string }) => {
    assert.equal(err.code, code, `${err.message} (expected ${code})`);
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  });
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const fakeId = (n: number): string => digestHex(sha256(`v1 id ${n}`));

/** A config whose diff_ids are the sha256 of `layers` (uncompressed tars). */
function configFor(tars: Buffer[], created = '2026-11-01T00:00:00Z'): Buffer {
  return json({ created, architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: tars.map((t) => sha256(t)) } });
}

interface LegacyImage {
  config: Buffer;
  /** Layer blobs as stored (plain tars, or compressed by some tools). */
  layers: Buffer[];
  repoTags: string[] | null;
  /** Layer i (> 0) equal to layer j < i is stored as a symlink `<id_i>/layer.tar -> ../<id_j>/layer.tar`. */
  linkDuplicates?: boolean;
}

/**
 * A `docker save` archive as Docker < 25 wrote it: `<id>/layer.tar`, `<hex>.json`, manifest.json.
 * Docker writes manifest.json last; `manifestFirst` puts it first (to cut the archive after it).
 */
async function legacyArchive(images: LegacyImage[], manifestFirst = false): Promise<Buffer> {
  const entries: EntrySpec[] = [];
  const manifest: unknown[] = [];
  let n = 0;
  for (const image of images) {
    const paths: string[] = [];
    for (const [i, layer] of image.layers.entries()) {
      const id = fakeId(n++);
      entries.push(dir(id), file(`${id}/VERSION`, '1.0'), file(`${id}/json`, JSON.stringify({ id })));
      const earlier = image.layers.findIndex((l) => l.equals(layer));
      if (image.linkDuplicates === true && earlier < i) entries.push(symlink(`${id}/layer.tar`, `../${paths[earlier]}`));
      else entries.push(file(`${id}/layer.tar`, layer));
      paths.push(`${id}/layer.tar`);
    }
    const configPath = `${digestHex(sha256(image.config))}.json`;
    entries.push(file(configPath, image.config));
    manifest.push({ Config: configPath, RepoTags: image.repoTags, Layers: paths });
  }
  const manifestEntry = file('manifest.json', JSON.stringify(manifest));
  return packTar(manifestFirst ? [manifestEntry, ...entries] : [...entries, manifestEntry, file('repositories', '{}')]);
}

/** A `docker save` archive as Docker >= 25 writes it: manifest.json over an OCI layout. */
async function ociStyleArchive(opts: {
  blobs: Buffer[];
  index: Descriptor[];
  config: Buffer;
  layers: Buffer[];
  repoTags: string[];
  extraManifestEntries?: unknown[];
}): Promise<Buffer> {
  const entries: EntrySpec[] = [dir('blobs'), dir('blobs/sha256')];
  for (const blob of opts.blobs) entries.push(file(`blobs/sha256/${digestHex(sha256(blob))}`, blob));
  const path = (b: Buffer): string => `blobs/sha256/${digestHex(sha256(b))}`;
  entries.push(
    file('index.json', JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: opts.index })),
    file('manifest.json', JSON.stringify([{ Config: path(opts.config), RepoTags: opts.repoTags, Layers: opts.layers.map(path) }, ...(opts.extraManifestEntries ?? [])])),
    file('oci-layout', '{"imageLayoutVersion":"1.0.0"}'),
    file('repositories', '{}'),
  );
  return packTar(entries);
}

describe('docker-archive: source', () => {
  const temps = new TempDirs();
  let work = '';
  let image: BuiltImage;
  let tars: Buffer[];

  before(async () => {
    work = await temps.make('docker-archive');
    image = await buildImage([[dir('etc'), file('etc/hello', 'hello')], [file('data', 'x'.repeat(5000))], [file('more', 'y')]]);
    tars = image.layers.map((l) => l.tar);
  });
  after(() => temps.cleanup());

  let counter = 0;
  async function write(bytes: Buffer): Promise<string> {
    const path = join(work, `archive-${counter++}.tar`);
    await fsp.writeFile(path, bytes);
    return path;
  }

  /** Config and layers through the source, checked against the manifest and each other. */
  async function checkImage(path: string, reference: string): Promise<{ manifest: ImageManifest; digest: Digest; diffIds: Digest[] }> {
    const source = await openDockerArchive(path);
    try {
      const fetched = await source.manifest(reference);
      assert.equal(fetched.digest, sha256(fetched.bytes));
      const manifest = parseManifest(fetched.bytes);
      const config = await readAll((await source.blob(manifest.config)).stream);
      assert.equal(sha256(config), manifest.config.digest);
      assert.equal(config.length, manifest.config.size);
      const diffIds = parseConfig(config).rootfs.diff_ids;
      assert.equal(diffIds.length, manifest.layers.length);
      for (const layer of manifest.layers) {
        const bytes = await readAll((await source.blob(layer)).stream);
        assert.equal(sha256(bytes), layer.digest);
        assert.equal(bytes.length, layer.size);
      }
      return { manifest, digest: fetched.digest, diffIds };
    } finally {
      await source.close();
    }
  }

  it('reads an archive skopeo wrote: layer bytes are the original diffIDs', async (t) => {
    if (!hasSkopeo) return t.skip(NO_SKOPEO);
    const layout = join(work, 'skopeo-src');
    await fsp.mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    await fsp.writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    for (const blob of [image.manifest, image.config, ...image.layers.map((l) => l.blob)]) {
      await fsp.writeFile(join(layout, 'blobs', 'sha256', digestHex(sha256(blob))), blob);
    }
    const top = { mediaType: MediaType.ociManifest, digest: sha256(image.manifest), size: image.manifest.length, annotations: { [REF_NAME_ANNOTATION]: 'v1' } };
    await fsp.writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [top] }));
    const archive = join(work, 'skopeo.tar');
    skopeo('copy', '-q', `oci:${layout}:v1`, `docker-archive:${archive}:busybox:latest`);

    const source = await openDockerArchive(archive);
    assert.equal(source.name, `docker-archive:${archive}`);
    assert.deepEqual(source.repoTags(), ['docker.io/library/busybox:latest']);
    assert.equal(source.defaultReference(), 'docker.io/library/busybox:latest');
    const digests = new Set<string>();
    for (const ref of ['busybox', 'busybox:latest', 'docker.io/library/busybox:latest', 'library/busybox', '@0']) {
      digests.add((await source.manifest(ref)).digest);
    }
    assert.equal(digests.size, 1, 'every spelling names the one image');
    const fetched = await source.manifest('busybox');
    assert.equal(fetched.mediaType, MediaType.dockerManifest);
    assert.deepEqual(await source.manifest(fetched.digest), fetched);
    await source.close();

    const { manifest, diffIds } = await checkImage(archive, 'busybox');
    assert.deepEqual(diffIds, image.layers.map((l) => l.diffId));
    assert.deepEqual(manifest.layers.map((l) => l.digest), diffIds, 'skopeo stores the layers uncompressed');
    assert.ok(manifest.layers.every((l) => l.mediaType === DOCKER_LAYER_TAR));
    assert.equal(manifest.config.mediaType, MediaType.dockerConfig);

    const again = await openDockerArchive(archive);
    assert.deepEqual((await again.manifest('busybox')).bytes, fetched.bytes, 'the synthesized manifest is deterministic');
    await again.close();
  });

  /** Layers 0, 1, 0 of the test image; the second 0 a symlink to the first, as Docker < 25 saved them. */
  async function duplicateLayerArchive(): Promise<{ archive: string; layers: Buffer[] }> {
    const layers = [tars[0]!, tars[1]!, tars[0]!];
    const archive = await write(await legacyArchive([{ config: configFor(layers), layers, repoTags: ['example.com/app:1'], linkDuplicates: true }]));
    return { archive, layers };
  }

  /** The test image as Docker >= 25 saves it; `real` is the manifest in its OCI layout. */
  async function dockerV25Archive(): Promise<{ archive: string; real: Buffer }> {
    const layers = tars.map((tar) => ({ mediaType: MediaType.ociLayer, digest: sha256(tar), size: tar.length }));
    const config = configFor(tars);
    const real = json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: sha256(config), size: config.length }, layers });
    const annotations = { 'io.containerd.image.name': 'docker.io/library/busybox:latest', [REF_NAME_ANNOTATION]: 'latest' };
    const archive = await write(
      await ociStyleArchive({
        blobs: [real, config, ...tars],
        index: [{ mediaType: MediaType.ociManifest, digest: sha256(real), size: real.length, annotations }],
        config,
        layers: tars,
        repoTags: ['busybox:latest'],
      }),
    );
    return { archive, real };
  }

  /** skopeo copies `archive` to an OCI layout; returns the diff_ids of the image it read. */
  async function diffIdsViaSkopeo(archive: string): Promise<{ diffIds: Digest[]; layers: number }> {
    const out = join(work, `skopeo-out-${counter++}`);
    skopeo('copy', '-q', `docker-archive:${archive}`, `oci:${out}:x`);
    const blob = (digest: Digest): Promise<Buffer> => fsp.readFile(join(out, 'blobs', 'sha256', digestHex(digest)));
    const outIndex = JSON.parse(await fsp.readFile(join(out, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    const manifest = parseManifest(await blob(outIndex.manifests[0]!.digest));
    return { diffIds: parseConfig(await blob(manifest.config.digest)).rootfs.diff_ids, layers: manifest.layers.length };
  }

  it('reads a legacy archive with a symlinked duplicate layer', async () => {
    const { archive, layers } = await duplicateLayerArchive();
    const index = await TarFileIndex.open(archive);
    const links = [...index.members()].filter((m) => m.type === 'symlink');
    assert.equal(links.length, 1, 'the duplicate is stored as a symlink');
    await index.close();

    const { manifest, diffIds } = await checkImage(archive, 'example.com/app:1');
    assert.deepEqual(diffIds, layers.map((l) => sha256(l)));
    assert.deepEqual(manifest.layers.map((l) => l.digest), diffIds);
    assert.equal(manifest.layers[2]!.digest, manifest.layers[0]!.digest);
  });

  it('skopeo reads the same image from the hand-written legacy archive', async (t) => {
    if (!hasSkopeo) return t.skip(NO_SKOPEO);
    const { archive, layers } = await duplicateLayerArchive();
    assert.deepEqual(await diffIdsViaSkopeo(archive), { diffIds: layers.map((l) => sha256(l)), layers: 3 });
  });

  it('serves the real manifest of a Docker >= 25 archive (embedded OCI layout)', async () => {
    const { archive, real } = await dockerV25Archive();
    const source = await openDockerArchive(archive);
    const fetched = await source.manifest('busybox');
    assert.deepEqual(fetched.bytes, real);
    assert.equal(fetched.digest, sha256(real), 'digests match the original image');
    assert.equal(fetched.mediaType, MediaType.ociManifest);
    await source.close();
    const { diffIds } = await checkImage(archive, sha256(real));
    assert.deepEqual(diffIds, image.layers.map((l) => l.diffId));
  });

  it('skopeo reads the same image from the hand-written Docker >= 25 archive', async (t) => {
    if (!hasSkopeo) return t.skip(NO_SKOPEO);
    const { archive } = await dockerV25Archive();
    assert.deepEqual(await diffIdsViaSkopeo(archive), { diffIds: image.layers.map((l) => l.diffId), layers: 3 });
  });

  it('follows a nested index to the saved platform (containerd image store), compressed layers', async () => {
    const amd64 = image;
    const arm64 = await buildImage([[file('arm', 'arm')]], '2026-12-01T00:00:00Z');
    const index = json({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        { mediaType: MediaType.ociManifest, digest: sha256(amd64.manifest), size: amd64.manifest.length, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: MediaType.ociManifest, digest: sha256(arm64.manifest), size: arm64.manifest.length, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    });
    const blobs = amd64.layers.map((l) => l.blob);
    const archive = await write(
      await ociStyleArchive({
        blobs: [index, amd64.manifest, amd64.config, ...blobs], // arm64's blobs were not saved
        index: [{ mediaType: MediaType.ociIndex, digest: sha256(index), size: index.length, annotations: { [REF_NAME_ANNOTATION]: 'latest' } }],
        config: amd64.config,
        layers: blobs,
        repoTags: ['busybox:latest'],
      }),
    );
    const source = await openDockerArchive(archive);
    assert.deepEqual((await source.manifest('busybox:latest')).bytes, amd64.manifest);
    const top = await source.manifest(sha256(index));
    assert.equal(top.mediaType, MediaType.ociIndex, 'the embedded index is served by digest too');
    await rejectsWith(source.manifest(sha256(arm64.manifest)), 'ERR_REGISTRY_NOT_FOUND');
    await source.close();
    const { manifest } = await checkImage(archive, '@0');
    assert.deepEqual(manifest.layers.map((l) => l.digest), amd64.layers.map((l) => l.digest));
  });

  it('synthesizes when the embedded layout does not describe the image', async () => {
    const config = configFor(tars);
    const unrelated = json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: sha256(config), size: config.length }, layers: [] });
    const archive = await write(
      await ociStyleArchive({
        blobs: [unrelated, config, ...tars],
        index: [{ mediaType: MediaType.ociManifest, digest: sha256(unrelated), size: unrelated.length }],
        config,
        layers: tars,
        repoTags: ['busybox:latest'],
      }),
    );
    const source = await openDockerArchive(archive);
    const fetched = await source.manifest('busybox');
    assert.equal(fetched.mediaType, MediaType.dockerManifest);
    assert.notEqual(fetched.digest, sha256(unrelated));
    await source.close();
  });

  it('names compressed layers by their magic bytes', async () => {
    const stored = [gzip(tars[0]!), zstd(tars[1]!), tars[2]!];
    const archive = await write(await legacyArchive([{ config: configFor(tars), layers: stored, repoTags: null }]));
    const source = await openDockerArchive(archive);
    assert.equal(source.defaultReference(), '@0', 'an untagged image is named by position');
    const manifest = parseManifest((await source.manifest('@0')).bytes);
    assert.deepEqual(manifest.layers.map((l) => l.mediaType), [MediaType.dockerLayerGzip, MediaType.ociLayerZstd, DOCKER_LAYER_TAR]);
    assert.deepEqual(manifest.layers.map((l) => l.digest), stored.map((b) => sha256(b)));
    await source.close();
  });

  it('picks images by tag, position or digest, and lists what it has otherwise', async () => {
    const second = [tars[2]!];
    const archive = await write(
      await legacyArchive([
        { config: configFor(tars), layers: tars, repoTags: ['busybox:latest', 'busybox:1'] },
        { config: configFor(second, '2026-12-01T00:00:00Z'), layers: second, repoTags: ['localhost:5000/other:2'] },
      ]),
    );
    const source = await openDockerArchive(archive);
    assert.deepEqual(source.repoTags(), ['busybox:latest', 'busybox:1', 'localhost:5000/other:2']);
    assert.throws(() => source.defaultReference(), (err: Error & { code?: string }) => err.code === 'ERR_REFERENCE_INVALID' && /2 images/.test(err.message));
    const first = await source.manifest('docker.io/library/busybox:1');
    assert.equal((await source.manifest('@0')).digest, first.digest);
    const other = await source.manifest('localhost:5000/other:2');
    assert.equal((await source.manifest('@1')).digest, other.digest);
    assert.equal(parseManifest(other.bytes).layers.length, 1);
    assert.deepEqual(await source.manifest(other.digest), other);
    await rejectsWith(source.manifest('busybox:2'), 'ERR_REGISTRY_NOT_FOUND', /it has: busybox:latest, busybox:1, localhost:5000\/other:2/);
    await rejectsWith(source.manifest('other:2'), 'ERR_REGISTRY_NOT_FOUND');
    await rejectsWith(source.manifest('@2'), 'ERR_REGISTRY_NOT_FOUND', /holds 2/);
    await rejectsWith(source.manifest('@x'), 'ERR_REFERENCE_INVALID');
    await rejectsWith(source.manifest(sha256('none')), 'ERR_REGISTRY_NOT_FOUND');
    await rejectsWith(source.manifest('sha256:nothex'), 'ERR_REFERENCE_INVALID');
    await source.close();
  });

  it('serves blobs asked for before any manifest, and from an offset', async () => {
    const config = configFor(tars);
    const archive = await write(await legacyArchive([{ config, layers: tars, repoTags: ['a:1'] }]));
    const source = await openDockerArchive(archive);
    const layer = { mediaType: DOCKER_LAYER_TAR, digest: sha256(tars[1]!), size: tars[1]!.length };
    const body = await source.blob(layer, 100);
    assert.equal(body.offset, 100);
    assert.equal(body.servedBy, `docker-archive:${archive}`);
    assert.deepEqual(await readAll(body.stream), tars[1]!.subarray(100));
    assert.deepEqual(await readAll((await source.blob({ mediaType: MediaType.dockerConfig, digest: sha256(config), size: config.length })).stream), config);
    assert.deepEqual(await readAll((await source.blob(layer, tars[1]!.length + 5)).stream), Buffer.alloc(0));
    await rejectsWith(source.blob({ ...layer, digest: sha256('absent') }), 'ERR_REGISTRY_NOT_FOUND');
    await source.close();
  });

  it('refuses broken archives with the member or reason named', async () => {
    const config = configFor(tars);
    const good = await legacyArchive([{ config, layers: tars, repoTags: ['a:1'] }]);

    await rejectsWith(openDockerArchive(join(work, 'absent.tar')), 'ERR_REGISTRY_NOT_FOUND');
    await rejectsWith(openDockerArchive(work), 'ERR_SOURCE_INVALID', /not a regular file/);
    await rejectsWith(openDockerArchive(await write(Buffer.alloc(2048, 7))), 'ERR_SOURCE_INVALID', /checksum/);
    await rejectsWith(openDockerArchive(await write(await packTar([file('x', 'y')]))), 'ERR_SOURCE_INVALID', /no manifest\.json/);
    const ociArchive = await packTar([file('oci-layout', '{}'), file('index.json', '{}')]);
    await rejectsWith(openDockerArchive(await write(ociArchive)), 'ERR_SOURCE_INVALID', /OCI archive/);

    // Cut inside the second layer's data: the scan notices before anything is served.
    const offset = good.indexOf(tars[1]!.subarray(0, 512));
    await rejectsWith(openDockerArchive(await write(good.subarray(0, offset + 100))), 'ERR_SOURCE_INVALID', /truncated/);
    // Cut at a header boundary: members after it are missing, and the message says why that may be.
    const first = await legacyArchive([{ config, layers: tars, repoTags: ['a:1'] }], true);
    const headerCut = first.subarray(0, first.indexOf(tars[1]!.subarray(0, 512)) + Math.ceil(tars[1]!.length / 512) * 512);
    await rejectsWith(openDockerArchive(await write(headerCut)), 'ERR_SOURCE_INVALID', /no member "[0-9a-f]+(\.json|\/layer\.tar)".*truncated/);

    const missing = await packTar([file('manifest.json', JSON.stringify([{ Config: 'c.json', RepoTags: [], Layers: ['gone/layer.tar'] }])), file('c.json', config)]);
    await rejectsWith(openDockerArchive(await write(missing)), 'ERR_SOURCE_INVALID', /no member "gone\/layer\.tar"/);

    const escaping = await packTar([file('c.json', config), symlink('l/layer.tar', '../../etc/passwd'), file('manifest.json', JSON.stringify([{ Config: 'c.json', Layers: ['l/layer.tar'] }]))]);
    await rejectsWith(openDockerArchive(await write(escaping)), 'ERR_SOURCE_INVALID', /outside the archive/);

    const loop = await packTar([file('c.json', config), symlink('a', 'b'), symlink('b', 'a'), file('manifest.json', JSON.stringify([{ Config: 'c.json', Layers: ['a'] }]))]);
    await rejectsWith(openDockerArchive(await write(loop)), 'ERR_SOURCE_INVALID', /loop/);

    const directory = await packTar([file('c.json', config), dir('d'), file('manifest.json', JSON.stringify([{ Config: 'c.json', Layers: ['d'] }]))]);
    await rejectsWith(openDockerArchive(await write(directory)), 'ERR_SOURCE_INVALID', /not a regular file \(directory\)/);

    const badJson = await packTar([file('manifest.json', '{"Config":')]);
    await rejectsWith(openDockerArchive(await write(badJson)), 'ERR_SOURCE_INVALID', /manifest\.json is not JSON/);
    const badEntry = await packTar([file('manifest.json', JSON.stringify([{ Config: 'c.json', Layers: 'x' }]))]);
    await rejectsWith(openDockerArchive(await write(badEntry)), 'ERR_SOURCE_INVALID', /entry 0 has no Layers list/);
  });

  it('normalises Docker references', () => {
    const cases: Array<[string, string]> = [
      ['busybox', 'docker.io/library/busybox:latest'],
      ['busybox:1.36', 'docker.io/library/busybox:1.36'],
      ['library/busybox', 'docker.io/library/busybox:latest'],
      ['docker.io/library/busybox:latest', 'docker.io/library/busybox:latest'],
      ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest'],
      ['user/app:2', 'docker.io/user/app:2'],
      ['localhost/app', 'localhost/app:latest'],
      ['localhost:5000/app:1', 'localhost:5000/app:1'],
      ['ghcr.io/o/app', 'ghcr.io/o/app:latest'],
      [`app@sha256:${'a'.repeat(64)}`, `docker.io/library/app@sha256:${'a'.repeat(64)}`],
      ['Not:A/Valid:Ref', 'Not:A/Valid:Ref'],
    ];
    for (const [input, expected] of cases) assert.equal(normalizeDockerReference(input), expected, input);
  });
});

describe('TarFileIndex', () => {
  const temps = new TempDirs();
  let work = '';
  before(async () => {
    work = await temps.make('tar-index');
  });
  after(() => temps.cleanup());

  async function indexOf(bytes: Buffer): Promise<TarFileIndex> {
    const path = join(work, `t-${Math.random().toString(36).slice(2)}.tar`);
    await fsp.writeFile(path, bytes);
    return TarFileIndex.open(path);
  }

  it('finds members by GNU long name, PAX path, ustar prefix, and follows links', async () => {
    const long = `${'d'.repeat(120)}/layer.tar`;
    const paxName = `${'p'.repeat(150)}/config.json`;
    const tar = new RawTar()
      .gnuLong('L', long)
      .file('././@ignored', 'gnu data')
      .pax({ path: paxName })
      .file('PaxHeaders/x', 'pax data')
      .file('name.txt', 'prefixed', { prefix: 'some/dir' })
      .file('./dot/./slash//name', 'normalised')
      .gnuLong('K', `../${long}`)
      .symlink('link/to-long', 'ignored-short-target')
      .pax({ linkpath: paxName })
      .hardlink('hard', 'short-ignored')
      .end()
      .toBuffer();
    const index = await indexOf(tar);
    const read = async (name: string): Promise<string> => (await readAll(index.stream(index.resolve(name)))).toString();
    assert.equal(index.complete, true);
    assert.equal(await read(long), 'gnu data');
    assert.equal(await read(paxName), 'pax data');
    assert.equal(await read('some/dir/name.txt'), 'prefixed');
    assert.equal(await read('dot/slash/name'), 'normalised');
    assert.equal(await read('/dot/slash/name'), 'normalised');
    assert.equal(await read('link/to-long'), 'gnu data', 'symlink with a GNU long link target, relative to its directory');
    assert.equal(await read('hard'), 'pax data', 'hardlink target relative to the archive root');
    assert.equal((await readAll(index.stream(index.resolve(long), 4))).toString(), 'data');
    assert.equal(index.lookup('../escape'), undefined);
    await index.close();
  });

  it('applies a PAX size and skips global headers', async () => {
    const body = Buffer.alloc(1500, 'z');
    const tar = new RawTar()
      .globalPax({ comment: 'hello' })
      .pax({ size: String(body.length) })
      .header({ name: 'big', size: 1 }) // the ustar size lies; PAX wins
      .raw(padded(body))
      .file('after', 'next')
      .end()
      .toBuffer();
    const index = await indexOf(tar);
    assert.deepEqual(await readAll(index.stream(index.resolve('big'))), body);
    assert.equal((await readAll(index.stream(index.resolve('after')))).toString(), 'next');
    await index.close();
  });

  it('refuses bad checksums and cut headers; notes a missing end marker', async () => {
    await rejectsWith(indexOf(new RawTar().file('a', 'x', { badChecksum: true }).end().toBuffer()), 'ERR_SOURCE_INVALID', /checksum/);
    const whole = new RawTar().file('a', 'x').file('b', 'y').toBuffer();
    await rejectsWith(indexOf(whole.subarray(0, 1024 + 100)), 'ERR_SOURCE_INVALID', /cut short/);
    const index = await indexOf(whole);
    assert.equal(index.complete, false);
    assert.throws(() => index.resolve('c'), /may be truncated/);
    await index.close();
  });
});
