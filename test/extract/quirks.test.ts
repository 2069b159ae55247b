// Real-world layer quirks: missing parents, repeated entries, directories after their children,
// "./" prefixes, type changes within one layer, OCI markers kept as they are, invalid markers.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isLayerError } from '../../src/extract/errors.js';
import { readLayerIndex, type LayerIndexRecord } from '../../src/extract/layer-index.js';
import { dir, file, hardlink, packTar, RawTar, symlink } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { extractBuffer, extractError, isRoot } from './support.js';

const temps = new TempDirs();
after(() => temps.cleanup());

const mode = (path: string): number => lstatSync(path).mode & 0o7777;

async function indexOf(indexPath: string): Promise<Map<string, LayerIndexRecord>> {
  const records = new Map<string, LayerIndexRecord>();
  for await (const r of readLayerIndex(indexPath)) {
    assert.ok(!records.has(r.path), `one record per path (${r.path})`);
    records.set(r.path, r);
  }
  return records;
}

describe('layer quirks', () => {
  it('missing parent directories are created 0755 root:root and marked implicit', async () => {
    const tar = await packTar([file('a/b/c/file', 'x', { uid: 5 })]);
    const { dir: root, indexPath } = await extractBuffer(temps, tar);
    assert.equal(readFileSync(join(root, 'a/b/c/file'), 'utf8'), 'x');
    for (const d of ['', 'a', 'a/b', 'a/b/c']) {
      const st = lstatSync(join(root, d));
      assert.equal(st.mode & 0o7777, 0o755, d);
      if (isRoot()) assert.equal(st.uid, 0);
    }
    const index = await indexOf(indexPath);
    assert.equal(index.get('a/b')?.implicit, true);
    assert.equal(index.get('')?.implicit, true);
    assert.equal(index.get('a/b/c/file')?.implicit, undefined);
  });

  it('the "./" root entry gives the layer root its metadata', async () => {
    const tar = await packTar([dir('./', { mode: 0o750, mtime: new Date(2_000) }), file('./x', 'y')]);
    const { dir: root, indexPath } = await extractBuffer(temps, tar);
    assert.equal(mode(root), 0o750);
    assert.equal(lstatSync(root).mtimeMs, 2_000);
    assert.equal((await indexOf(indexPath)).get('')?.implicit, undefined);
  });

  it('"./" prefixes, absolute names and doubled slashes all name the same entry', async () => {
    const tar = new RawTar().file('./a', '1').file('/b', '2').file('.//c//', '3').file('./././d', '4').end().toBuffer();
    const { dir: root } = await extractBuffer(temps, tar);
    assert.deepEqual(readdirSync(root).sort(), ['a', 'b', 'c', 'd']);
    assert.equal(readFileSync(join(root, 'c'), 'utf8'), '3');
  });

  it('an entry repeated in one layer: the last one wins (content, mode, type)', async () => {
    const tar = await packTar([
      file('f', 'first', { mode: 0o600 }),
      file('f', 'second', { mode: 0o640 }),
      symlink('s', 'one'),
      symlink('s', 'two'),
      dir('d', { mode: 0o700 }),
      file('d/keep', 'k'),
      dir('d', { mode: 0o751 }),
    ]);
    const { dir: root, indexPath } = await extractBuffer(temps, tar);
    assert.equal(readFileSync(join(root, 'f'), 'utf8'), 'second');
    assert.equal(mode(join(root, 'f')), 0o640);
    assert.equal(readlinkSync(join(root, 's')), 'two');
    assert.equal(mode(join(root, 'd')), 0o751);
    assert.equal(readFileSync(join(root, 'd/keep'), 'utf8'), 'k', 'a repeated directory keeps its children');
    const index = await indexOf(indexPath);
    assert.equal(index.get('f')?.size, 6);
    assert.equal(index.get('s')?.linkTarget?.toString(), 'two');
    assert.equal(index.get('d')?.mode, 0o751);
  });

  it('a directory entry after its children: its metadata is applied at the end', async () => {
    const tar = await packTar([
      file('late/a', 'x'),
      dir('late/sub', { mode: 0o700, mtime: new Date(3_000) }),
      file('late/sub/b', 'y'),
      dir('late', { mode: 0o555, mtime: new Date(4_000), uid: 9 }),
    ]);
    const { dir: root, indexPath } = await extractBuffer(temps, tar, { privileged: isRoot() });
    assert.equal(lstatSync(join(root, 'late')).mtimeMs, 4_000);
    assert.equal(lstatSync(join(root, 'late/sub')).mtimeMs, 3_000, 'children did not touch the parent mtime');
    if (isRoot()) {
      assert.equal(mode(join(root, 'late')), 0o555);
      assert.equal(lstatSync(join(root, 'late')).uid, 9);
    }
    const late = (await indexOf(indexPath)).get('late');
    assert.equal(late?.implicit, undefined);
    assert.equal(late?.mode, 0o555);
  });

  it('a file replaced by a directory in the same layer, and a directory by a file', async () => {
    const tar = await packTar([
      file('x', 'file first'),
      dir('x'),
      file('x/child', 'c'),
      dir('y'),
      file('y/deep/er', 'gone'),
      file('y', 'file now'),
      symlink('z', '/etc'),
      dir('z'),
      file('z/passwd', 'contained'),
    ]);
    const { dir: root, indexPath } = await extractBuffer(temps, tar);
    assert.ok(lstatSync(join(root, 'x')).isDirectory());
    assert.equal(readFileSync(join(root, 'x/child'), 'utf8'), 'c');
    assert.ok(lstatSync(join(root, 'y')).isFile());
    assert.equal(readFileSync(join(root, 'y'), 'utf8'), 'file now');
    assert.ok(lstatSync(join(root, 'z')).isDirectory());
    assert.equal(readFileSync(join(root, 'z/passwd'), 'utf8'), 'contained');
    const index = await indexOf(indexPath);
    assert.equal(index.get('x')?.type, 'dir');
    assert.equal(index.get('y')?.type, 'file');
    assert.equal(index.has('y/deep'), false);
    assert.equal(index.has('y/deep/er'), false);
    assert.equal(index.get('z')?.type, 'dir');
    assert.deepEqual([...index.keys()].sort(), ['', 'x', 'x/child', 'y', 'z', 'z/passwd']);
  });

  it('a file replaced after being hardlinked: the link keeps the old content', async () => {
    const tar = await packTar([file('a', 'old'), hardlink('b', 'a'), file('a', 'new')]);
    const { dir: root, indexPath } = await extractBuffer(temps, tar);
    assert.equal(readFileSync(join(root, 'a'), 'utf8'), 'new');
    assert.equal(readFileSync(join(root, 'b'), 'utf8'), 'old');
    const index = await indexOf(indexPath);
    assert.equal(index.get('b')?.size, 3);
    assert.equal(index.get('b')?.nlink, 1);
    assert.notEqual(index.get('a')?.ino, index.get('b')?.ino);
  });
});

describe('OCI whiteout markers', () => {
  it('stay in the extracted directory as empty files, exactly where the tar put them', async () => {
    const tar = await packTar([
      dir('etc'),
      file('etc/.wh.passwd', ''),
      file('.wh..wh..opq', ''),
      dir('var/lib'),
      file('var/lib/.wh..wh..opq', ''),
      file('.wh.gone-dir', 'data in a marker is not kept'),
    ]);
    const { dir: root, indexPath } = await extractBuffer(temps, tar);
    for (const marker of ['etc/.wh.passwd', '.wh..wh..opq', 'var/lib/.wh..wh..opq', '.wh.gone-dir']) {
      const st = lstatSync(join(root, marker));
      assert.ok(st.isFile(), marker);
      assert.equal(st.size, 0, marker);
    }
    assert.equal((await indexOf(indexPath)).get('.wh.gone-dir')?.size, 0);
  });

  for (const name of ['.wh.', '.wh..', '.wh...', '.wh..wh.x', 'd/.wh..wh.plnk']) {
    it(`rejects the invalid marker ${JSON.stringify(name)}`, async () => {
      const err = await extractError(temps, await packTar([file(name, '')]));
      assert.ok(isLayerError(err, 'ERR_LAYER_INVALID_WHITEOUT'), String(err));
      assert.ok(err.message.includes(name), err.message);
    });
  }

  it('rejects markers that are not plain files, used as directories, or hardlinked', async () => {
    for (const entries of [
      [dir('.wh.d')],
      [symlink('.wh.s', 'x')],
      [file('.wh.p/child', 'x')],
      [file('f', 'x'), hardlink('.wh.f', 'f')],
      [file('.wh.m', ''), hardlink('g', '.wh.m')],
    ]) {
      const err = await extractError(temps, await packTar(entries));
      assert.ok(isLayerError(err, 'ERR_LAYER_INVALID_WHITEOUT'), String(err));
    }
  });

  it('"..." and names that merely contain ".wh." are ordinary entries', async () => {
    const tar = await packTar([file('...', 'a'), file('x.wh.y', 'b'), file('a.wh..wh..opq', 'c')]);
    const { dir: root } = await extractBuffer(temps, tar);
    assert.ok(existsSync(join(root, '...')));
    assert.equal(readFileSync(join(root, 'x.wh.y'), 'utf8'), 'b');
  });
});
