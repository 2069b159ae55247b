// A pull ends by evicting, least recently used first, the extracted layers no image names beyond
// the cache budget (`--cache-size`); layers of named images stay. Through the CLI against the real
// registry.
import './pull-support.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { ensureLayer } from '../../src/image/layers.js';
import { Store } from '../../src/store/store.js';
import { LAYERFS_BIN } from '../helpers/mount.js';
import { file } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { buildTestImage } from './harness/images.js';
import { pushTestImage } from './harness/push.js';
import { registrySkip, useRegistry } from './harness/registry-server.js';

const run = promisify(execFile);

describe('eviction after a pull', { skip: registrySkip() }, () => {
  const registry = useRegistry();
  const temp = new TempDirs();
  after(() => temp.cleanup());

  it('evicts unnamed layers beyond --cache-size and keeps the pulled image\'s layers', async () => {
    const reg = registry();
    const root = await temp.make('evict');
    // A layer extracted into the store that no image names (what a failed pull leaves).
    const orphan = await buildTestImage([[file('orphan.bin', Buffer.alloc(64 * 1024, 7))]]);
    const store = await Store.open(root);
    const layer = orphan.layers[0]!;
    await store.blobs.ingest(Readable.from([layer.blob]), { digest: layer.digest, size: layer.blob.length });
    await ensureLayer(store, { digest: layer.digest, diffId: layer.diffId, mediaType: layer.mediaType, size: layer.blob.length });
    assert.ok(await store.layers.has(layer.diffId));

    const image = await buildTestImage([[file('a.txt', 'a')], [file('b.txt', 'b')]]);
    await pushTestImage(reg, 'evict/app', 'v1', image);
    const { stderr } = await run(process.execPath, [LAYERFS_BIN, 'pull', '--root', root, '--cache-size', '1K', `${reg.host}/evict/app:v1`]);

    assert.match(stderr, /evicted 1 unused layer/);
    assert.equal(await store.layers.has(layer.diffId), false, 'the unnamed layer is evicted');
    for (const l of image.layers) assert.ok(await store.layers.has(l.diffId), 'named layers stay, even over the budget');
    // The evicted layer's blob is not the cache's to drop: prune does that.
    assert.ok(await store.blobs.has(layer.digest));
  });

  it('keeps unnamed layers that fit in the budget', async () => {
    const reg = registry();
    const root = await temp.make('evict');
    const orphan = await buildTestImage([[file('small.txt', 'x')]]);
    const store = await Store.open(root);
    const layer = orphan.layers[0]!;
    await store.blobs.ingest(Readable.from([layer.blob]), { digest: layer.digest, size: layer.blob.length });
    await ensureLayer(store, { digest: layer.digest, diffId: layer.diffId, mediaType: layer.mediaType, size: layer.blob.length });
    const image = await buildTestImage([[file('c.txt', 'c')]]);
    await pushTestImage(reg, 'evict/other', 'v1', image);
    await run(process.execPath, [LAYERFS_BIN, 'pull', '--root', root, '--cache-size', '1G', `${reg.host}/evict/other:v1`]);
    assert.ok(await store.layers.has(layer.diffId));
  });
});
