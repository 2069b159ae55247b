// Every entry type, extracted from tars built in code: files (exact modes whatever the umask),
// directories, symlinks, hardlinks, devices, FIFOs, owners, nanosecond times, xattrs, sparse files.
import assert from 'node:assert/strict';
import { lstatSync, readFileSync, readlinkSync, statSync, truncateSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isLayerError } from '../../src/extract/errors.js';
import * as native from '../../src/native/index.js';
import { blockdev, chardev, dir, fifo, file, hardlink, packTar, RawTar, symlink } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { extractBuffer, extractError, isRoot, run } from './support.js';

const temps = new TempDirs();
let savedUmask = 0;
before(() => {
  // A restrictive umask must not show in extracted modes: every mode is set explicitly.
  savedUmask = process.umask(0o077);
});
after(async () => {
  process.umask(savedUmask);
  await temps.cleanup();
});

const mode = (path: string): number => lstatSync(path).mode & 0o7777;

describe('entry types', () => {
  it('regular files: content, exact modes incl. setuid/setgid/sticky, owners', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a);
    const tar = await packTar([
      file('plain', 'hello'),
      file('empty', ''),
      file('big', big),
      file('suid', '#!', { mode: 0o4755, uid: 1000, gid: 1000 }),
      file('sgid', '#!', { mode: 0o2711, uid: 0, gid: 50 }),
      file('sticky', 'x', { mode: 0o1777 }),
      file('wide', 'x', { mode: 0o666 }),
    ]);
    // tar-stream's pack() writes mode 0 as 0644: craft that header by hand.
    const zeroMode = new RawTar().file('none', 'x', { mode: 0o000 }).end().toBuffer();
    const { dir: root } = await extractBuffer(temps, Buffer.concat([tar.subarray(0, tar.length - 1024), zeroMode]));
    assert.equal(readFileSync(join(root, 'plain'), 'utf8'), 'hello');
    assert.equal(statSync(join(root, 'empty')).size, 0);
    assert.deepEqual(readFileSync(join(root, 'big')), big);
    assert.equal(mode(join(root, 'wide')), 0o666);
    assert.equal(mode(join(root, 'sticky')), 0o1777);
    if (isRoot()) {
      assert.equal(mode(join(root, 'suid')), 0o4755);
      assert.equal(mode(join(root, 'sgid')), 0o2711);
      assert.equal(mode(join(root, 'none')), 0o000);
      assert.equal(lstatSync(join(root, 'suid')).uid, 1000);
      assert.equal(lstatSync(join(root, 'sgid')).gid, 50);
    }
  });

  it('directories: modes and owners applied, even 0555 and 0000 with children', async () => {
    const tar = await packTar([
      dir('ro', { mode: 0o555 }),
      file('ro/inside', 'x'),
      dir('tmp', { mode: 0o1777 }),
      dir('sgid', { mode: 0o2775 }),
    ]);
    const closed = new RawTar().dir('closed', { mode: 0o000, uid: 7, gid: 8 }).file('closed/secret', 'y').end().toBuffer();
    const { dir: root } = await extractBuffer(temps, Buffer.concat([tar.subarray(0, tar.length - 1024), closed]), {
      privileged: isRoot(),
    });
    assert.equal(readFileSync(join(root, 'closed/secret'), 'utf8'), 'y');
    assert.equal(readFileSync(join(root, 'ro/inside'), 'utf8'), 'x');
    assert.equal(mode(join(root, 'tmp')), 0o1777);
    assert.equal(mode(join(root, 'sgid')), 0o2775);
    if (isRoot()) {
      assert.equal(mode(join(root, 'ro')), 0o555);
      assert.equal(mode(join(root, 'closed')), 0o000);
      assert.equal(lstatSync(join(root, 'closed')).uid, 7);
    }
  });

  it('symlinks: targets byte for byte (absolute, relative, dangling, "..", non-UTF-8), never followed', async () => {
    const nonUtf8 = Buffer.from([0x2f, 0x74, 0xff, 0xfe, 0x2f, 0x78]); // "/t\xff\xfe/x"
    const tar = new RawTar()
      .symlink('abs', '/etc/passwd')
      .symlink('rel', '../../../../x')
      .symlink('dot', './a//b/')
      .symlink('dangling', 'nowhere')
      .symlink('raw', nonUtf8)
      .end()
      .toBuffer();
    const { dir: root } = await extractBuffer(temps, tar);
    assert.equal(readlinkSync(join(root, 'abs')), '/etc/passwd');
    assert.equal(readlinkSync(join(root, 'rel')), '../../../../x');
    assert.equal(readlinkSync(join(root, 'dot')), './a//b/');
    assert.equal(readlinkSync(join(root, 'dangling')), 'nowhere');
    assert.deepEqual(readlinkSync(join(root, 'raw'), { encoding: 'buffer' }), nonUtf8);
  });

  it('symlink owner and mtime (lchown / lutimens, not the target)', async () => {
    if (!isRoot()) return;
    const tar = await packTar([file('t', 'x'), symlink('l', 't', { uid: 12, gid: 34, mtime: new Date(5_000) })]);
    const { dir: root } = await extractBuffer(temps, tar);
    const st = lstatSync(join(root, 'l'));
    assert.equal(st.uid, 12);
    assert.equal(st.gid, 34);
    assert.equal(st.mtimeMs, 5_000);
    assert.equal(lstatSync(join(root, 't')).mtimeMs, 1_600_000_000_000);
  });

  it('hardlinks share the inode, including "./" prefixed and absolute link names', async () => {
    const tar = await packTar([
      file('a', 'shared', { mode: 0o750 }),
      hardlink('b', 'a'),
      hardlink('c', './a'),
      hardlink('d', '/a'),
    ]);
    const { dir: root } = await extractBuffer(temps, tar);
    const ino = lstatSync(join(root, 'a')).ino;
    for (const name of ['b', 'c', 'd']) assert.equal(lstatSync(join(root, name)).ino, ino, name);
    assert.equal(lstatSync(join(root, 'a')).nlink, 4);
  });

  it('a hardlink to a symlink links the symlink itself', async () => {
    const tar = await packTar([symlink('s', '/etc/shadow'), hardlink('h', 's')]);
    const { dir: root } = await extractBuffer(temps, tar);
    assert.ok(lstatSync(join(root, 'h')).isSymbolicLink());
    assert.equal(lstatSync(join(root, 'h')).ino, lstatSync(join(root, 's')).ino);
  });

  it('character and block devices and FIFOs (as root: real nodes)', async () => {
    const tar = await packTar([
      chardev('null', 1, 3, { mode: 0o666 }),
      blockdev('sda', 8, 0, { mode: 0o660, gid: 6 }),
      chardev('wh', 0, 0),
      fifo('pipe', { mode: 0o620 }),
    ]);
    const { dir: root } = await extractBuffer(temps, tar, { privileged: isRoot() });
    assert.ok(lstatSync(join(root, 'pipe')).isFIFO());
    assert.equal(mode(join(root, 'pipe')), isRoot() ? 0o620 : 0o620 | 0o400);
    if (!isRoot()) return;
    const null_ = lstatSync(join(root, 'null'));
    assert.ok(null_.isCharacterDevice());
    assert.equal(native.major(null_.rdev), 1);
    assert.equal(native.minor(null_.rdev), 3);
    assert.equal(null_.mode & 0o7777, 0o666);
    const sda = lstatSync(join(root, 'sda'));
    assert.ok(sda.isBlockDevice());
    assert.equal(native.major(sda.rdev), 8);
    assert.equal(sda.gid, 6);
    assert.ok(lstatSync(join(root, 'wh')).isCharacterDevice());
  });

  it('mtimes with nanoseconds on files, directories, symlinks and devices', async () => {
    const ns = '1600000000.123456789';
    const tar = new RawTar()
      .pax({ mtime: ns })
      .dir('d')
      .pax({ mtime: ns })
      .file('d/f', 'x')
      .pax({ mtime: ns })
      .symlink('l', 'd')
      .pax({ mtime: ns })
      .entry({ name: 'p', typeflag: '6' })
      .end()
      .toBuffer();
    const { dir: root } = await extractBuffer(temps, tar);
    for (const name of ['d', 'd/f', 'l', 'p']) {
      assert.equal(lstatSync(join(root, name), { bigint: true }).mtimeNs, 1_600_000_000_123_456_789n, name);
    }
  });

  it('xattrs on files, directories and symlinks (trusted.* on a symlink as root)', async () => {
    const value = Buffer.from([0x80, 0x00, 0xff]);
    const tar = new RawTar()
      .pax({ 'SCHILY.xattr.user.f': value })
      .file('f', 'x')
      .pax({ 'SCHILY.xattr.user.d': value, 'SCHILY.xattr.trusted.overlay.opaque': 'y' })
      .dir('d')
      .pax({ 'SCHILY.xattr.trusted.l': value })
      .symlink('l', 'f')
      .end()
      .toBuffer();
    const { dir: root } = await extractBuffer(temps, tar);
    assert.deepEqual(native.lgetxattrSync(join(root, 'f'), 'user.f'), value);
    assert.deepEqual(native.lgetxattrSync(join(root, 'd'), 'user.d'), value);
    if (isRoot()) {
      assert.equal(native.lgetxattrSync(join(root, 'd'), 'trusted.overlay.opaque').toString(), 'y');
      assert.deepEqual(native.lgetxattrSync(join(root, 'l'), 'trusted.l'), value);
    }
  });

  it('contiguous files (type 7) are regular files', async () => {
    const tar = new RawTar().entry({ name: 'c', typeflag: '7' }, 'contig').end().toBuffer();
    const { dir: root } = await extractBuffer(temps, tar);
    assert.equal(readFileSync(join(root, 'c'), 'utf8'), 'contig');
  });

  it('unknown entry types are refused with ERR_LAYER_UNSUPPORTED', async () => {
    const tar = new RawTar().entry({ name: 'v', typeflag: 'V' }).end().toBuffer();
    const err = await extractError(temps, tar);
    assert.ok(isLayerError(err, 'ERR_LAYER_UNSUPPORTED'), String(err));
    assert.match(err.message, /"v"/);
  });
});

describe('GNU sparse files', () => {
  for (const version of ['0.0', '0.1', '1.0']) {
    it(`PAX sparse ${version} (GNU tar --sparse): holes are not inflated`, async () => {
      const src = await temps.make('sparse-src');
      const path = join(src, 'sparse');
      const fd = openSync(path, 'w');
      writeSync(fd, Buffer.from('head'), 0, 4, 4096);
      writeSync(fd, Buffer.alloc(70_000, 0x42), 0, 70_000, 5_000_000);
      closeSync(fd);
      truncateSync(path, 64 * 1024 * 1024);
      const tarPath = join(await temps.make('sparse'), 'layer.tar');
      run('tar', ['--sparse', `--sparse-version=${version}`, '--format=pax', '-C', src, '-cf', tarPath, 'sparse']);
      const { dir: root, result } = await extractBuffer(temps, readFileSync(tarPath));
      assert.ok(result.uncompressedSize < 200_000, 'the archive stores only the data');
      const out = join(root, 'sparse');
      const st = statSync(out);
      assert.equal(st.size, 64 * 1024 * 1024);
      assert.ok(st.blocks * 512 < 1024 * 1024, `extracted file is sparse (${st.blocks} blocks)`);
      assert.deepEqual(readFileSync(out), readFileSync(path));
    });
  }

  it('a sparse map that does not match the stored data is corruption', async () => {
    const tar = new RawTar()
      .pax({ 'GNU.sparse.size': '100', 'GNU.sparse.map': '0,10,50,10' })
      .file('s', Buffer.alloc(15, 1))
      .end()
      .toBuffer();
    const err = await extractError(temps, tar);
    assert.ok(isLayerError(err, 'ERR_LAYER_CORRUPT'), String(err));
  });
});
