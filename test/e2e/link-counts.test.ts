// Link counts through the other names of a hardlinked file, asked right after each change.
// libfuse 2's path API gives every name a kernel inode of its own that caches st_nlink for the
// whole attribute timeout, and nothing in a link, unlink or rename request names the others, so
// a stale count shows only when the stat comes within microseconds of the change's answer: the
// changes and stats run in one Python process, back to back. Changes are made in the mount's
// root directory (whose lock the request holds) and in a subdirectory, and the names asked are
// in both. The mount runs in a child process (test/helpers/mount.ts). Needs root and /dev/fuse.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildLayer, file } from '../helpers/layers.js';
import { mountForSuite } from '../helpers/mount.js';
import { TempDirs } from '../helpers/tmp.js';

const execFileP = promisify(execFile);

interface Observed {
  checks: number;
  stale: string[];
  final: Record<string, number>;
}

/**
 * In `workdir` (relative to the mount root): makes `f` with the names keep-<tag> in the root and
 * sub/keep-<tag>, then `rounds` times links five names to it, then removes them (unlink, rename of
 * another file over the name, unlink while open), asking both keep names' st_nlink after each.
 */
async function churn(mnt: string, workdir: string, tag: string, rounds: number): Promise<Observed> {
  const script = `
import json, os, sys
mnt, workdir, tag, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
w = os.path.join(mnt, workdir)
f = os.path.join(w, 'f-' + tag)
keeps = [os.path.join(mnt, 'keep-' + tag), os.path.join(mnt, 'sub', 'keep-' + tag)]
with open(f, 'w') as out: out.write('x')
for k in keeps: os.link(f, k)
checks, stale = 0, []
def check(expected, what):
    global checks
    for k in keeps:
        checks += 1
        got = os.lstat(k).st_nlink
        if got != expected: stale.append('%s: %s shows %d, not %d' % (what, os.path.relpath(k, mnt), got, expected))
names = [os.path.join(w, 'g%d-%s' % (i, tag)) for i in range(5)]
for r in range(rounds):
    for i, n in enumerate(names):
        os.link(f, n)
        check(4 + i, 'link %d.%d' % (r, i))
    for i, n in enumerate(names):
        if i % 3 == 0:
            os.unlink(n)
        elif i % 3 == 1:
            other = os.path.join(w, 'other-' + tag)
            with open(other, 'w') as out: out.write('o')
            os.rename(other, n)
            os.unlink(n)
        else:
            fd = os.open(n, os.O_RDONLY)
            os.unlink(n)
            check(7 - i, 'unlink of an open name %d.%d' % (r, i))
            os.close(fd)
        check(7 - i, 'remove %d.%d' % (r, i))
print(json.dumps({'checks': checks, 'stale': stale[:10], 'final': {os.path.relpath(k, mnt): os.lstat(k).st_nlink for k in keeps}}))
`;
  const { stdout } = await execFileP('python3', ['-c', script, mnt, workdir, tag, String(rounds)], { timeout: 120_000 });
  return JSON.parse(stdout) as Observed;
}

describe('link counts of the other names of a hardlinked file, right after each change', () => {
  const temps = new TempDirs();
  let mountpoint: string;
  let release: (() => Promise<void>) | undefined;

  before(async () => {
    const base = await temps.make('link-counts');
    const lower = await TempDirs.sub(base, 'lower');
    await buildLayer(lower, [file('lower-file', 'L')]);
    const upper = await TempDirs.sub(base, 'upper');
    const workdir = await TempDirs.sub(base, 'work');
    const mnt = await TempDirs.sub(base, 'mnt');
    ({ mountpoint, release } = await mountForSuite({ lowers: [lower], upper, workdir, mountpoint: mnt }));
    await mkdir(join(mountpoint, 'sub'));
  });

  after(async () => {
    try {
      await release?.();
    } finally {
      await temps.cleanup();
    }
  });

  for (const [where, workdir] of [['the mount\'s root directory', '.'], ['a subdirectory', 'sub']] as const) {
    it(`changes made in ${where}`, async () => {
      const tag = workdir === '.' ? 'root' : 'sub';
      const observed = await churn(mountpoint, workdir, tag, 100);
      assert.equal(observed.checks, 100 * (5 + 5 + 1) * 2, 'every change was checked through both names');
      assert.deepEqual(observed.stale, [], 'no name showed a stale link count');
      assert.deepEqual(observed.final, { [`keep-${tag}`]: 3, [`sub/keep-${tag}`]: 3 });
    });
  }
});
