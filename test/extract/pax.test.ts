// PAX records kept byte for byte and applied (uid, gid, mtime with ns, size, path, linkpath,
// xattrs), on archives written by hand, by GNU tar (--format=pax --xattrs) and by Python's tarfile.
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isLayerError } from '../../src/extract/errors.js';
import { interpretPax, parsePaxRecords, parseTimeNs } from '../../src/extract/pax.js';
import * as native from '../../src/native/index.js';
import { paxBody, RawTar } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { extractBuffer, extractError, isRoot, run } from './support.js';

const temps = new TempDirs();
after(() => temps.cleanup());

const BINARY = Buffer.from([0x00, 0xff, 0x80, 0xc3, 0x0a, 0x3d, 0x20]); // NUL, high bytes, "\n", "=", " "
// A valid v2 file capability (the kernel checks the layout) whose bytes are >= 0x80.
const CAPABILITY = Buffer.from('01000002ffffffff00000000ffffffff00000000', 'hex');

describe('PAX record parser', () => {
  it('keeps values as raw bytes, including newline, "=" and bytes >= 0x80', () => {
    const body = paxBody([
      ['SCHILY.xattr.user.bin', BINARY],
      ['path', 'a/b'],
    ]);
    const records = parsePaxRecords(body);
    assert.equal(records.length, 2);
    assert.deepEqual(records[0]!.value, BINARY);
    const pax = interpretPax(records);
    assert.deepEqual(pax.xattrs.get('user.bin'), BINARY);
    assert.equal(pax.path?.toString(), 'a/b');
  });

  it('interprets uid, gid, size, mtime and atime exactly', () => {
    const pax = interpretPax(
      parsePaxRecords(
        paxBody({ uid: '3000000000', gid: '4294967295', size: '9007199254740991', mtime: '1700000000.123456789', atime: '-1.5' }),
      ),
    );
    assert.equal(pax.uid, 3_000_000_000);
    assert.equal(pax.gid, 4_294_967_295);
    assert.equal(pax.size, Number.MAX_SAFE_INTEGER);
    assert.equal(pax.mtimeNs, 1_700_000_000_123_456_789n);
    assert.equal(pax.atimeNs, -1_500_000_000n);
  });

  it('parses times with short, long and missing fractions', () => {
    assert.equal(parseTimeNs('mtime', '1'), 1_000_000_000n);
    assert.equal(parseTimeNs('mtime', '1.5'), 1_500_000_000n);
    assert.equal(parseTimeNs('mtime', '1.'), 1_000_000_000n);
    assert.equal(parseTimeNs('mtime', '1.1234567899999'), 1_123_456_789n);
  });

  it('rejects malformed records instead of silently dropping the rest', () => {
    for (const bad of ['10 path=ab\n', 'x path=a\n', '6 a=b\nX', '9 noequal\n', '8 =empty\n']) {
      assert.throws(() => parsePaxRecords(Buffer.from(bad)), (err) => isLayerError(err, 'ERR_LAYER_CORRUPT'), bad);
    }
    assert.throws(() => interpretPax(parsePaxRecords(paxBody({ uid: '-1' }))), (err) => isLayerError(err, 'ERR_LAYER_CORRUPT'));
    assert.throws(() => interpretPax(parsePaxRecords(paxBody({ uid: '4294967296' }))), (err) => isLayerError(err, 'ERR_LAYER_CORRUPT'));
    assert.throws(() => interpretPax(parsePaxRecords(paxBody({ mtime: '1e9' }))), (err) => isLayerError(err, 'ERR_LAYER_CORRUPT'));
  });

  it('treats an empty value as "not set" (POSIX), except for xattrs', () => {
    const pax = interpretPax(parsePaxRecords(paxBody({ uid: '', path: '', 'SCHILY.xattr.user.empty': '' })));
    assert.equal(pax.uid, undefined);
    assert.equal(pax.path, undefined);
    assert.deepEqual(pax.xattrs.get('user.empty'), Buffer.alloc(0));
  });

  it('tolerates NUL padding after the last record', () => {
    const body = Buffer.concat([paxBody({ path: 'x' }), Buffer.alloc(20)]);
    assert.equal(parsePaxRecords(body).length, 1);
  });

  it('collects GNU sparse 0.0 offset/numbytes pairs in order', () => {
    const pax = interpretPax(
      parsePaxRecords(
        paxBody([
          ['GNU.sparse.size', '100'],
          ['GNU.sparse.numblocks', '2'],
          ['GNU.sparse.offset', '0'],
          ['GNU.sparse.numbytes', '10'],
          ['GNU.sparse.offset', '50'],
          ['GNU.sparse.numbytes', '5'],
        ]),
      ),
    );
    assert.deepEqual(pax.sparse, { version: '0.0', realSize: 100, map: [{ offset: 0, length: 10 }, { offset: 50, length: 5 }] });
  });
});

describe('PAX headers applied during extraction', () => {
  it('applies binary xattrs, uid/gid above 2^31, nanosecond mtime, path and linkpath', async () => {
    const longDir = `${'d'.repeat(120)}/${'e'.repeat(120)}`;
    const tar = new RawTar()
      .pax({
        path: `${longDir}/file`,
        uid: '3000000000',
        gid: '3000000001',
        mtime: '1700000000.123456789',
        'SCHILY.xattr.user.bin': BINARY,
        'SCHILY.xattr.trusted.x': Buffer.from([0xfe, 0x00, 0x01]),
      })
      .file('short-name-ignored', 'content')
      .pax({ linkpath: `/${'t'.repeat(300)}` })
      .symlink('link', 'short-target-ignored')
      .end()
      .toBuffer();
    const { dir, result } = await extractBuffer(temps, tar, { privileged: isRoot() });
    assert.equal(result.entries, 2);
    const path = join(dir, longDir, 'file');
    assert.equal(readFileSync(path, 'utf8'), 'content');
    const st = lstatSync(path, { bigint: true });
    assert.equal(st.mtimeNs, 1_700_000_000_123_456_789n);
    assert.deepEqual(native.lgetxattrSync(path, 'user.bin'), BINARY);
    if (isRoot()) {
      assert.equal(st.uid, 3_000_000_000n);
      assert.equal(st.gid, 3_000_000_001n);
      assert.deepEqual(native.lgetxattrSync(path, 'trusted.x'), Buffer.from([0xfe, 0x00, 0x01]));
    }
    assert.equal(readlinkSync(join(dir, 'link')), `/${'t'.repeat(300)}`);
  });

  it('applies a PAX size override (the header size field is wrong on purpose)', async () => {
    const data = Buffer.alloc(700, 0x61);
    const tar = new RawTar().pax({ size: '700' }).entry({ name: 'f', typeflag: '0', size: 1 }, data).end().toBuffer();
    const { dir } = await extractBuffer(temps, tar);
    assert.deepEqual(readFileSync(join(dir, 'f')), data);
  });

  it('applies global headers to every later entry, local ones win', async () => {
    const tar = new RawTar()
      .globalPax({ mtime: '1234567890.5', comment: 'git commit' })
      .file('a', 'x')
      .pax({ mtime: '1.25' })
      .file('b', 'y')
      .file('c', 'z')
      .end()
      .toBuffer();
    const { dir } = await extractBuffer(temps, tar);
    assert.equal(lstatSync(join(dir, 'a'), { bigint: true }).mtimeNs, 1_234_567_890_500_000_000n);
    assert.equal(lstatSync(join(dir, 'b'), { bigint: true }).mtimeNs, 1_250_000_000n);
    assert.equal(lstatSync(join(dir, 'c'), { bigint: true }).mtimeNs, 1_234_567_890_500_000_000n);
  });

  it('refuses global headers that would rename entries or change framing', async () => {
    const tar = new RawTar().globalPax({ path: 'x' }).file('a', 'x').end().toBuffer();
    const err = await extractError(temps, tar);
    assert.ok(isLayerError(err, 'ERR_LAYER_CORRUPT'), String(err));
  });

  it('reads GNU long names and long link targets (L/K records)', async () => {
    const name = `${'n'.repeat(200)}/file`;
    const target = `../${'t'.repeat(250)}`;
    const tar = new RawTar()
      .gnuLong('L', name)
      .file('ignored', 'long', { magic: 'gnu' })
      .gnuLong('L', 'sym')
      .gnuLong('K', target)
      .symlink('ignored2', 'ignored', { magic: 'gnu' })
      .end()
      .toBuffer();
    const { dir } = await extractBuffer(temps, tar);
    assert.equal(readFileSync(join(dir, name), 'utf8'), 'long');
    assert.equal(readlinkSync(join(dir, 'sym')), target);
  });
});

describe('archives from other writers', () => {
  it('GNU tar --format=pax --xattrs: binary xattrs, security.capability, ns mtime, long names', async (t) => {
    const src = await temps.make('gnutar-src');
    const longName = `${'x'.repeat(150)}.bin`;
    writeFileSync(join(src, longName), 'payload');
    native.lsetxattrSync(join(src, longName), 'user.bin', BINARY);
    if (isRoot()) native.lsetxattrSync(join(src, longName), 'security.capability', CAPABILITY);
    native.lutimensSync(join(src, longName), native.TIME_NOW, { sec: 1_600_000_000, nsec: 987_654_321 });
    const tarPath = join(await temps.make('gnutar'), 'layer.tar');
    run('tar', ['--format=pax', '--xattrs', '--xattrs-include=*', '-C', src, '-cf', tarPath, '.']);
    const { dir } = await extractBuffer(temps, readFileSync(tarPath));
    const path = join(dir, longName);
    assert.equal(readFileSync(path, 'utf8'), 'payload');
    assert.deepEqual(native.lgetxattrSync(path, 'user.bin'), BINARY);
    assert.equal(lstatSync(path, { bigint: true }).mtimeNs, 1_600_000_000_987_654_321n);
    if (isRoot()) assert.deepEqual(native.lgetxattrSync(path, 'security.capability'), CAPABILITY);
    else t.diagnostic('not root: security.capability not checked');
  });

  it("Python tarfile: hdrcharset=BINARY xattrs, uid 3000000000, fractional mtime, long paths", async () => {
    const tarPath = join(await temps.make('pytar'), 'layer.tar');
    const script = String.raw`
import tarfile, io, sys
def raw(b): return b.decode('utf-8', 'surrogateescape')
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:
    ti = tarfile.TarInfo('p/' + 'q' * 140 + '/f')
    data = b'python'
    ti.size = len(data); ti.uid = 3000000000; ti.gid = 7; ti.mode = 0o6755; ti.mtime = 1700000000.25
    ti.pax_headers = {'SCHILY.xattr.user.bin': raw(bytes([0, 255, 128, 195, 10, 61, 32])),
                      'SCHILY.xattr.security.capability': raw(bytes.fromhex(sys.argv[2]))}
    t.addfile(ti, io.BytesIO(data))
    l = tarfile.TarInfo('l'); l.type = tarfile.SYMTYPE; l.linkname = '/' + 'z' * 200
    t.addfile(l)
`;
    run('python3', ['-c', script, tarPath, CAPABILITY.toString('hex')]);
    const { dir } = await extractBuffer(temps, readFileSync(tarPath));
    const path = join(dir, 'p', 'q'.repeat(140), 'f');
    assert.equal(readFileSync(path, 'utf8'), 'python');
    assert.deepEqual(native.lgetxattrSync(path, 'user.bin'), BINARY);
    const st = lstatSync(path, { bigint: true });
    assert.equal(st.mtimeNs, 1_700_000_000_250_000_000n);
    if (isRoot()) {
      assert.equal(st.uid, 3_000_000_000n);
      assert.equal(st.gid, 7n);
      assert.equal(Number(st.mode) & 0o7777, 0o6755);
      assert.deepEqual(native.lgetxattrSync(path, 'security.capability'), CAPABILITY);
    }
    assert.equal(readlinkSync(join(dir, 'l')), `/${'z'.repeat(200)}`);
  });

  it('GNU tar --format=gnu: base-256 uid, long names', async () => {
    if (!isRoot()) return;
    const src = await temps.make('gnu-src');
    mkdirSync(join(src, 'd'.repeat(130)));
    writeFileSync(join(src, 'd'.repeat(130), 'f'), 'gnu');
    const tarPath = join(await temps.make('gnu'), 'layer.tar');
    run('tar', ['--format=gnu', '--owner=3000000000', '--group=5', '--numeric-owner', '-C', src, '-cf', tarPath, '.']);
    const { dir } = await extractBuffer(temps, readFileSync(tarPath));
    const st = lstatSync(join(dir, 'd'.repeat(130), 'f'));
    assert.equal(st.uid, 3_000_000_000);
    assert.equal(st.gid, 5);
  });
});
