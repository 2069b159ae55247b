// Errors reach callers of the mount as the right errno: the host's ENOSPC passes through, and an
// error without an errno becomes EIO (logged) rather than crashing the daemon.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { toErrno } from '../../src/fuse/errno.js';
import { FsError } from '../../src/errors.js';
import { withMount } from '../helpers/mount.js';
import { TempDirs } from '../helpers/tmp.js';

describe('errno mapping (the one place errors become errnos)', () => {
  it('passes errno codes through, from FsError and from Node system errors', () => {
    assert.equal(toErrno(new FsError('ENOSPC', 'write', '/x'), 'write', '/x'), -28);
    const nodeError = Object.assign(new Error('ENOTEMPTY: directory not empty'), { code: 'ENOTEMPTY' });
    assert.equal(toErrno(nodeError, 'rmdir', '/d'), -39);
  });
  it('answers EIO for anything that is not an errno', () => {
    assert.equal(toErrno(new TypeError('bug'), 'getattr', '/x'), -5);
    assert.equal(toErrno(Object.assign(new Error('x'), { code: 'ERR_SOMETHING' }), 'getattr', '/x'), -5);
    assert.equal(toErrno('a string', 'getattr', '/x'), -5);
  });
});

describe('a full upper filesystem', () => {
  const temps = new TempDirs();
  let root = '';
  let small = '';

  before(async () => {
    root = await temps.make('enospc');
    small = join(root, 'small');
    await mkdir(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    await mkdir(join(small, 'upper'));
    await mkdir(join(small, 'work'));
    await mkdir(join(root, 'lower'));
    await writeFile(join(root, 'lower', 'big.bin'), Buffer.alloc(2 * 1024 * 1024, 7));
    await mkdir(join(root, 'mnt'));
  });
  after(async () => {
    execFileSync('umount', ['-l', small]);
    await temps.cleanup();
  });

  it('reports ENOSPC for writes and for a copy-up that does not fit, and keeps serving', async () => {
    const opts = { lowers: [join(root, 'lower')], upper: join(small, 'upper'), workdir: join(small, 'work'), mountpoint: join(root, 'mnt') };
    await withMount(opts, async (mp) => {
      await assert.rejects(writeFile(join(mp, 'fill.bin'), Buffer.alloc(3 * 1024 * 1024, 1)), { code: 'ENOSPC' });
      await assert.rejects(
        (async () => {
          const handle = await open(join(mp, 'big.bin'), 'r+');
          await handle.close();
        })(),
        { code: 'ENOSPC' },
      );
      // The failed copy-up left nothing half-made: the lower file still reads whole.
      assert.equal((await readFile(join(mp, 'big.bin'))).length, 2 * 1024 * 1024);
      assert.deepEqual(execFileSync('ls', ['-A', join(small, 'work', 'work')]).toString(), '');
    });
  });
});
