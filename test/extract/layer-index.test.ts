// The metadata index: one record per name, the truth kept when extraction is unprivileged,
// streaming reader, and verifyLayerAgainstIndex (layerfs check) catching every kind of change.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { isLayerError } from '../../src/extract/errors.js';
import { readLayerIndex, readLayerIndexHeader, type LayerIndexRecord } from '../../src/extract/layer-index.js';
import { verifyLayerAgainstIndex, type VerifyProblemKind } from '../../src/extract/verify-layer.js';
import * as native from '../../src/native/index.js';
import { chardev, dir, fifo, file, gzip, hardlink, packTar, RawTar, symlink } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { extractBuffer, isRoot } from './support.js';

const temps = new TempDirs();
after(() => temps.cleanup());

async function records(indexPath: string): Promise<Map<string, LayerIndexRecord>> {
  const map = new Map<string, LayerIndexRecord>();
  for await (const r of readLayerIndex(indexPath)) map.set(r.path, r);
  return map;
}

const CAPABILITY = Buffer.from('01000002ffffffff00000000ffffffff00000000', 'hex');

async function sampleLayer(): Promise<Buffer> {
  const rich = new RawTar()
    .pax({ 'SCHILY.xattr.user.tag': Buffer.from([0xff, 0x00]), 'SCHILY.xattr.security.capability': CAPABILITY, mtime: '1600000000.5' })
    .file('bin/ping', 'ping', { mode: 0o4755, uid: 0, gid: 0 })
    .pax({ 'SCHILY.xattr.user.on-symlink': 'v', 'SCHILY.xattr.trusted.t': 'w' })
    .symlink('bin/link', '/bin/ping')
    // mode 0 by hand: tar-stream's pack() writes 0 as 0644.
    .file('home/user/secret', 'top secret', { mode: 0o000, uid: 1000, gid: 1000 })
    .end()
    .toBuffer();
  const tar = await packTar([
    dir('bin', { mode: 0o755 }),
    dir('home/user/ro', { mode: 0o555, uid: 1000, gid: 1000 }),
    file('etc/shadow', 'x', { mode: 0o640, uid: 0, gid: 42 }),
    hardlink('etc/shadow-', 'etc/shadow'),
    chardev('dev/null', 1, 3, { mode: 0o666 }),
    fifo('run/fifo', { mode: 0o600, uid: 5 }),
    file('.wh.removed', ''),
  ]);
  return Buffer.concat([tar.subarray(0, tar.length - 1024), rich]);
}

describe('layer index records', () => {
  it('describe every name: type, mode, owner, size, mtime, inode, nlink, rdev, target, xattrs, sha256', async () => {
    const blob = gzip(await sampleLayer());
    const { dir: root, indexPath, result } = await extractBuffer(temps, blob, { privileged: isRoot(), indexContentDigests: true });
    const header = await readLayerIndexHeader(indexPath);
    assert.equal(header.diffId, result.diffId);
    assert.equal(header.digest, result.digest);
    assert.equal(header.compression, 'gzip');
    assert.equal(header.entries, result.entries);
    const index = await records(indexPath);
    assert.equal(header.records, index.size);
    assert.deepEqual([...index.keys()].sort(), [
      '', '.wh.removed', 'bin', 'bin/link', 'bin/ping', 'dev', 'dev/null', 'etc', 'etc/shadow', 'etc/shadow-',
      'home', 'home/user', 'home/user/ro', 'home/user/secret', 'run', 'run/fifo',
    ]);
    const ping = index.get('bin/ping')!;
    assert.equal(ping.type, 'file');
    assert.equal(ping.mode, 0o4755);
    assert.equal(ping.size, 4);
    assert.equal(ping.mtimeNs, 1_600_000_000_500_000_000n);
    assert.equal(ping.ino, lstatSync(join(root, 'bin/ping')).ino);
    assert.equal(ping.sha256, createHash('sha256').update('ping').digest('hex'));
    assert.deepEqual(ping.xattrs?.get('user.tag'), Buffer.from([0xff, 0x00]));
    assert.deepEqual(ping.xattrs?.get('security.capability'), CAPABILITY);
    const link = index.get('bin/link')!;
    assert.equal(link.type, 'symlink');
    assert.equal(link.linkTarget?.toString(), '/bin/ping');
    assert.equal(link.size, 9);
    assert.deepEqual(link.xattrsNotApplied, ['user.on-symlink'], 'user.* xattrs are not allowed on symlinks: kept in the index');
    const shadow = index.get('etc/shadow')!;
    const shadow2 = index.get('etc/shadow-')!;
    assert.equal(shadow.ino, shadow2.ino);
    assert.equal(shadow.nlink, 2);
    assert.equal(shadow2.nlink, 2);
    assert.equal(shadow2.hardlinkTo, 'etc/shadow');
    assert.equal(shadow2.gid, 42);
    assert.equal(shadow2.mode, 0o640);
    const devNull = index.get('dev/null')!;
    assert.equal(devNull.type, 'char');
    assert.equal(devNull.devMajor, 1);
    assert.equal(devNull.devMinor, 3);
    assert.equal(index.get('run/fifo')?.type, 'fifo');
    assert.equal(index.get('home/user/secret')?.uid, 1000);
    assert.equal(index.get('home/user/secret')?.mode, 0o000);
    assert.equal(index.get('')?.nlink, 2 + 5);
    assert.equal(index.get('home')?.implicit, true);
    assert.equal(index.get('bin')?.implicit, undefined);
    assert.deepEqual(readdirSync(dirname(indexPath)).sort(), ['layer', 'layer.index'], 'no journal or temp file left');
  });

  it('record sha256 is the content digest, when asked for', async () => {
    const tar = await packTar([file('f', 'abc')]);
    const on = await records((await extractBuffer(temps, tar, { indexContentDigests: true })).indexPath);
    assert.equal(on.get('f')?.sha256, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const off = await records((await extractBuffer(temps, tar)).indexPath);
    assert.equal(off.get('f')?.sha256, undefined);
  });

  it('privileged: false keeps the real owners, modes and devices in the index only', async () => {
    const { dir: root, indexPath } = await extractBuffer(temps, await sampleLayer(), { privileged: false });
    const header = await readLayerIndexHeader(indexPath);
    assert.equal(header.privileged, false);
    const index = await records(indexPath);
    const devNull = index.get('dev/null')!;
    assert.equal(devNull.type, 'char');
    assert.equal(devNull.placeholder, true);
    assert.ok(lstatSync(join(root, 'dev/null')).isFile(), 'a placeholder file on disk');
    assert.equal(index.get('home/user/secret')?.mode, 0o000);
    assert.equal(lstatSync(join(root, 'home/user/secret')).mode & 0o777, 0o400, 'owner can read it on disk');
    assert.equal(index.get('home/user/ro')?.mode, 0o555);
    assert.equal(lstatSync(join(root, 'home/user/ro')).mode & 0o777, 0o755);
    assert.equal(index.get('run/fifo')?.uid, 5);
    const report = await verifyLayerAgainstIndex(root, indexPath, { content: true });
    assert.deepEqual(report.problems, []);
  });

  it('a real unprivileged extraction (uid 65534) records what the kernel refused', async (t) => {
    if (!isRoot()) {
      t.skip('needs root to switch to uid 65534');
      return;
    }
    const base = await temps.make('nobody');
    const layer = join(base, 'layer');
    mkdirSync(layer);
    const tarPath = join(base, 'layer.tar');
    writeFileSync(tarPath, await sampleLayer());
    chownSync(base, 65534, 65534);
    chownSync(layer, 65534, 65534);
    const here = dirname(fileURLToPath(import.meta.url));
    const script = `
      import { createReadStream } from 'node:fs';
      import { extractLayer } from ${JSON.stringify(join(here, '../../src/extract/index.ts'))};
      const r = await extractLayer(createReadStream(${JSON.stringify(tarPath)}), ${JSON.stringify(layer)}, { indexPath: ${JSON.stringify(join(base, 'index'))} });
      console.log(JSON.stringify(r));`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      uid: 65534,
      gid: 65534,
      cwd: join(here, '../..'), // where tsx resolves
      encoding: 'utf8',
      env: { ...process.env, HOME: base },
    });
    assert.equal(child.status, 0, child.stderr);
    const index = await records(join(base, 'index'));
    const ping = index.get('bin/ping')!;
    assert.equal(ping.uid, 0);
    assert.equal(ping.mode, 0o4755);
    assert.deepEqual(ping.xattrs?.get('security.capability'), CAPABILITY, 'the capability survives in the index');
    assert.deepEqual(ping.xattrsNotApplied, ['security.capability']);
    assert.deepEqual(native.lgetxattrSync(join(layer, 'bin/ping'), 'user.tag'), Buffer.from([0xff, 0x00]));
    assert.equal(lstatSync(join(layer, 'bin/ping')).uid, 65534);
    assert.equal(index.get('dev/null')?.placeholder, true);
    assert.equal(index.get('etc/shadow')?.gid, 42);
    assert.equal((await readLayerIndexHeader(join(base, 'index'))).privileged, false);
    const report = await verifyLayerAgainstIndex(layer, join(base, 'index'), { content: true });
    assert.deepEqual(report.problems, []);
  });
});

describe('readLayerIndex', () => {
  it('streams records and refuses truncated or foreign files', async () => {
    const { indexPath } = await extractBuffer(temps, await packTar([file('a', '1'), file('b', '2')]));
    const text = readFileSync(indexPath, 'utf8');
    const lines = text.trimEnd().split('\n');
    const broken = join(dirname(indexPath), 'broken.index');
    const cases: Array<[string, string]> = [
      ['no trailer', `${lines.slice(0, -1).join('\n')}\n`],
      ['cut mid-line', text.slice(0, text.length - 10)],
      ['wrong count', `${lines.slice(0, 2).join('\n')}\n${lines.at(-1)}\n`],
      ['not an index', 'hello\n'],
      ['empty', ''],
      ['bad record', `${lines[0]}\n{"path":1}\n${lines.at(-1)}\n`],
    ];
    for (const [what, content] of cases) {
      writeFileSync(broken, content);
      await assert.rejects(
        (async () => {
          for await (const r of readLayerIndex(broken)) void r;
        })(),
        (err) => isLayerError(err, 'ERR_LAYER_INDEX_CORRUPT'),
        what,
      );
    }
  });
});

describe('verifyLayerAgainstIndex', () => {
  async function tamper(change: (root: string) => void, options = { content: false }): Promise<VerifyProblemKind[]> {
    const tar = await packTar([
      file('f', 'content'),
      file('g', 'same size'),
      symlink('s', 'target'),
      file('h1', 'linked'),
      hardlink('h2', 'h1'),
      dir('d'),
      file('d/x', 'x'),
      file('x', 'xattr', { pax: { 'SCHILY.xattr.user.a': 'b' } }),
    ]);
    const { dir: root, indexPath } = await extractBuffer(temps, tar, { indexContentDigests: true });
    const clean = await verifyLayerAgainstIndex(root, indexPath, { content: true });
    assert.deepEqual(clean.problems, []);
    assert.equal(clean.contentChecked, 6);
    change(root);
    const report = await verifyLayerAgainstIndex(root, indexPath, options);
    assert.equal(report.ok, report.problems.length === 0);
    return report.problems.map((p) => p.kind).sort();
  }

  it("detects missing and extra names (and the parent directory's new mtime)", async () => {
    assert.deepEqual(await tamper((root) => unlinkSync(join(root, 'f'))), ['missing', 'mtime']);
    assert.deepEqual(await tamper((root) => writeFileSync(join(root, 'd/new'), '')), ['extra', 'mtime']);
  });

  it('detects type, size, mode, mtime and symlink target changes', async () => {
    assert.ok((await tamper((root) => (rmSync(join(root, 'f')), mkdirSync(join(root, 'f'))))).includes('type'));
    assert.ok((await tamper((root) => writeFileSync(join(root, 'f'), 'longer content'))).includes('size'));
    assert.deepEqual(await tamper((root) => chmodSync(join(root, 'f'), 0o600)), ['mode']);
    assert.deepEqual(await tamper((root) => native.lutimensSync(join(root, 'f'), native.TIME_NOW, native.TIME_NOW)), ['mtime']);
    const retarget = await tamper((root) => {
      const st = lstatSync(join(root, 's'), { bigint: true });
      unlinkSync(join(root, 's'));
      symlinkSync('elsewhere', join(root, 's'));
      native.lutimensSync(join(root, 's'), native.TIME_NOW, native.timespecFromNs(st.mtimeNs));
    });
    assert.ok(retarget.includes('link-target') && retarget.includes('size'), String(retarget));
  });

  it('detects content changes only when asked (same size, same mtime)', async () => {
    const change = (root: string): void => {
      const path = join(root, 'g');
      const st = lstatSync(path, { bigint: true });
      writeFileSync(path, 'SAME SIZE');
      native.lutimensSync(path, native.TIME_NOW, native.timespecFromNs(st.mtimeNs));
    };
    assert.deepEqual(await tamper(change), []);
    assert.deepEqual(await tamper(change, { content: true }), ['content']);
  });

  it('detects broken hardlink groups and changed xattrs', async () => {
    const unlinked = await tamper((root) => {
      const path = join(root, 'h2');
      const st = lstatSync(path, { bigint: true });
      renameSync(path, join(root, 'tmp'));
      writeFileSync(path, readFileSync(join(root, 'tmp')));
      unlinkSync(join(root, 'tmp'));
      chmodSync(path, Number(st.mode) & 0o7777);
      native.lutimensSync(path, native.TIME_NOW, native.timespecFromNs(st.mtimeNs));
    });
    assert.ok(unlinked.includes('hardlink'), String(unlinked));
    assert.deepEqual(await tamper((root) => native.lsetxattrSync(join(root, 'x'), 'user.a', Buffer.from('c'))), ['xattr']);
  });
});
