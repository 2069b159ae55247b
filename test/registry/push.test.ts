// Pushing from the store to the real registry: chunked uploads (PATCH with Content-Range, then the
// closing PUT), the blob-exists check, and a pull of the pushed image back into an empty store.
import './pull-support.js';
import assert from 'node:assert/strict';
import { type IncomingMessage, type ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
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

  for (const variant of ['lost before the registry', 'lost after the registry stored it'] as const) {
    it(`a failed chunk (${variant}) does not fail the push`, async () => {
      const reg = registry();
      const image = await buildTestImage([[file('big.bin', noise(260 * 1024, variant.length))]]);
      const repo = `resume/${variant.startsWith('lost before') ? 'before' : 'after'}`;
      await pushTestImage(reg, `${repo}-source`, 'v1', image);
      const dir = await temp.make('push-resume');
      const context = await makeContext(dir);
      const store = await Store.open(`${dir}/store`);
      const pulled = await pull(store, `${reg.host}/${repo}-source:v1`, context);

      // A proxy in front of the real registry that answers the second PATCH with a 503, before or
      // after passing it on.
      const forwardFirst = variant === 'lost after the registry stored it';
      const proxy = await startLossyProxy(reg.url, (req, index) => req.method === 'PATCH' && index === 2, forwardFirst);
      try {
        const client = registrySource({ registry: proxy.host, repository: repo }, context).upstream;
        await pushImage(store, pulled.image, client, { reference: 'v1', chunkSize: 64 * 1024 });
        const last = `262144-${image.layers[0]!.blob.length - 1}`;
        const patches = proxy.seen.filter((r) => r.method === 'PATCH').map((r) => r.range);
        assert.ok(proxy.seen.some((r) => r.method === 'GET' && r.path.includes('/blobs/uploads/')), 'the upload status was asked for');
        if (forwardFirst) {
          // distribution signs the offset into the upload URL: after a lost answer the old URL is
          // refused, so the upload starts over in a new session.
          assert.deepEqual(patches, ['0-65535', '65536-131071', '0-65535', '65536-131071', '131072-196607', '196608-262143', last]);
          // Sessions: the config's, the layer's first, and the layer's second.
          assert.equal(proxy.seen.filter((r) => r.method === 'POST').length, 3, 'a second upload session for the layer');
        } else {
          // The registry never got the chunk: the status says where it is, and the chunk goes again.
          assert.deepEqual(patches, ['0-65535', '65536-131071', '65536-131071', '131072-196607', '196608-262143', last]);
          assert.equal(proxy.seen.filter((r) => r.method === 'POST').length, 2, 'the config\'s session and the layer\'s, no other');
        }
        const served = await getBlob(reg, repo, image.layers[0]!.digest);
        assert.ok(served.body.equals(image.layers[0]!.blob));
      } finally {
        await proxy.stop();
        await context.http.close();
      }
    });
  }
});

interface LossyProxy {
  host: string;
  seen: Array<{ method: string; path: string; range: string | undefined }>;
  stop(): Promise<void>;
}

/**
 * Forwards everything to `target`, rewriting Location headers to itself. The requests `lose` picks
 * (by their 1-based index among requests of that method) get a 503: without reaching the registry,
 * or, with `forwardFirst`, after it acted (as when a connection dies before the answer).
 */
async function startLossyProxy(target: string, lose: (req: IncomingMessage, index: number) => boolean, forwardFirst: boolean): Promise<LossyProxy> {
  const seen: LossyProxy['seen'] = [];
  const counts = new Map<string, number>();
  const upstream = new URL(target);
  let self = '';
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const index = (counts.get(req.method!) ?? 0) + 1;
    counts.set(req.method!, index);
    seen.push({ method: req.method!, path: req.url!, range: req.headers['content-range'] as string | undefined });
    if (lose(req, index) && !forwardFirst) {
      req.resume();
      req.on('end', () => res.writeHead(503, { 'content-length': '0' }).end());
      return;
    }
    const headers = { ...req.headers, host: upstream.host };
    const forward = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (answer) => {
      if (lose(req, index)) {
        answer.resume();
        res.writeHead(503, { 'content-length': '0' }).end();
        return;
      }
      const out = { ...answer.headers };
      if (typeof out.location === 'string') out.location = out.location.replace(upstream.origin, self);
      res.writeHead(answer.statusCode ?? 502, out);
      answer.pipe(res);
    });
    forward.on('error', () => res.writeHead(502).end());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  self = `http://127.0.0.1:${port}`;
  return {
    host: `127.0.0.1:${port}`,
    seen,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
