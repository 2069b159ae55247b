// Directory listings the kernel keeps (the mount opens directories without a request and keeps
// every listing it reads): each change must still show in the next listing. Every directory is
// listed first, so the kernel holds all of them when the change is made; then the same changes
// are made in a plain host directory holding the same tree, and both are listed again. Names,
// types and inode numbers (d_ino, which must equal the name's st_ino) are compared.
// The mount runs in a child process (test/helpers/mount.ts). Needs root and /dev/fuse.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildLayer, dir, file, hardlink, symlink } from '../helpers/layers.js';
import { withMount } from '../helpers/mount.js';
import { TempDirs } from '../helpers/tmp.js';

const execFileP = promisify(execFile);

interface Listed {
  /** `type name` per entry, sorted: what readdir gives. */
  entries: string[];
  /** Entries whose d_ino differs from their st_ino. */
  inoMismatches: string[];
}

/** Lists every directory below root (readdir only, then an lstat of each entry to compare). */
async function listAll(root: string): Promise<Record<string, Listed>> {
  const script = `
import json, os, stat, sys
root = sys.argv[1]
out = {}
for top, dirs, files in os.walk(root):
    entries, bad = [], []
    with os.scandir(top) as it:
        for e in it:
            kind = 'd' if e.is_dir(follow_symlinks=False) else 'l' if e.is_symlink() else 'f' if e.is_file(follow_symlinks=False) else 'o'
            entries.append(kind + ' ' + e.name)
            if e.inode() != os.lstat(e.path).st_ino:
                bad.append(e.name)
    out[os.path.relpath(top, root)] = {'entries': sorted(entries), 'inoMismatches': sorted(bad)}
print(json.dumps(out))
`;
  const { stdout } = await execFileP('python3', ['-c', script, root], { timeout: 60_000, maxBuffer: 16 << 20 });
  return JSON.parse(stdout) as Record<string, Listed>;
}

/** Inode numbers of names, as readdir gives them (d_ino) and as lstat does. */
async function inodes(dirPath: string, names: string[]): Promise<Record<string, { dIno: number; stIno: number }>> {
  const script = `
import json, os, sys
d, names = sys.argv[1], sys.argv[2:]
listed = {e.name: e.inode() for e in os.scandir(d)}
print(json.dumps({n: {'dIno': listed[n], 'stIno': os.lstat(os.path.join(d, n)).st_ino} for n in names}))
`;
  const { stdout } = await execFileP('python3', ['-c', script, dirPath, ...names], { timeout: 30_000 });
  return JSON.parse(stdout) as Record<string, { dIno: number; stIno: number }>;
}

/** Changes of every kind, each in a directory the kernel has listed. */
async function change(root: string): Promise<void> {
  const at = (p: string) => join(root, p);
  await fs.writeFile(at('d/new'), 'n');
  await fs.mkdir(at('d/newdir'));
  await fs.unlink(at('d/a'));
  await fs.rm(at('gone'), { recursive: true });
  await fs.rename(at('d/b'), at('e/b-moved'));
  await fs.rename(at('tree'), at('e/tree-moved'));
  await fs.symlink('target', at('e/sym'));
  await fs.link(at('e/c'), at('d/c-link'));
  await fs.rename(at('e/c2'), at('e/c'));
  await fs.rmdir(at('e/empty'));
  await fs.writeFile(at('e/empty'), 'now a file');
  await fs.unlink(at('e/tree-moved/sub/leaf'));
  await fs.mkdir(at('e/tree-moved/sub/leaf'));
}

describe('listings the kernel keeps follow every change', () => {
  const tmp = new TempDirs();
  let lower: string;
  const spec = [
    file('d/a', 'a'),
    file('d/b', 'b'),
    file('d/keep', 'k'),
    file('e/c', 'c'),
    file('e/c2', 'c2'),
    dir('e/empty'),
    file('gone/x', 'x'),
    file('gone/deeper/y', 'y'),
    file('tree/sub/leaf', 'leaf'),
    symlink('tree/sub/link', '../sub'),
    file('links/one', 'linked'),
    hardlink('links/two', 'links/one'),
    file('links/other', 'other'),
  ];

  before(async () => {
    lower = await tmp.make('kept-listings');
    await buildLayer(lower, spec);
  });
  after(() => tmp.cleanup());

  it('after creating, removing and renaming names, files and whole lower directories, the listings equal a plain directory\'s', async () => {
    const plain = await tmp.make('kept-listings');
    await buildLayer(plain, spec);
    await change(plain);
    const expected = await listAll(plain);

    await withMount({ lowers: [lower], upper: await tmp.make('kept-listings'), workdir: await tmp.make('kept-listings'), mountpoint: await tmp.make('kept-listings') }, async (mnt) => {
      await listAll(mnt); // the kernel now keeps every listing
      await change(mnt);
      const seen = await listAll(mnt);
      assert.deepEqual(Object.keys(seen).sort(), Object.keys(expected).sort());
      for (const [path, listed] of Object.entries(expected)) {
        assert.deepEqual(seen[path]!.entries, listed.entries, `listing of ${path}`);
        assert.deepEqual(seen[path]!.inoMismatches, [], `d_ino and st_ino agree in ${path}`);
      }
    });
  });

  it('a hardlinked lower file that a write copies up shows its new inode number in the listing it was already in', async () => {
    await withMount({ lowers: [lower], upper: await tmp.make('kept-listings'), workdir: await tmp.make('kept-listings'), mountpoint: await tmp.make('kept-listings') }, async (mnt) => {
      const links = join(mnt, 'links');
      const before = await inodes(links, ['one', 'two', 'other']);
      assert.equal(before.one!.dIno, before.two!.dIno, 'one inode for both names');
      assert.equal(before.one!.stIno, before.one!.dIno);
      await fs.appendFile(join(links, 'one'), ' and changed');
      const after = await inodes(links, ['one', 'two', 'other']);
      assert.notEqual(after.one!.stIno, after.two!.stIno, 'the copy is a file of its own');
      assert.equal(after.one!.dIno, after.one!.stIno, 'readdir gives the new number');
      assert.equal(after.two!.dIno, after.two!.stIno);
      assert.equal(after.two!.stIno, before.two!.stIno, 'the other name keeps its number');
      assert.deepEqual(after.other, before.other);
      assert.equal(await fs.readFile(join(links, 'two'), 'utf8'), 'linked');
    });
  });
});
