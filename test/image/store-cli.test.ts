// The store through the CLI: images, df, check (with real corruption), rmi, prune; and the round
// trip extract -> mount -> the tree the mount shows equals the tar's own listing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Store } from '../../src/store/store.js';
import { MountClient } from '../helpers/clients.js';
import { withMount, LAYERFS_BIN } from '../helpers/mount.js';
import { dir, file, hardlink, symlink } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { dumpTree } from '../helpers/tree-dump.js';
import { buildImage, storeImage } from './image-fixtures.js';

const exec = promisify(execFile);

async function layerfs(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [LAYERFS_BIN, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('store commands on images built in code', () => {
  const temps = new TempDirs();
  let root = '';
  let store: Store;
  const base = [dir('etc'), file('etc/os-release', 'NAME=test\n'), file('bin/tool', '#!/bin/sh\necho hi\n', { mode: 0o755 }), hardlink('bin/tool-link', 'bin/tool'), symlink('bin/sh', '/bin/busybox')];
  const appLayer = [file('app/main.js', 'console.log(1)\n'), file('etc/.wh.os-release')];

  before(async () => {
    root = join(await temps.make('store-cli'), 'store');
    store = await Store.open(root);
    await storeImage(store, 'example.com/base:1', await buildImage([base]));
    await storeImage(store, 'example.com/app:1', await buildImage([base, appLayer]));
  });
  after(() => temps.cleanup());

  it('images lists both, with sizes; --format json and --digests', async () => {
    const table = await layerfs(['images', '--root', root]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE/);
    assert.match(table.stdout, /example\.com\/app\s+1\s+[0-9a-f]{12}\s+\d+ \w+ ago\s+\d/);
    const json = JSON.parse((await layerfs(['images', '--root', root, '--format', 'json'])).stdout) as Array<{ repository: string; digest: string }>;
    assert.deepEqual(json.map((i) => i.repository).sort(), ['example.com/app', 'example.com/base']);
    assert.match((await layerfs(['images', '--root', root, '--digests'])).stdout, /sha256:[0-9a-f]{64}/);
  });

  it('df counts the shared base layer once', async () => {
    const df = JSON.parse((await layerfs(['df', '--root', root, '--format', 'json'])).stdout) as { layers: number; sharedSize: number; layersSize: number; unsharedTotal: number };
    assert.equal(df.layers, 2, 'two distinct layers for three layer uses');
    assert.ok(df.sharedSize > 0);
    assert.equal(df.unsharedTotal, df.layersSize + df.sharedSize);
  });

  it('an extracted layer mounted shows exactly the tar listing', async () => {
    const image = (await store.findImage('example.com/base:1'))!;
    const tree = store.layers.treePath(image.layers[0]!.diffId);
    const mnt = await TempDirs.sub(await temps.make('mnt'), 'm');
    const dump = await withMount({ lowers: [tree], mountpoint: mnt }, async (mp) => dumpTree(new MountClient(mp)));
    const paths = dump.map((line) => line.split(' ')[0]);
    assert.deepEqual(paths, ['/', '/bin', '/bin/sh', '/bin/tool', '/bin/tool-link', '/etc', '/etc/os-release']);
    assert.match(dump.find((l) => l.startsWith('/bin/tool '))!, / file 0755 /);
    assert.match(dump.find((l) => l.startsWith('/bin/sh '))!, /\/bin\/busybox/);
  });

  it('check finds a corrupted blob and a damaged layer; --repair drops them', async () => {
    assert.equal((await layerfs(['check', '--root', root])).code, 0);
    const app = (await store.findImage('example.com/app:1'))!;
    await fsp.appendFile(store.blobs.path(app.layers[1]!.digest), 'garbage');
    await fsp.writeFile(join(store.layers.treePath(app.layers[1]!.diffId), 'app', 'main.js'), 'tampered, and longer than before\n');
    const found = await layerfs(['check', '--root', root]);
    assert.notEqual(found.code, 0);
    assert.match(found.stdout, new RegExp(`damaged blob ${app.layers[1]!.digest}`));
    assert.match(found.stdout, new RegExp(`damaged layer ${app.layers[1]!.diffId}`));
    assert.match(found.stderr, /layerfs check --repair/);
    const repaired = await layerfs(['check', '--root', root, '--repair']);
    assert.equal(repaired.code, 0, repaired.stderr);
    assert.equal(await store.blobs.has(app.layers[1]!.digest), false);
    assert.equal(await store.layers.has(app.layers[1]!.diffId), false);
    assert.equal((await layerfs(['check', '--root', root])).code, 0);
  });

  it('rmi removes only what no other image uses; prune --all empties the store', async () => {
    const base = (await store.findImage('example.com/base:1'))!;
    const rmi = await layerfs(['rmi', '--root', root, 'example.com/app:1']);
    assert.equal(rmi.code, 0, rmi.stderr);
    assert.match(rmi.stdout, /Untagged: example\.com\/app:1/);
    assert.equal(await store.layers.has(base.layers[0]!.diffId), true, 'the shared base layer stays');
    const missing = await layerfs(['rmi', '--root', root, 'example.com/nope:1']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no such image/);
    assert.equal((await layerfs(['prune', '--root', root, '--all'])).code, 0);
    assert.equal((await store.layers.list()).length, 0);
    assert.equal((await store.blobs.list()).length, 0);
  });
});
