// writeLayerTar: the upper directory as a tar+gzip layer. Every produced layer is read back by two
// independent readers (our extractor, with the diffID checked, and GNU tar) and the trees compared
// with the upper; determinism is checked on bytes.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, lstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { extractLayer } from '../../src/extract/index.js';
import { parsePaxRecords } from '../../src/extract/pax.js';
import { type TarEntry, TarReader } from '../../src/extract/tar-reader.js';
import { END_OF_ARCHIVE, type LayerTarResult, blockPadding, encodeTarHeader, writeLayerTar } from '../../src/image/layer-tar.js';
import { comparePaths } from '../../src/image/lower-view.js';
import * as native from '../../src/native/index.js';
import { run } from '../extract/support.js';
import {
  DEFAULT_MTIME_NS,
  type LayerSpec,
  blockdev,
  buildLayer,
  chardev,
  dir,
  fifo,
  file,
  hardlink,
  opaque,
  overlayOpaque,
  overlayWhiteout,
  symlink,
  whiteout,
} from '../helpers/layers.js';
import { TempDirs } from '../helpers/tmp.js';
import { ROOT_LINE, assertTree, dumpHostDir, expectDir, expectFile } from '../helpers/tree-dump.js';

const temps = new TempDirs();
after(() => temps.cleanup());

const SECOND = 1_000_000_000n;
const BINARY = Buffer.from([0x00, 0xff, 0x80, 0x0a, 0x3d]);
const CAPABILITY = Buffer.from('0100000200200000000000000000000000000000', 'hex');
const RANDOM = randomBytes(3 * 1024 * 1024 + 7);
const SPARSE_SIZE = 32 * 1024 * 1024;
const LONG_PATH = `deep/${'d'.repeat(90)}/${'n'.repeat(200)}`;

/** Every kind of entry an upper can hold, with owners, modes and xattrs that need PAX. */
const RICH_UPPER: LayerSpec = [
  dir('etc', { mode: 0o750, uid: 12, gid: 34, xattrs: { 'user.dir': 'd' } }),
  file('etc/passwd', 'root:x:0:0'),
  whiteout('etc/shadow'),
  opaque('usr/lib'),
  file('usr/lib/x.so', 'so'),
  file('bin/setuid', '#!/bin/sh', { mode: 0o4755 }),
  dir('tmp', { mode: 0o1777 }),
  dir('srv', { mode: 0o2750, gid: 50 }),
  file('srv/owned', 'x', { uid: 1234, gid: 5678 }),
  file('srv/big-ids', 'y', { uid: 4_000_000_000, gid: 3_000_000 }),
  file('xattrs', 'x', { xattrs: { 'user.bin': BINARY, 'security.capability': CAPABILITY, 'trusted.t': 'tv' } }),
  file(LONG_PATH, 'long'),
  file('ünïcödé-名前', 'utf8'),
  symlink('links/abs', '/etc/passwd'),
  symlink('links/long', 'x/'.repeat(80)),
  symlink('links/utf8', 'zïel'),
  file('hard/a', 'shared'),
  hardlink('hard/b', 'hard/a'),
  hardlink('other/c', 'hard/a'),
  fifo('run/fifo'),
  chardev('dev/null', 1, 3),
  blockdev('dev/loop0', 7, 0),
  file('empty', ''),
  file('random', RANDOM),
  file('old', 'o', { mtimeNs: -1_500_000_000n }),
  file('future', 'f', { mtimeNs: (2n ** 33n + 100n) * SECOND }),
];

async function buildUpper(spec: LayerSpec): Promise<string> {
  const upper = await TempDirs.sub(await temps.make('upper'), 'upper');
  await buildLayer(upper, spec);
  return upper;
}

/** A file of SPARSE_SIZE bytes that is one hole but for its last 3 bytes. */
function addSparseFile(upper: string): void {
  const path = join(upper, 'sparse');
  const fd = openSync(path, 'wx', 0o644);
  writeSync(fd, 'end', SPARSE_SIZE - 3);
  closeSync(fd);
  native.lutimensSync(path, native.timespecFromNs(DEFAULT_MTIME_NS), native.timespecFromNs(DEFAULT_MTIME_NS));
}

async function writeLayer(upper: string): Promise<{ blob: string; result: LayerTarResult }> {
  const blob = join(await temps.make('blob'), 'layer.tar.gz');
  const result = await writeLayerTar(upper, createWriteStream(blob));
  return { blob, result };
}

async function extractWithOurs(blob: string, diffId: string): Promise<string> {
  const target = await TempDirs.sub(await temps.make('ours'), 'layer');
  await extractLayer(createReadStream(blob), target, { expectedDiffId: diffId as `sha256:${string}` });
  return target;
}

async function extractWithGnuTar(blob: string): Promise<string> {
  const target = await TempDirs.sub(await temps.make('gnu'), 'layer');
  run('tar', ['-xzf', blob, '-C', target, '--xattrs', '--xattrs-include=*', '--numeric-owner']);
  return target;
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
/** The entries of a tar in memory, as the extractor's parser (tar-stream plus our PAX) reads them. */
async function parseTar(tar: Buffer): Promise<Array<{ entry: TarEntry; data: Buffer }>> {
  const reader = new TarReader();
  const feeding = reader.feed((async function* () {
    yield tar;
  })());
  const entries: Array<{ entry: TarEntry; data: Buffer }> = [];
  for await (const entry of reader.entries()) {
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      entry.data.on('data', (chunk) => chunks.push(chunk));
      entry.data.on('end', resolve);
      entry.data.on('error', reject);
    });
    entries.push({ entry, data: Buffer.concat(chunks) });
  }
  await feeding;
  return entries;
}

const listNames = (blob: string): string[] => run('tar', ['-tzf', blob]).toString().split('\n').filter((l) => l !== '');

describe('writeLayerTar', () => {
  it('round trip of every entry type: our extractor and GNU tar give back the upper', async () => {
    const upper = await buildUpper(RICH_UPPER);
    addSparseFile(upper);
    const { blob, result } = await writeLayer(upper);

    const bytes = readFileSync(blob);
    const tar = gunzipSync(bytes);
    assert.deepEqual(result, { diffId: sha256(tar), digest: sha256(bytes), size: bytes.length, uncompressedSize: tar.length });

    const expected = await dumpHostDir(upper);
    for (const target of [await extractWithOurs(blob, result.diffId), await extractWithGnuTar(blob)]) {
      assertTree(await dumpHostDir(target), expected, target);
      const inodes = ['hard/a', 'hard/b', 'other/c'].map((p) => lstatSync(join(target, p)).ino);
      assert.equal(new Set(inodes).size, 1, 'hardlinks stay one inode');
      assert.equal(lstatSync(join(target, 'hard/a')).nlink, 3);
      const mtimeNs = (p: string) => lstatSync(join(target, p), { bigint: true }).mtimeNs;
      const wholeSeconds = (DEFAULT_MTIME_NS / SECOND) * SECOND;
      assert.equal(mtimeNs('etc/passwd'), wholeSeconds, 'mtime in whole seconds');
      assert.equal(mtimeNs('etc'), wholeSeconds);
      assert.equal(mtimeNs('old'), -2n * SECOND, 'negative mtime rounded down');
      assert.equal(mtimeNs('future'), (2n ** 33n + 100n) * SECOND);
    }
  });

  it('entries: depth-first, siblings in byte order, no root, directories with a slash, numeric owners', async () => {
    const upper = await buildUpper([file('b', 'b'), file('a/z', 'z'), file('a-b', ''), whiteout('c'), file('a/é', ''), file('a/y', '')]);
    const { blob } = await writeLayer(upper);
    assert.deepEqual(listNames(blob), ['.wh.c', 'a/', 'a/y', 'a/z', 'a/é', 'a-b', 'b']);
    const verbose = run('tar', ['-tvzf', blob]).toString();
    assert.match(verbose, /^-rw-r--r-- 0\/0 +1 2020-09-13 \d\d:26 b$/m);

    const rich = await buildUpper(RICH_UPPER);
    const names = listNames((await writeLayer(rich)).blob).map((n) => n.replace(/\/$/, ''));
    for (let i = 1; i < names.length; i++) assert.ok(comparePaths(names[i - 1]!, names[i]!) < 0, `${names[i - 1]} before ${names[i]}`);
  });

  it('is deterministic: same content, same bytes; an mtime change in seconds changes the digest', async () => {
    const first = await buildUpper(RICH_UPPER);
    // A copy: other inodes, ctimes and directory order; the same content, times included (marker
    // files have real creation times, which are part of the layer).
    const second = join(await temps.make('copy'), 'upper');
    run('cp', ['-a', first, second]);
    const a = await writeLayer(first);
    const b = await writeLayer(first);
    const c = await writeLayer(second);
    assert.equal(a.result.digest, b.result.digest);
    assert.equal(a.result.digest, c.result.digest);
    assert.ok(readFileSync(a.blob).equals(readFileSync(c.blob)));

    const touch = (ns: bigint) => native.lutimensSync(join(second, 'etc/passwd'), native.timespecFromNs(ns), native.timespecFromNs(ns));
    touch(DEFAULT_MTIME_NS + 100_000n); // same second: nanoseconds are not written
    assert.equal((await writeLayer(second)).result.digest, a.result.digest);
    touch(DEFAULT_MTIME_NS + SECOND);
    const changed = await writeLayer(second);
    assert.notEqual(changed.result.digest, a.result.digest);
    assert.notEqual(changed.result.diffId, a.result.diffId);
  });

  it('converts overlay-form whiteouts and opaque xattrs to OCI markers', async () => {
    const upper = await buildUpper([
      file('keep', 'k'),
      overlayWhiteout('gone'),
      overlayOpaque('d', 'trusted'),
      overlayOpaque('u', 'user'),
      file('d/x', 'x'),
      whiteout('both'),
      overlayWhiteout('both'),
      opaque('o'),
      overlayOpaque('o'),
    ]);
    const { blob, result } = await writeLayer(upper);
    assert.deepEqual(listNames(blob), ['.wh.both', '.wh.gone', 'd/', 'd/.wh..wh..opq', 'd/x', 'keep', 'o/', 'o/.wh..wh..opq', 'u/', 'u/.wh..wh..opq']);
    assert.match(run('tar', ['-tvzf', blob]).toString(), /^---------- 0\/0 +0 [^\n]* \.wh\.gone$/m);
    const expected = [
      ROOT_LINE,
      expectFile('/.wh.both'),
      expectFile('/.wh.gone', '', { mode: 0 }),
      expectDir('/d'),
      expectFile('/d/.wh..wh..opq', '', { mode: 0 }),
      expectFile('/d/x', 'x'),
      expectFile('/keep', 'k'),
      expectDir('/o'),
      expectFile('/o/.wh..wh..opq'),
      expectDir('/u'),
      expectFile('/u/.wh..wh..opq', '', { mode: 0 }),
    ];
    assertTree(await dumpHostDir(await extractWithOurs(blob, result.diffId)), expected);
    assertTree(await dumpHostDir(await extractWithGnuTar(blob)), expected);
  });

  it('skips sockets, which a tar cannot hold', async () => {
    const upper = await buildUpper([file('f', 'x')]);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(upper, 'sock'), resolve));
    try {
      assert.ok(lstatSync(join(upper, 'sock')).isSocket());
      assert.deepEqual(listNames((await writeLayer(upper)).blob), ['f']);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('an empty upper is an empty archive', async () => {
    const { blob, result } = await writeLayer(await buildUpper([]));
    assert.equal(result.uncompressedSize, 1024);
    assert.equal(result.diffId, sha256(Buffer.alloc(1024)));
    assert.ok(gunzipSync(readFileSync(blob)).equals(Buffer.alloc(1024)));
    assert.deepEqual(readFileSync(blob).subarray(0, 10), Buffer.from('1f8b0800000000000003', 'hex'), 'gzip header: no name, mtime 0');
  });

  it('memory stays bounded: a 512 MiB file streams through (peak RSS < 250 MiB, in a child process)', async () => {
    const upper = await buildUpper([]);
    const fd = openSync(join(upper, 'big'), 'wx', 0o644);
    writeSync(fd, 'end', 512 * 1024 * 1024 - 3);
    closeSync(fd);
    const here = dirname(fileURLToPath(import.meta.url));
    const script = `
      import { createWriteStream, readFileSync } from 'node:fs';
      import { writeLayerTar } from ${JSON.stringify(join(here, '../../src/image/layer-tar.ts'))};
      const result = await writeLayerTar(${JSON.stringify(upper)}, createWriteStream('/dev/null'));
      const peak = Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      console.log(JSON.stringify({ uncompressedSize: result.uncompressedSize, peak }));`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: join(here, '../..'), encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    const { uncompressedSize, peak } = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as { uncompressedSize: number; peak: number };
    assert.equal(uncompressedSize, 512 + 512 * 1024 * 1024 + 1024);
    assert.ok(peak < 250 * 1024 * 1024, `peak RSS ${Math.round(peak / 2 ** 20)} MiB`);
  });

  it('leaves `out` open with end: false', async () => {
    const blob = join(await temps.make('blob'), 'layer.tar.gz');
    const out = createWriteStream(blob);
    await writeLayerTar(await buildUpper([file('f', 'x')]), out, { end: false });
    assert.equal(out.writableEnded, false);
    out.end();
  });
});

describe('encodeTarHeader', () => {
  const plain = { path: 'etc/passwd', type: 'file' as const, mode: 0o4755, uid: 1000, gid: 100, size: 12, mtimeSec: 1_600_000_000 };

  it('a plain entry is one ustar block that tar-stream decodes', async () => {
    const block = encodeTarHeader(plain);
    assert.equal(block.length, 512);
    assert.equal(block.toString('latin1', 257, 265), 'ustar\x0000');
    assert.equal(block.toString('latin1', 265, 329), '\0'.repeat(64), 'no uname, no gname');
    const data = Buffer.from('hello world!');
    const [parsed] = await parseTar(Buffer.concat([block, data, blockPadding(data.length), END_OF_ARCHIVE]));
    const { entry } = parsed!;
    assert.deepEqual(
      { name: entry.displayName, type: entry.type, mode: entry.mode, uid: entry.uid, gid: entry.gid, size: entry.size, mtimeNs: entry.mtimeNs },
      { name: 'etc/passwd', type: 'file', mode: 0o4755, uid: 1000, gid: 100, size: 12, mtimeNs: 1_600_000_000n * SECOND },
    );
    assert.ok(parsed!.data.equals(data));
  });

  it('values ustar cannot hold go into sorted PAX records; the ustar fields get 0', () => {
    const header = encodeTarHeader({
      ...plain,
      path: 'p'.repeat(150),
      type: 'symlink',
      linkTarget: Buffer.from([0xff, 0x41]),
      uid: 2 ** 31,
      gid: 2 ** 21,
      size: 9 * 2 ** 30,
      mtimeSec: -5,
      xattrs: [['user.b', BINARY]],
    });
    assert.equal(String.fromCharCode(header[156]!), 'x');
    const bodyLength = parseInt(header.toString('latin1', 124, 135), 8);
    const records = parsePaxRecords(header.subarray(512, 512 + bodyLength));
    assert.deepEqual(
      records.map((r) => [r.key, r.value.toString('latin1')]),
      [
        ['SCHILY.xattr.user.b', BINARY.toString('latin1')],
        ['gid', String(2 ** 21)],
        ['linkpath', '\xffA'],
        ['mtime', '-5'],
        ['path', 'p'.repeat(150)],
        ['size', String(9 * 2 ** 30)],
        ['uid', String(2 ** 31)],
      ],
    );
    const ustar = header.subarray(header.length - 512);
    assert.equal(header.length % 512, 0);
    assert.equal(String.fromCharCode(ustar[156]!), '2');
    assert.equal(ustar.toString('latin1', 108, 115), '0000000');
  });

  it('PAX record lengths that gain a digit are right (strict parser)', () => {
    for (let n = 80; n < 110; n++) {
      const header = encodeTarHeader({ ...plain, xattrs: [['user.v', Buffer.alloc(n, 0x61)]] });
      const bodyLength = parseInt(header.toString('latin1', 124, 135), 8);
      const [record] = parsePaxRecords(header.subarray(512, 512 + bodyLength));
      assert.equal(record?.value.length, n);
    }
  });

  it('refuses an xattr name that a PAX key cannot hold', () => {
    assert.throws(() => encodeTarHeader({ ...plain, xattrs: [['user.a=b', Buffer.alloc(1)]] }), /cannot be stored/);
  });
});
