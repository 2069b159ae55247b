// The store on real directories, with real concurrent processes: content addressing with
// verification, single-flight layer extraction, crash leftovers, leases, LRU eviction, images.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Digest, sha256 } from '../../src/oci/digest.js';
import { Store } from '../../src/store/store.js';
import { TempDirs } from '../helpers/tmp.js';

const worker = fileURLToPath(new URL('./fixtures/store-worker.ts', import.meta.url));
const fakeDiffId = (n: number): Digest => sha256(`layer ${n}`);

function startWorker(args: string[]): { child: ChildProcess; output: Promise<string>; line: (text: string) => Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', worker, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const waiters: Array<{ text: string; resolve: () => void }> = [];
  child.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of waiters.splice(0)) (out.includes(w.text) ? w.resolve : () => waiters.push(w))();
  });
  const output = new Promise<string>((resolve) => child.once('exit', () => resolve(out)));
  const line = (text: string) =>
    new Promise<void>((resolve) => (out.includes(text) ? resolve() : waiters.push({ text, resolve })));
  return { child, output, line };
}

async function fillSimple(store: Store, diffId: Digest, bytes = 1000): Promise<void> {
  await store.layers.ensure(diffId, async ({ treeDir, indexPath }) => {
    await fsp.writeFile(join(treeDir, 'data'), Buffer.alloc(bytes, 1));
    await fsp.writeFile(indexPath, '');
  });
}

describe('store', () => {
  const temps = new TempDirs();
  let root = '';
  let store: Store;
  before(async () => {
    root = join(await temps.make('store'), 'root');
    store = await Store.open(root);
  });
  after(() => temps.cleanup());

  describe('blobs', () => {
    it('stores verified content under its digest and is idempotent', async () => {
      const bytes = Buffer.from('hello blob');
      const digest = await store.blobs.ingest(Readable.from([bytes]), { digest: sha256(bytes), size: bytes.length });
      assert.equal(digest, sha256(bytes));
      assert.deepEqual(await store.blobs.read(digest), bytes);
      assert.equal(await store.blobs.ingest(Readable.from([bytes]), { digest }), digest);
      assert.ok(existsSync(join(root, 'blobs', 'sha256', digest.slice(7))), 'OCI layout path');
    });
    it('rejects a digest or size mismatch at the end and leaves nothing behind', async () => {
      const wrong = sha256('something else');
      await assert.rejects(store.blobs.ingest(Readable.from([Buffer.from('data')]), { digest: wrong }), { code: 'ERR_DIGEST_MISMATCH' });
      await assert.rejects(store.blobs.ingest(Readable.from([Buffer.from('data')]), { size: 3 }), { code: 'ERR_SIZE_MISMATCH' });
      await assert.rejects(store.blobs.ingest(Readable.from([Buffer.from('data')]), { size: 5 }), { code: 'ERR_SIZE_MISMATCH' });
      assert.equal(await store.blobs.has(wrong), false);
      assert.deepEqual(await fsp.readdir(join(root, 'tmp')), [], 'temp area clean');
    });
  });

  describe('layers', () => {
    it('two processes extracting the same layer fill it once and both succeed', async () => {
      const diffId = fakeDiffId(1);
      const counter = join(root, 'counter-1');
      const a = startWorker(['fill', root, diffId, counter, '700']);
      await a.line('filling');
      const b = startWorker(['fill', root, diffId, counter, '0']);
      const [outA, outB] = await Promise.all([a.output, b.output]);
      assert.match(outA, /created/);
      assert.match(outB, /existing/);
      assert.equal((await fsp.readFile(counter, 'utf8')).trim().split('\n').length, 1, 'filled exactly once');
      assert.equal(await fsp.readFile(join(store.layers.treePath(diffId), 'file'), 'utf8'), 'content');
    });

    it('a process killed mid-extraction leaves no layer, and the next open clears its leftovers', async () => {
      const diffId = fakeDiffId(2);
      const w = startWorker(['fill', root, diffId, join(root, 'counter-2'), '60000']);
      await w.line('filling');
      w.child.kill('SIGKILL');
      await w.output;
      assert.equal(await store.layers.has(diffId), false, 'nothing that looks complete');
      assert.ok((await fsp.readdir(join(root, 'tmp'))).length > 0, 'a leftover exists before reopening');
      await Store.open(root);
      assert.deepEqual(await fsp.readdir(join(root, 'tmp')), [], 'leftover removed');
      await fillSimple(store, diffId);
      assert.equal(await store.layers.has(diffId), true, 'the layer can be extracted again');
    });
  });

  describe('leases and eviction', () => {
    it('evicts least recently used layers to fit the budget, never a leased one', async () => {
      const ids = [10, 11, 12, 13].map(fakeDiffId);
      for (const id of ids) await fillSimple(store, id, 64 * 1024);
      // Use order: 10 oldest ... 13 newest; 10 is leased by another process.
      for (const [i, id] of ids.entries()) {
        const t = new Date(Date.now() - (10 - i) * 60_000);
        await fsp.utimes(join(root, 'layers', 'sha256', id.slice(7), 'used'), t, t);
      }
      const holder = startWorker(['lease', root, ids[0]!]);
      await holder.line('leased');
      try {
        const sizes = await Promise.all(ids.map(async (id) => (await store.layers.info(id))!.size));
        const others = (await store.layers.list()).filter((l) => !ids.includes(l.diffId));
        const otherSize = others.reduce((s, l) => s + l.size, 0);
        // Room for the leased layer, the two newest and the unrelated ones: 11 must go.
        const budget = otherSize + sizes[0]! + sizes[2]! + sizes[3]!;
        const evicted = await store.evict(budget);
        assert.ok(evicted.includes(ids[1]!), 'oldest unleased layer evicted');
        assert.ok(!evicted.includes(ids[0]!), 'leased layer kept');
        assert.equal(await store.layers.has(ids[0]!), true);
        assert.equal(await store.layers.has(ids[3]!), true, 'newest kept');
      } finally {
        holder.child.kill('SIGKILL');
        await holder.output;
      }
      // The holder is dead: its lease is stale and no longer protects the layer.
      assert.deepEqual((await store.leases.live()).filter((l) => l.diffIds.includes(ids[0]!)), []);
      const evicted = await store.evict(0);
      assert.ok(evicted.includes(ids[0]!));
    });
  });

  describe('images', () => {
    const layerBlob = (n: number) => Buffer.from(`compressed layer ${n}`);
    async function addImage(ref: string, layerNums: number[]): Promise<Digest> {
      for (const n of layerNums) {
        await store.blobs.write(layerBlob(n));
        await fillSimple(store, fakeDiffId(100 + n), 4096 * (n + 1));
      }
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', created: '2026-01-01T00:00:00Z', rootfs: { type: 'layers', diff_ids: layerNums.map((n) => fakeDiffId(100 + n)) } }));
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: layerNums.map((n) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layerBlob(n)), size: layerBlob(n).length })),
      }));
      return (await store.addImage([ref], manifest, config)).digest;
    }

    it('lists, finds by name or id prefix, shares layers, and counts shared bytes once', async () => {
      await addImage('example.com/app:1', [1, 2]);
      await addImage('example.com/app:2', [1, 3]);
      const images = await store.listImages();
      assert.deepEqual(images.map((i) => i.refs).flat().sort(), ['example.com/app:1', 'example.com/app:2']);
      const one = (await store.findImage('example.com/app:1'))!;
      assert.equal((await store.findImage(one.id.slice(7, 19)))?.digest, one.digest);
      const df = await store.diskUsage();
      const shared = (await store.layers.info(fakeDiffId(101)))!.size;
      assert.equal(df.sharedSize, shared, 'layer 1 is shared by both images');
      assert.ok(df.unsharedTotal > df.layersSize - (await store.layers.list()).filter((l) => ![101, 102, 103].map(fakeDiffId).includes(l.diffId)).reduce((s, l) => s + l.size, 0));
      const index = JSON.parse(await fsp.readFile(join(root, 'index.json'), 'utf8'));
      assert.equal(index.manifests.length, 2, 'index.json is an OCI layout index');
    });

    it('rmi refuses an image in use, removes only layers no other image uses', async () => {
      const holder = startWorker(['lease', root, fakeDiffId(102)]);
      await holder.line('leased');
      try {
        await assert.rejects(store.removeImage('example.com/app:1'), { code: 'ERR_STORE_IN_USE' });
      } finally {
        holder.child.kill('SIGKILL');
        await holder.output;
      }
      const { untagged, deletedLayers } = await store.removeImage('example.com/app:1');
      assert.deepEqual(untagged, ['example.com/app:1']);
      assert.ok(deletedLayers.includes(fakeDiffId(102)), 'its own layer removed');
      assert.ok(!deletedLayers.includes(fakeDiffId(101)), 'the shared layer stays for app:2');
      assert.equal(await store.layers.has(fakeDiffId(101)), true);
      await assert.rejects(store.removeImage('example.com/app:1'), { code: 'ERR_STORE_NOT_FOUND' });
    });

    it('prune --all removes unused images and everything only they used', async () => {
      const result = await store.prune({ all: true });
      assert.deepEqual(result.deletedImages, ['example.com/app:2']);
      assert.deepEqual(await store.listImages(), []);
      assert.deepEqual(await store.layers.list(), []);
      assert.deepEqual(await store.blobs.list(), []);
    });
  });
});

describe('cache budget', () => {
  it('parses sizes the way du -h writes them, and refuses nonsense', async () => {
    const { parseSize, defaultCacheBudget } = await import('../../src/store/budget.js');
    assert.equal(parseSize('1024'), 1024);
    assert.equal(parseSize('2K'), 2048);
    assert.equal(parseSize('512MiB'), 512 * 1024 ** 2);
    assert.equal(parseSize('1.5G'), 1.5 * 1024 ** 3);
    assert.equal(parseSize('20gb'), 20 * 1024 ** 3);
    assert.equal(parseSize('lots'), undefined);
    assert.equal(parseSize('-1G'), undefined);
    const budget = await defaultCacheBudget('/');
    assert.ok(budget > 0);
  });
});
