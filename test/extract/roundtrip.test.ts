// Round trip: archives written by GNU tar, extracted by us, dumped (path type mode uid gid size
// sha256 linktarget rdev xattrs) and compared with the listing of the same archive by an
// independent reader (Python's tarfile).
import assert from 'node:assert/strict';
import { chmodSync, chownSync, linkSync, mkdirSync, readFileSync, symlinkSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { verifyLayerAgainstIndex } from '../../src/extract/verify-layer.js';
import * as native from '../../src/native/index.js';
import { TempDirs } from '../helpers/tmp.js';
import { dumpTree, extractBuffer, isRoot, pythonListing, run, type DumpEntry } from './support.js';

const temps = new TempDirs();
after(() => temps.cleanup());

/** Compares our dump with the listing (the root and omitted parents only exist in the dump). */
function assertSameTree(dump: Map<string, DumpEntry>, listing: Map<string, DumpEntry>, compareOwners: boolean): void {
  const strip = (e: DumpEntry): DumpEntry => (compareOwners ? e : { ...e, uid: 0, gid: 0 });
  for (const [path, expected] of listing) {
    const actual = dump.get(path);
    assert.ok(actual !== undefined, `missing ${path}`);
    assert.deepEqual(strip(actual), strip(expected), path);
  }
  // Names the tar does not list can only be the parents it omitted: directories 0755.
  for (const [path, entry] of dump) {
    if (!listing.has(path)) assert.ok(entry.type === 'dir' && entry.mode === 0o755, `extra ${path}`);
  }
}

async function roundTrip(tarArgs: string[], options: { compress?: 'gzip' | 'zstd' } = {}): Promise<void> {
  const tarPath = join(await temps.make('rt'), 'layer.tar');
  run('tar', [...tarArgs, '-cf', tarPath]);
  let blob: Buffer = readFileSync(tarPath);
  if (options.compress !== undefined) blob = run(options.compress, ['-c'], { input: blob });
  const { dir, indexPath } = await extractBuffer(temps, blob, { privileged: isRoot(), indexContentDigests: true });
  assertSameTree(dumpTree(dir), pythonListing(tarPath), isRoot());
  const report = await verifyLayerAgainstIndex(dir, indexPath, { content: true });
  assert.deepEqual(report.problems, []);
}

describe('round trip with GNU tar', () => {
  it('a tree with every entry type, odd modes, owners, xattrs, hardlinks, long and UTF-8 names', async () => {
    const src = await temps.make('rt-src');
    mkdirSync(join(src, 'dir/sub'), { recursive: true });
    writeFileSync(join(src, 'dir/file'), 'content');
    writeFileSync(join(src, 'dir/empty'), '');
    writeFileSync(join(src, 'dir/setuid'), '#!/bin/sh');
    chmodSync(join(src, 'dir/setuid'), 0o4755);
    writeFileSync(join(src, 'dir/setgid'), 'x');
    chmodSync(join(src, 'dir/setgid'), 0o2750);
    mkdirSync(join(src, 'sticky'));
    chmodSync(join(src, 'sticky'), 0o1777);
    linkSync(join(src, 'dir/file'), join(src, 'dir/hardlink'));
    symlinkSync('/absolute/target', join(src, 'abs-link'));
    symlinkSync('../dir/file', join(src, 'dir/sub/rel-link'));
    writeFileSync(join(src, `${'long-'.repeat(40)}name`), 'long');
    writeFileSync(join(src, 'ünïcödé-名前'), 'utf8');
    writeFileSync(join(src, 'xattr'), 'x');
    native.lsetxattrSync(join(src, 'xattr'), 'user.binary', Buffer.from([0, 0xff, 0x80, 0x0a]));
    const big = openSync(join(src, 'big'), 'w');
    writeSync(big, Buffer.alloc(5 * 1024 * 1024 + 1, 0x61));
    closeSync(big);
    run('mkfifo', [join(src, 'fifo')]);
    if (isRoot()) {
      run('mknod', [join(src, 'null'), 'c', '1', '3']);
      run('mknod', [join(src, 'loop'), 'b', '7', '0']);
      chownSync(join(src, 'dir/file'), 1234, 5678);
      chownSync(join(src, 'sticky'), 4000000000, 3);
      native.lsetxattrSync(join(src, 'xattr'), 'security.capability', Buffer.from('0100000200200000000000000000000000000000', 'hex'));
      native.lsetxattrSync(join(src, 'dir'), 'trusted.overlay.opaque', Buffer.from('y'));
    }
    await roundTrip(['--format=pax', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', src, '.']);
    await roundTrip(['--format=gnu', '--numeric-owner', '-C', src, '.'], { compress: 'gzip' });
    await roundTrip(['--format=pax', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', src, '.'], { compress: 'zstd' });
  });

  it('a slice of this system (/etc and /usr/share/zoneinfo)', async () => {
    await roundTrip(['--format=pax', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', '/', 'etc', 'usr/share/zoneinfo'], {
      compress: 'gzip',
    });
  });
});
