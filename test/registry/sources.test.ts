// Pulls from the other sources, with the same verification as from a registry: `oci:DIR[:REF]`
// (OCI image layouts written here), and `docker-archive:FILE[:REF]` (written by skopeo from those
// layouts, and by hand in Docker's legacy `docker save` format). The same layers reached through
// different sources are extracted once in the store.
import './pull-support.js';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Digest, digestHex, sha256 } from '../../src/oci/digest.js';
import { MediaType, REF_NAME_ANNOTATION } from '../../src/oci/media-types.js';
import { Store } from '../../src/store/store.js';
import { dir, type EntrySpec, file, packTar } from '../helpers/tar-builder.js';
import { LAYERFS_BIN } from '../helpers/mount.js';
import { TempDirs } from '../helpers/tmp.js';
import { buildIndex, buildTestImage, type BuiltIndex, type Compression, type TestImage } from './harness/images.js';
import { assertLayerFiles, makeContext, pull, rejectsWithCode, storeContents, type TestContext } from './pull-support.js';

const hasSkopeo = spawnSync('skopeo', ['--version'], { stdio: 'ignore' }).status === 0;
const EMPTY = { blobs: [], layers: [], downloads: {}, names: [] };

interface LayoutEntry {
  bytes: Buffer;
  mediaType: string;
  name?: string;
}

/** An OCI image layout: `oci-layout`, every blob of `images` (and `extra`), index.json listing `entries`. */
async function writeLayout(root: string, images: TestImage[], entries: LayoutEntry[], extra: Buffer[] = []): Promise<void> {
  await fsp.mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
  const blobs = [...images.flatMap((image) => [image.manifest, image.config, ...image.layers.map((l) => l.blob)]), ...extra];
  for (const blob of blobs) await fsp.writeFile(join(root, 'blobs', 'sha256', digestHex(sha256(blob))), blob);
  await fsp.writeFile(join(root, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const manifests = entries.map((e) => ({
    mediaType: e.mediaType,
    digest: sha256(e.bytes),
    size: e.bytes.length,
    ...(e.name === undefined ? {} : { annotations: { [REF_NAME_ANNOTATION]: e.name } }),
  }));
  await fsp.writeFile(join(root, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }));
}

const entryOf = (image: TestImage, name?: string): LayoutEntry => ({ bytes: image.manifest, mediaType: image.manifestMediaType, ...(name === undefined ? {} : { name }) });
const indexEntry = (index: BuiltIndex, name?: string): LayoutEntry => ({ bytes: index.bytes, mediaType: index.mediaType, ...(name === undefined ? {} : { name }) });
const blobPath = (root: string, digest: Digest): string => join(root, 'blobs', 'sha256', digestHex(digest));

describe('pull from sources other than a registry', () => {
  const temps = new TempDirs();
  let work: string;
  let context: TestContext;
  const files: Array<Record<string, string>> = [{ 'etc/os-release': 'NAME=layout\n' }, { 'app/main.js': 'console.log("hi")\n', 'app/data.txt': 'data\n' }];
  const entries = (): EntrySpec[][] => files.map((f) => Object.entries(f).map(([p, c]) => file(p, c)));
  let image: TestImage;
  let layout: string;

  before(async () => {
    work = await temps.make('sources');
    context = await makeContext(work);
    image = await buildTestImage(entries());
    layout = join(work, 'app-layout');
    await writeLayout(layout, [image], [entryOf(image, 'v1')]);
  });
  after(async () => {
    await context.http.close();
    await temps.cleanup();
  });

  async function freshStore(): Promise<Store> {
    return Store.open(join(await temps.make('sources-store'), 'store'));
  }

  describe('oci: image layouts', () => {
    for (const compression of ['gzip', 'zstd', 'none'] as Compression[]) {
      it(`pulls a layout's image by its ref.name (${compression} layers), verified and extracted`, async () => {
        const built = await buildTestImage(entries(), { compression });
        const root = join(work, `layout-${compression}`);
        await writeLayout(root, [built], [entryOf(built, 'v1')]);
        const store = await freshStore();
        const result = await pull(store, `oci:${root}:v1`, context);
        assert.equal(result.image.digest, built.digest);
        assert.deepEqual(result.image.refs, [`localhost/layout-${compression}:v1`]);
        assert.deepEqual(result.layers.map((l) => l.outcome), ['downloaded', 'downloaded']);
        await assertLayerFiles(store, built, files, assert.equal);
        assert.ok(result.events.some((e) => e.type === 'layer-source' && e.servedBy === `oci:${root}`));
        assert.deepEqual(context.http.sent, [], 'no network');

        const again = await pull(store, `oci:${root}:v1`, context);
        assert.deepEqual(again.layers.map((l) => l.outcome), ['cached', 'cached']);
      });
    }

    it('a layout with one image needs no reference; one with several names them when none is given', async () => {
      const store = await freshStore();
      const result = await pull(store, `oci:${layout}`, context);
      assert.equal(result.image.digest, image.digest);
      assert.deepEqual(result.image.refs, [`localhost/${basename(layout)}:v1`]);

      const other = await buildTestImage([[file('other', 'other\n')]]);
      const two = join(work, 'two-images');
      await writeLayout(two, [image, other], [entryOf(image, 'first'), entryOf(other, 'second')]);
      const err = await rejectsWithCode(pull(store, `oci:${two}`, context), 'ERR_REFERENCE_INVALID');
      assert.match(err.message, /holds 2 images; name one \(.*first.*second.*\)/);
      const second = await pull(store, `oci:${two}:second`, context);
      assert.equal(second.image.digest, other.digest);
      assert.deepEqual(second.image.refs, ['localhost/two-images:second']);

      const named = join(work, 'named-layout');
      await writeLayout(named, [other], [entryOf(other, 'docker.io/library/other:2')]);
      const full = await pull(store, `oci:${named}`, context);
      assert.deepEqual(full.image.refs, ['docker.io/library/other:2'], 'a full reference as ref.name names the image');
    });

    it('two layouts in directories of the same name: the second takes the name, and the pull says so', async () => {
      const store = await freshStore();
      const other = await buildTestImage([[file('other', 'other\n')]]);
      const first = join(work, 'a', 'same-name');
      const second = join(work, 'b', 'same-name');
      await writeLayout(first, [image], [entryOf(image, 'v1')]);
      await writeLayout(second, [other], [entryOf(other, 'v1')]);
      const one = await pull(store, `oci:${first}`, context);
      assert.deepEqual(one.moved, []);
      assert.deepEqual((await pull(store, `oci:${first}`, context)).moved, [], 'the same image again moves nothing');
      const two = await pull(store, `oci:${second}`, context);
      assert.deepEqual(two.image.refs, ['localhost/same-name:v1']);
      assert.deepEqual(two.moved, [{ ref: 'localhost/same-name:v1', from: image.digest }]);
      assert.deepEqual((await store.listImages()).map((i) => [i.digest, i.refs]), [[other.digest, ['localhost/same-name:v1']]]);

      // The command says so, even with --quiet (stdout stays the digest alone).
      const cli = spawnSync(process.execPath, [LAYERFS_BIN, 'pull', '--quiet', '--root', store.paths.root, `oci:${first}`], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(cli.status, 0, cli.stderr);
      assert.equal(cli.stdout, `${image.digest}\n`);
      assert.equal(cli.stderr, `note: localhost/same-name:v1 named another image (${other.digest}) until now; it names this one now\n`);
    });

    it('pulls by manifest digest', async () => {
      const store = await freshStore();
      const result = await pull(store, `oci:${layout}:${image.digest}`, context);
      assert.equal(result.image.digest, image.digest);
      assert.deepEqual(result.image.refs, [`localhost/${basename(layout)}@${image.digest}`]);
    });

    it('an index in the layout resolves to the platform asked for, or lists the platforms', async () => {
      const amd64 = await buildTestImage([[file('etc/arch', 'amd64\n')]]);
      const arm64 = await buildTestImage([[file('etc/arch', 'arm64\n')]], { compression: 'zstd', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
      const index = buildIndex([{ image: amd64 }, { image: arm64 }], 'oci');
      const root = join(work, 'multi-layout');
      await writeLayout(root, [amd64, arm64], [indexEntry(index, 'multi')], [index.bytes]);
      const store = await freshStore();
      const result = await pull(store, `oci:${root}:multi`, context, { platform: { os: 'linux', architecture: 'arm64' } });
      assert.equal(result.image.digest, arm64.digest);
      assert.equal(result.platform, 'linux/arm64');
      assert.equal(await fsp.readFile(join(store.layers.treePath(arm64.layers[0]!.diffId), 'etc/arch'), 'utf8'), 'arm64\n');

      const err = await rejectsWithCode(pull(store, `oci:${root}:multi`, context, { platform: { os: 'linux', architecture: 'riscv64' } }), 'ERR_NO_MATCHING_PLATFORM');
      assert.equal(err.message, `no image for linux/riscv64 in oci:${root}:multi; available: linux/amd64, linux/arm64/v8`);
    });

    it('a layer blob changed in the layout is rejected with a digest mismatch; nothing is stored', async () => {
      const root = join(work, 'tampered-layout');
      await writeLayout(root, [image], [entryOf(image, 'v1')]);
      const layer = image.layers[1]!;
      const changed = Buffer.from(layer.blob);
      changed[changed.length - 20] = changed[changed.length - 20]! ^ 0x01;
      await fsp.writeFile(blobPath(root, layer.digest), changed);
      const store = await freshStore();
      const err = await rejectsWithCode(pull(store, `oci:${root}:v1`, context), 'ERR_DIGEST_MISMATCH');
      assert.equal(err.message, `blob ${layer.digest}: content has digest ${sha256(changed)}`);
      const after = await storeContents(store);
      assert.equal(after.names.length, 0);
      assert.equal(after.blobs.includes(layer.digest), false);
      assert.equal(after.layers.includes(layer.diffId), false);
      assert.deepEqual(after.downloads, {});
    });

    it('a blob missing from the layout: a not-found error naming it', async () => {
      const root = join(work, 'incomplete-layout');
      await writeLayout(root, [image], [entryOf(image, 'v1')]);
      await fsp.rm(blobPath(root, image.layers[0]!.digest));
      const store = await freshStore();
      const err = await rejectsWithCode(pull(store, `oci:${root}:v1`, context), 'ERR_REGISTRY_NOT_FOUND');
      assert.equal(err.message, `blob ${image.layers[0]!.digest} is missing from oci:${root}`);
      assert.deepEqual((await storeContents(store)).names, []);
    });

    it('an unknown tag: a not-found error listing the names there are', async () => {
      const store = await freshStore();
      const err = await rejectsWithCode(pull(store, `oci:${layout}:v2`, context), 'ERR_REGISTRY_NOT_FOUND');
      assert.match(err.message, /^no image "v2" in oci:.*app-layout \(.*v1.*\)$/);
      assert.deepEqual(await storeContents(store), EMPTY);
    });
  });

  describe('docker-archive: files', () => {
    it('an archive written by skopeo from the layout: the same layers (by diffID), shared with the layout\'s pull', { skip: hasSkopeo ? false : 'skopeo is not installed' }, async () => {
      const archive = join(work, 'skopeo.tar');
      execFileSync('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci:${layout}:v1`, `docker-archive:${archive}:example.com/app:v1`], { stdio: ['ignore', 'ignore', 'pipe'] });
      const store = await freshStore();
      await pull(store, `oci:${layout}:v1`, context);
      const before = await storeContents(store);

      const result = await pull(store, `docker-archive:${archive}`, context);
      assert.deepEqual(result.image.refs, ['example.com/app:v1']);
      assert.deepEqual(result.image.layers.map((l) => l.diffId), image.layers.map((l) => l.diffId));
      assert.equal(result.image.manifest.mediaType, MediaType.dockerManifest, 'skopeo writes no manifest: one is made up');
      assert.ok(result.events.some((e) => e.type === 'layer-source' && e.servedBy === `docker-archive:${archive}`));
      const after = await storeContents(store);
      assert.deepEqual(after.layers, before.layers, 'no layer extracted twice');
      assert.deepEqual(after.names, ['example.com/app:v1', `localhost/${basename(layout)}:v1`]);
      await assertLayerFiles(store, image, files, assert.equal);

      const byRef = await pull(await freshStore(), `docker-archive:${archive}:example.com/app:v1`, context);
      assert.equal(byRef.image.digest, result.image.digest);
    });

    describe('a legacy `docker save` archive with two images', () => {
      let archive: string;
      let tars: Buffer[][];
      let configs: Buffer[];

      before(async () => {
        // Docker < 25: <id>/layer.tar (plain tars), <hex>.json configs, manifest.json.
        tars = [
          [await packTar([dir('etc'), file('etc/hello', 'one\n')])],
          [await packTar([dir('etc'), file('etc/hello', 'one\n')]), await packTar([file('bin/two', 'two\n', { mode: 0o755 })])],
        ];
        configs = tars.map((layers, i) =>
          Buffer.from(JSON.stringify({ created: '2026-11-01T00:00:00Z', architecture: 'amd64', os: 'linux', config: { Cmd: [`/bin/${i}`] }, rootfs: { type: 'layers', diff_ids: layers.map((t) => sha256(t)) } })),
        );
        const members: EntrySpec[] = [];
        const manifest = tars.map((layers, i) => {
          const paths = layers.map((tar) => `${digestHex(sha256(`${i}:${sha256(tar)}`))}/layer.tar`);
          layers.forEach((tar, j) => members.push(dir(paths[j]!.split('/')[0]!), file(paths[j]!, tar)));
          const configPath = `${digestHex(sha256(configs[i]!))}.json`;
          members.push(file(configPath, configs[i]!));
          return { Config: configPath, RepoTags: [`example.com/legacy${i}:v${i}`], Layers: paths };
        });
        members.push(file('manifest.json', JSON.stringify(manifest)), file('repositories', '{}'));
        archive = join(work, 'legacy.tar');
        await fsp.writeFile(archive, await packTar(members));
      });

      it('pulls each image by its tag; identical layers are extracted once', async () => {
        const store = await freshStore();
        const one = await pull(store, `docker-archive:${archive}:example.com/legacy0:v0`, context);
        const two = await pull(store, `docker-archive:${archive}:example.com/legacy1:v1`, context);
        assert.deepEqual(one.image.refs, ['example.com/legacy0:v0']);
        assert.deepEqual(two.image.refs, ['example.com/legacy1:v1']);
        assert.equal(one.image.id, sha256(configs[0]!));
        assert.equal(two.image.id, sha256(configs[1]!));
        assert.deepEqual(two.layers.map((l) => l.outcome), ['cached', 'downloaded'], 'the first layer is the same blob as image one\'s');
        assert.deepEqual((await storeContents(store)).layers, [sha256(tars[1]![0]!), sha256(tars[1]![1]!)].sort());
        assert.equal(await fsp.readFile(join(store.layers.treePath(sha256(tars[1]![1]!)), 'bin/two'), 'utf8'), 'two\n');
      });

      it('without a reference: refused, naming the images', async () => {
        const store = await freshStore();
        const err = await rejectsWithCode(pull(store, `docker-archive:${archive}`, context), 'ERR_REFERENCE_INVALID');
        assert.match(err.message, /holds 2 images; name one by tag or as @N \(.*example\.com\/legacy0:v0.*example\.com\/legacy1:v1.*\)/);
        assert.deepEqual(await storeContents(store), EMPTY);
      });

      it('by position (@1) or manifest digest: the second image, named by its own tag', async () => {
        const store = await freshStore();
        const result = await pull(store, `docker-archive:${archive}:@1`, context);
        assert.equal(result.image.id, sha256(configs[1]!));
        assert.deepEqual(result.image.refs, ['example.com/legacy1:v1']);
        const byDigest = await pull(await freshStore(), `docker-archive:${archive}:${result.image.digest}`, context);
        assert.equal(byDigest.image.id, sha256(configs[1]!));
        assert.deepEqual(byDigest.image.refs, ['example.com/legacy1:v1'], 'by digest too');
      });
    });
  });
});
