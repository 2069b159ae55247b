// Pushing from the store to the real registry: chunked uploads (PATCH with Content-Range, then the
// closing PUT), the blob-exists check, and a pull of the pushed image back into an empty store.
import './pull-support.js';
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pushImage, type PushEvent } from '../../src/image/push.js';
import { registrySource } from '../../src/source/open.js';
import { Store } from '../../src/store/store.js';
import { file } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { buildTestImage } from './harness/images.js';
import { getBlob, pushTestImage } from './harness/push.js';
import { registrySkip, useRegistry } from './harness/registry-server.js';
import { makeContext, noise, pull } from './pull-support.js';

describe('push', { skip: registrySkip() }, () => {
  const registry = useRegistry();
  const temp = new TempDirs();
  after(() => temp.cleanup());

  it('uploads large blobs in chunks and small ones whole; a second push uploads nothing', async () => {
    const reg = registry();
    // A layer of incompressible data, several chunks long at a 64 KiB chunk size.
    const image = await buildTestImage([[file('big.bin', noise(300 * 1024, 3))], [file('small.txt', 'small')]]);
    await pushTestImage(reg, 'push/source', 'v1', image);
    const dir = await temp.make('push');
    const context = await makeContext(dir);
    const store = await Store.open(`${dir}/store`);
    const pulled = await pull(store, `${reg.host}/push/source:v1`, context);

    const client = registrySource({ registry: reg.host, repository: 'push/target' }, context).upstream;
    const events: PushEvent[] = [];
    const before = context.http.sent.length;
    await pushImage(store, pulled.image, client, { reference: 'v2', chunkSize: 64 * 1024, onEvent: (e) => events.push(e) });
    const sent = context.http.sent.slice(before);
    const patches = sent.filter((r) => r.method === 'PATCH');
    const bigLayer = image.layers[0]!;
    assert.equal(patches.length, Math.ceil(bigLayer.blob.length / (64 * 1024)), 'one PATCH per chunk of the big layer');
    const outcomes = events.filter((e): e is Extract<PushEvent, { type: 'blob-done' }> => e.type === 'blob-done').map((e) => e.outcome);
    assert.deepEqual(outcomes.sort(), ['uploaded', 'uploaded', 'uploaded']);
    assert.ok(events.some((e) => e.type === 'manifest'));
    // The registry serves the very bytes.
    const served = await getBlob(reg, 'push/target', bigLayer.digest);
    assert.equal(served.status, 200);
    assert.ok(served.body.equals(bigLayer.blob));

    const again: PushEvent[] = [];
    await pushImage(store, pulled.image, client, { reference: 'v2', chunkSize: 64 * 1024, onEvent: (e) => again.push(e) });
    assert.ok(again.filter((e) => e.type === 'blob-done').every((e) => e.type === 'blob-done' && e.outcome === 'exists'));

    // What was pushed pulls back, digest for digest, into an empty store.
    const fresh = await Store.open(`${dir}/fresh`);
    const back = await pull(fresh, `${reg.host}/push/target:v2`, context);
    assert.equal(back.image.digest, pulled.image.digest);
    await context.http.close();
  });
});
