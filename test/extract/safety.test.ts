// Malicious layers, each built in code: nothing may ever be written outside the target directory.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { extractLayer } from '../../src/extract/extract-layer.js';
import { isLayerError, type LayerErrorCode } from '../../src/extract/errors.js';
import { MAX_LONG_HEADER_SIZE } from '../../src/extract/tar-reader.js';
import { normalizeEntryPath } from '../../src/extract/safe-path.js';
import { dir, file, gzip, hardlink, packTar, padded, paxBody, RawTar, rawHeader, streamOf, symlink } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { extractBuffer, extractError } from './support.js';

const temps = new TempDirs();
after(() => temps.cleanup());

/**
 * Extracts `tar` into base/layer next to a sentinel directory base/outside (symlinks in the
 * attacks point there), expects `code`, and checks that nothing appeared outside the layer.
 */
async function expectRefused(tar: Buffer, code: LayerErrorCode, entryHint?: string): Promise<void> {
  const base = await temps.make('attack');
  const outside = await TempDirs.sub(base, 'outside');
  const layer = await TempDirs.sub(base, 'layer');
  await assert.rejects(
    extractLayer(streamOf(tar), layer, { indexPath: join(base, 'index') }),
    (err: unknown) => {
      assert.ok(isLayerError(err, code), `expected ${code}, got ${String(err)}`);
      if (entryHint !== undefined) assert.ok((err as Error).message.includes(entryHint), (err as Error).message);
      return true;
    },
  );
  assert.deepEqual(readdirSync(outside), [], 'nothing written outside the layer');
  assert.deepEqual(readdirSync(base).sort(), ['layer', 'outside'], 'no stray files next to the layer (journal removed)');
}

/** The sentinel dir of expectRefused, as a symlink target relative to the layer root. */
const OUTSIDE = '../outside';

describe('name normalisation (safe-path.ts)', () => {
  const norm = (name: string | Buffer): string => normalizeEntryPath(typeof name === 'string' ? Buffer.from(name) : name);
  it('makes names relative and drops "." and empty components', () => {
    assert.equal(norm('./a/b'), 'a/b');
    assert.equal(norm('/a//b/'), 'a/b');
    assert.equal(norm('./'), '');
    assert.equal(norm('/'), '');
    assert.equal(norm('a/./b/.'), 'a/b');
  });
  it('resolves ".." lexically inside the layer and refuses it above the root', () => {
    assert.equal(norm('a/b/../c'), 'a/c');
    assert.equal(norm('a/..'), '');
    for (const bad of ['..', '../a', 'a/../..', '/../a', 'a/b/../../../c']) {
      assert.throws(() => norm(bad), (err) => isLayerError(err, 'ERR_LAYER_UNSAFE_PATH'), bad);
    }
  });
  it('refuses NUL bytes and names that are not UTF-8, keeps valid UTF-8', () => {
    assert.throws(() => norm(Buffer.from('a\0b')), (err) => isLayerError(err, 'ERR_LAYER_UNSAFE_PATH'));
    assert.throws(() => norm(Buffer.from([0x61, 0xc3])), (err) => isLayerError(err, 'ERR_LAYER_UNSUPPORTED'));
    assert.equal(norm(Buffer.from('dé/名前', 'utf8')), 'dé/名前');
  });
});

describe('path attacks', () => {
  it('".." that leaves the layer is refused, in names and at any depth', async () => {
    await expectRefused(await packTar([file('../outside/x', 'evil')]), 'ERR_LAYER_UNSAFE_PATH', '../outside/x');
    await expectRefused(await packTar([file('a/../../outside/x', 'evil')]), 'ERR_LAYER_UNSAFE_PATH');
    await expectRefused(new RawTar().file('/../outside/x', 'evil').end().toBuffer(), 'ERR_LAYER_UNSAFE_PATH');
    await expectRefused(new RawTar().dir('..').end().toBuffer(), 'ERR_LAYER_UNSAFE_PATH');
  });

  it('".." that stays inside is resolved lexically', async () => {
    const { dir: root } = await extractBuffer(temps, await packTar([file('a/b/../c', 'ok')]));
    assert.equal(readFileSync(join(root, 'a/c'), 'utf8'), 'ok');
  });

  it('absolute names are made relative to the layer root', async () => {
    const { dir: root } = await extractBuffer(temps, new RawTar().file('/etc/layerfs-test', 'in layer').end().toBuffer());
    assert.equal(readFileSync(join(root, 'etc/layerfs-test'), 'utf8'), 'in layer');
    assert.equal(existsSync('/etc/layerfs-test'), false);
  });

  it('NUL bytes in a PAX path are refused; GNU long names end at their NUL', async () => {
    const withNul = new RawTar().pax({ path: Buffer.from('safe\0/../../outside/x') }).file('x', 'evil').end().toBuffer();
    await expectRefused(withNul, 'ERR_LAYER_UNSAFE_PATH');
    const gnu = new RawTar().gnuLong('L', Buffer.from('safe\0../../outside/x')).file('x', 'data', { magic: 'gnu' }).end().toBuffer();
    const { dir: root } = await extractBuffer(temps, gnu);
    assert.deepEqual(readdirSync(root), ['safe']);
  });

  it('NUL in a PAX symlink target is refused', async () => {
    const tar = new RawTar().pax({ linkpath: Buffer.from('/etc\0x') }).symlink('l', 'x').end().toBuffer();
    await expectRefused(tar, 'ERR_LAYER_UNSAFE_PATH');
  });

  it('names that are not UTF-8 are refused (they could not be written or served faithfully)', async () => {
    const tar = new RawTar().file(Buffer.from([0x66, 0xff]), 'x').end().toBuffer();
    await expectRefused(tar, 'ERR_LAYER_UNSUPPORTED');
  });
});

describe('symlink attacks', () => {
  it('never writes through a symlink the layer created (a -> outside, then a/x)', async () => {
    await expectRefused(await packTar([symlink('a', OUTSIDE), file('a/x', 'evil')]), 'ERR_LAYER_UNSAFE_PATH', 'a/x');
    await expectRefused(await packTar([symlink('a', '..'), file('a/outside/x', 'evil')]), 'ERR_LAYER_UNSAFE_PATH');
    await expectRefused(await packTar([dir('d'), symlink('d/a', `../${OUTSIDE}`), file('d/a/b/c', 'evil')]), 'ERR_LAYER_UNSAFE_PATH');
  });

  it('never writes through a symlink to /etc (a -> /etc, then a/<name>)', async () => {
    const name = `layerfs-attack-${process.pid}`;
    await expectRefused(await packTar([symlink('a', '/etc'), file(`a/${name}`, 'evil')]), 'ERR_LAYER_UNSAFE_PATH');
    assert.equal(existsSync(`/etc/${name}`), false);
  });

  it('no directory, symlink, hardlink or device created through a symlinked parent', async () => {
    await expectRefused(await packTar([symlink('a', OUTSIDE), dir('a/newdir')]), 'ERR_LAYER_UNSAFE_PATH');
    await expectRefused(await packTar([symlink('a', OUTSIDE), symlink('a/l', '/')]), 'ERR_LAYER_UNSAFE_PATH');
    await expectRefused(await packTar([file('f', 'x'), symlink('a', OUTSIDE), hardlink('a/h', 'f')]), 'ERR_LAYER_UNSAFE_PATH');
    await expectRefused(new RawTar().symlink('a', OUTSIDE).entry({ name: 'a/p', typeflag: '6' }).end().toBuffer(), 'ERR_LAYER_UNSAFE_PATH');
  });

  it('a file over a symlink replaces the symlink, never writes to its target', async () => {
    const base = await temps.make('replace');
    const victim = join(base, 'victim');
    writeFileSync(victim, 'original');
    const { dir: root } = await extractBuffer(temps, await packTar([symlink('s', victim), file('s', 'new')]));
    assert.ok(lstatSync(join(root, 's')).isFile());
    assert.equal(readFileSync(victim, 'utf8'), 'original');
  });
});

describe('hardlink attacks', () => {
  it('a hardlink to a path outside the layer is refused', async () => {
    await expectRefused(await packTar([hardlink('h', '../outside/x')]), 'ERR_LAYER_UNSAFE_PATH');
    await expectRefused(await packTar([hardlink('h', 'a/../../../etc/passwd')]), 'ERR_LAYER_UNSAFE_PATH');
  });

  it('an absolute hardlink target means the layer path, never the host file', async () => {
    const nlink = lstatSync('/etc/passwd').nlink;
    await expectRefused(await packTar([hardlink('h', '/etc/passwd')]), 'ERR_LAYER_CORRUPT');
    assert.equal(lstatSync('/etc/passwd').nlink, nlink);
  });

  it('a hardlink through a symlinked directory (s -> /etc, h => s/passwd) is refused', async () => {
    const nlink = lstatSync('/etc/passwd').nlink;
    await expectRefused(await packTar([symlink('s', '/etc'), hardlink('h', 's/passwd')]), 'ERR_LAYER_UNSAFE_PATH');
    assert.equal(lstatSync('/etc/passwd').nlink, nlink);
  });

  it('a hardlink to a symlink that leaves the layer links the symlink, not its target', async () => {
    const nlink = lstatSync('/etc/passwd').nlink;
    const { dir: root } = await extractBuffer(temps, await packTar([symlink('s', '/etc/passwd'), hardlink('h', 's')]));
    assert.ok(lstatSync(join(root, 'h')).isSymbolicLink());
    assert.equal(lstatSync('/etc/passwd').nlink, nlink);
  });

  it('hardlinks to directories and to missing targets are refused', async () => {
    await expectRefused(await packTar([dir('d'), hardlink('h', 'd')]), 'ERR_LAYER_CORRUPT');
    await expectRefused(await packTar([hardlink('h', 'missing')]), 'ERR_LAYER_CORRUPT');
    await expectRefused(await packTar([hardlink('h', './')]), 'ERR_LAYER_CORRUPT');
  });
});

describe('resource attacks', () => {
  /** A tar stream of `header` followed by `size` generated bytes; reports how much was read. */
  function hugeStream(header: Buffer, size: number): { stream: Readable; read: () => number } {
    let produced = 0;
    const block = Buffer.alloc(1024 * 1024, 0x41);
    const stream = new Readable({
      read() {
        if (produced === 0) {
          produced += header.length;
          this.push(header);
        } else if (produced < size) {
          produced += block.length;
          this.push(block);
        } else this.push(null);
      },
    });
    return { stream, read: () => produced };
  }

  for (const [typeflag, what] of [
    ['x', 'PAX header'],
    ['L', 'GNU long name'],
  ] as const) {
    it(`a ${what} of 300 MiB is refused before it is buffered`, async () => {
      const size = 300 * 1024 * 1024;
      const { stream, read } = hugeStream(rawHeader({ name: 'h', typeflag, size }), size);
      const layer = await temps.make('huge');
      const rssBefore = process.memoryUsage().rss;
      await assert.rejects(extractLayer(stream, layer), (err) => isLayerError(err, 'ERR_LAYER_TOO_LARGE_HEADER'));
      assert.ok(read() < 32 * 1024 * 1024, `stopped early (read ${read()} bytes)`);
      assert.ok(process.memoryUsage().rss - rssBefore < 64 * 1024 * 1024, 'memory stayed bounded');
    });
  }

  it('a PAX header above our cap (but under tar-stream\'s) is refused too', async () => {
    const body = paxBody({ comment: 'c'.repeat(MAX_LONG_HEADER_SIZE + 10) });
    const tar = Buffer.concat([rawHeader({ name: 'h', typeflag: 'x', size: body.length }), padded(body), new RawTar().file('f', 'x').end().toBuffer()]);
    await expectRefused(tar, 'ERR_LAYER_TOO_LARGE_HEADER');
  });

  it('a PAX header of 64 KiB is fine', async () => {
    const tar = new RawTar().pax({ comment: 'c'.repeat(64 * 1024), 'SCHILY.xattr.user.x': 'y' }).file('f', 'x').end().toBuffer();
    await extractBuffer(temps, tar);
  });
});

describe('broken streams end in an error, never a hang', () => {
  it('a tar truncated inside file data', async () => {
    const tar = await packTar([file('a', Buffer.alloc(10_000, 1)), file('b', 'x')]);
    await expectRefused(tar.subarray(0, 512 + 5_000), 'ERR_LAYER_CORRUPT');
  });

  it('a tar truncated inside a large file (data written in the background)', async () => {
    const tar = await packTar([file('big', Buffer.alloc(5 * 1024 * 1024, 7))]);
    await expectRefused(tar.subarray(0, 3 * 1024 * 1024), 'ERR_LAYER_CORRUPT');
    await expectRefused(gzip(tar).subarray(0, 4000), 'ERR_LAYER_CORRUPT');
  });

  it('a tar truncated inside a header', async () => {
    const tar = await packTar([file('a', 'x'), file('b', 'y')]);
    await expectRefused(tar.subarray(0, 1024 + 100), 'ERR_LAYER_CORRUPT');
  });

  it('a tar truncated inside a PAX header', async () => {
    const tar = new RawTar().pax({ comment: 'x'.repeat(2000) }).file('a', 'x').end().toBuffer();
    await expectRefused(tar.subarray(0, 1000), 'ERR_LAYER_CORRUPT');
  });

  it('a header with a bad checksum', async () => {
    await expectRefused(new RawTar().file('a', 'x', { badChecksum: true }).end().toBuffer(), 'ERR_LAYER_CORRUPT');
  });

  it('random bytes', async () => {
    const noise = Buffer.alloc(4096);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919 + 13) & 0xff;
    await expectRefused(noise, 'ERR_LAYER_CORRUPT');
  });

  it('an input stream that fails reports ERR_LAYER_READ', async () => {
    const layer = await temps.make('fail');
    const tar = await packTar([file('a', Buffer.alloc(100_000))]);
    const stream = new Readable({
      read() {
        this.push(tar.subarray(0, 2048));
        this.destroy(new Error('connection reset'));
      },
    });
    await assert.rejects(extractLayer(stream, layer), (err) => isLayerError(err, 'ERR_LAYER_READ'));
  });

  it('a stalled input is abandoned on abort', async () => {
    const layer = await temps.make('abort');
    const stream = new Readable({ read() {} }); // never delivers
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(extractLayer(stream, layer, { signal: controller.signal }), { name: 'AbortError' });
    assert.ok(stream.destroyed);
  });
});

describe('the target directory', () => {
  it('must exist, be a real directory and be empty', async () => {
    const base = await temps.make('target');
    const tar = await packTar([file('a', 'x')]);
    writeFileSync(join(base, 'file'), '');
    symlinkSync(base, join(base, 'link'));
    for (const target of [join(base, 'missing'), join(base, 'file'), join(base, 'link'), base]) {
      await assert.rejects(extractLayer(streamOf(tar), target), (err) => isLayerError(err, 'ERR_LAYER_BAD_TARGET'), target);
    }
  });

  it('device entries when unprivileged: recorded, not created', async () => {
    const tar = new RawTar().entry({ name: 'dev/sda', typeflag: '4', devmajor: 8, devminor: 0, mode: 0o660 }).end().toBuffer();
    const { dir: root } = await extractBuffer(temps, tar, { privileged: false });
    const st = lstatSync(join(root, 'dev/sda'));
    assert.ok(st.isFile());
    assert.equal(st.size, 0);
  });

  it('errors name the entry', async () => {
    const err = await extractError(temps, await packTar([symlink('lnk', '/'), file('lnk/etc/x', 'evil')]));
    assert.match(err.message, /entry "lnk\/etc\/x"/);
  });
});
