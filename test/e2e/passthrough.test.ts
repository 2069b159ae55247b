// FUSE passthrough through real layerfs mounts: the kernel reads lower files itself (Linux 6.9+,
// as root), which the serving process's own read counter (/proc/PID/io, rchar) shows: it stays
// flat while a lower file is read through the mount. The mount runs in a child process
// (test/helpers/mount.ts). Needs root and /dev/fuse.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc, readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { codeOf } from '../helpers/clients.js';
import { buildLayer, file, hardlink } from '../helpers/layers.js';
import { withMount } from '../helpers/mount.js';
import { TempDirs, isMounted } from '../helpers/tmp.js';

const BIG = 16 * 1024 * 1024;

/** Bytes the process has read so far (through any read-like call). */
function bytesReadBy(pid: number): number {
  const line = readFileSync(`/proc/${pid}/io`, 'utf8').split('\n').find((l) => l.startsWith('rchar:'));
  return Number(line!.split(/\s+/)[1]);
}

/** How many bytes `pid` read while `work` ran. */
async function readDuring(pid: number, work: () => Promise<unknown>): Promise<number> {
  const before = bytesReadBy(pid);
  await work();
  return bytesReadBy(pid) - before;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');


function kernelHasPassthrough(): boolean {
  const [major = 0, minor = 0] = release().split('.').map(Number);
  return major > 6 || (major === 6 && minor >= 9);
}

describe('FUSE passthrough: the kernel reads lower files itself', { skip: kernelHasPassthrough() ? false : 'needs Linux 6.9+' }, () => {
  const tmp = new TempDirs();
  let lower: string;
  let big: Buffer;

  before(async () => {
    lower = await tmp.make('passthrough');
    big = randomBytes(BIG);
    await buildLayer(lower, [file('big', big), file('small', 'old'), file('a', 'linked'), hardlink('b', 'a'), file('t1', 'old'), file('t2', 'old'), file('t3', 'old')]);
  });
  after(() => tmp.cleanup());

  it('on a read-only mount (the default there): the daemon reads none of the file', async () => {
    await withMount({ lowers: [lower], mountpoint: await tmp.make() }, async (mnt, { pid }) => {
      let data = Buffer.alloc(0);
      const read = await readDuring(pid, async () => (data = await fs.readFile(join(mnt, 'big'))));
      assert.equal(sha256(data), sha256(big));
      assert.ok(read < BIG / 16, `the daemon read ${read} bytes for a ${BIG}-byte file`);
    });
  });

  it('with --no-passthrough every byte goes through the daemon (what the counter above tells apart)', async () => {
    await withMount({ lowers: [lower], mountpoint: await tmp.make(), extraArgs: ['--no-passthrough'] }, async (mnt, { pid }) => {
      let data = Buffer.alloc(0);
      const read = await readDuring(pid, async () => (data = await fs.readFile(join(mnt, 'big'))));
      assert.equal(sha256(data), sha256(big));
      assert.ok(read >= BIG, `the daemon read only ${read} bytes of ${BIG}`);
    });
  });

  it('a writable mount has none by default: a read-only fd opened before a copy-up reads what is written after it', async () => {
    const upper = await tmp.make();
    await withMount({ lowers: [lower], upper, workdir: await tmp.make(), mountpoint: await tmp.make() }, async (mnt, { pid }) => {
      const read = await readDuring(pid, () => fs.readFile(join(mnt, 'big')));
      assert.ok(read >= BIG, `the daemon read only ${read} bytes of ${BIG}`);
      const reader = await fs.open(join(mnt, 'small'), 'r');
      try {
        assert.equal((await reader.read(Buffer.alloc(16), 0, 16, 0)).bytesRead, 3);
        await fs.writeFile(join(mnt, 'small'), 'new!');
        const buf = Buffer.alloc(16);
        const { bytesRead } = await reader.read(buf, 0, 16, 0);
        assert.equal(buf.subarray(0, bytesRead).toString(), 'new!');
      } finally {
        await reader.close();
      }
    });
    assert.equal(await fs.readFile(join(upper, 'small'), 'utf8'), 'new!');
    assert.equal(await fs.readFile(join(lower, 'small'), 'utf8'), 'old');
  });

  it('a writable mount with --passthrough: a lower file open for reading can still be changed; that descriptor keeps reading the lower file', async () => {
    const upper = await tmp.make();
    const mounted = { lowers: [lower], upper, workdir: await tmp.make(), mountpoint: await tmp.make(), extraArgs: ['--passthrough'] };
    const readAll = async (h: fs.FileHandle) => {
      const buf = Buffer.alloc(64);
      const { bytesRead } = await h.read(buf, 0, 64, 0);
      return buf.subarray(0, bytesRead).toString();
    };
    await withMount(mounted, async (mnt, { pid }) => {
      const read = await readDuring(pid, () => fs.readFile(join(mnt, 'big')));
      assert.ok(read < BIG / 16, `the daemon read ${read} bytes for a ${BIG}-byte file`);

      const path = join(mnt, 'small');
      const reader = await fs.open(path, 'r');
      try {
        assert.equal(await readAll(reader), 'old');
        // The kernel cannot give this inode a second backing file: the open is retried on a
        // kernel inode of its own (the daemon answers ESTALE; the caller never sees it).
        const writer = await fs.open(path, 'r+');
        try {
          await writer.write('new!', 0);
          assert.equal(await readAll(writer), 'new!');
        } finally {
          await writer.close();
        }
        assert.equal(await fs.readFile(path, 'utf8'), 'new!', 'a new open reads the copied-up file');
        assert.equal(await readAll(reader), 'old', 'the descriptor opened before keeps reading the lower file');
        await fs.writeFile(path, 'NEW!');
        assert.equal(await fs.readFile(path, 'utf8'), 'NEW!');
        // The old inode reached again through /proc cannot be retried elsewhere: refused.
        assert.equal(await codeOf(() => fs.open(`/proc/self/fd/${reader.fd}`, 'r+').then((h) => h.close())), 'ETXTBSY');
        assert.equal(await readAll(reader), 'old');
      } finally {
        await reader.close();
      }
      // Each other way of changing a file's content, first thing while a reader holds it.
      const changes: Array<[string, (p: string) => Promise<unknown>, string]> = [
        ['t1', (p) => fs.truncate(p, 2), 'ol'],
        ['t2', (p) => fs.open(p, fsc.O_RDONLY | fsc.O_TRUNC).then((h) => h.close()), ''],
        ['t3', (p) => fs.writeFile(p, 'new'), 'new'],
      ];
      for (const [name, change, after] of changes) {
        const held = await fs.open(join(mnt, name), 'r');
        try {
          await change(join(mnt, name));
          assert.equal(await fs.readFile(join(mnt, name), 'utf8'), after, name);
          assert.equal(await readAll(held), 'old', `${name}: the reader opened before`);
        } finally {
          await held.close();
        }
      }
      // Opened while a writer holds the file, a reader goes through the daemon and sees its writes.
      const writer = await fs.open(path, 'r+');
      try {
        const again = await fs.open(path, 'r');
        try {
          await writer.write('MORE', 0);
          assert.equal(await readAll(again), 'MORE');
        } finally {
          await again.close();
        }
      } finally {
        await writer.close();
      }
      // A lower file whose reader is open: a metadata copy-up alone changes no content, and
      // later readers share the lower file with it.
      const other = join(mnt, 'a');
      const held = await fs.open(other, 'r');
      try {
        await fs.chmod(other, 0o600);
        assert.equal((await fs.stat(other)).mode & 0o777, 0o600);
        assert.equal(await fs.readFile(other, 'utf8'), 'linked');
      } finally {
        await held.close();
      }
    });
    assert.equal(await fs.readFile(join(upper, 'small'), 'utf8'), 'MORE');
    assert.equal(await fs.readFile(join(lower, 'small'), 'utf8'), 'old', 'the lower file is never written');
  });

  it('many files renewed, then the kernel\'s dentries and inodes dropped: the mount keeps serving the right files', async () => {
    const layer = await tmp.make();
    const names = Array.from({ length: 40 }, (_, i) => `f${i}`);
    await buildLayer(layer, names.map((n) => file(n, `lower ${n}`)));
    const upper = await tmp.make();
    const mounted = { lowers: [layer], upper, workdir: await tmp.make(), mountpoint: await tmp.make(), extraArgs: ['--passthrough'] };
    await withMount(mounted, async (mnt) => {
      for (const n of names) {
        const reader = await fs.open(join(mnt, n), 'r');
        try {
          await fs.appendFile(join(mnt, n), ' changed');
        } finally {
          await reader.close();
        }
      }
      await fs.writeFile('/proc/sys/vm/drop_caches', '2'); // FORGETs for both kernel inodes of each
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (const n of names) assert.equal(await fs.readFile(join(mnt, n), 'utf8'), `lower ${n} changed`);
      await fs.rename(join(mnt, 'f0'), join(mnt, 'renamed'));
      await fs.link(join(mnt, 'f1'), join(mnt, 'f1-link'));
      assert.equal((await fs.stat(join(mnt, 'f1'))).nlink, 2);
      await fs.unlink(join(mnt, 'f2'));
      assert.deepEqual((await fs.readdir(mnt)).sort(), [...names.filter((n) => n !== 'f0' && n !== 'f2'), 'f1-link', 'renamed'].sort());
      assert.equal(await fs.readFile(join(mnt, 'renamed'), 'utf8'), 'lower f0 changed');
    });
  });

  it('concurrent opens of one file and of two hardlinked names share the lower file', async () => {
    await withMount({ lowers: [lower], mountpoint: await tmp.make() }, async (mnt, { pid }) => {
      const read = await readDuring(pid, async () => {
        const handles = await Promise.all([fs.open(join(mnt, 'big')), fs.open(join(mnt, 'big')), fs.open(join(mnt, 'a')), fs.open(join(mnt, 'b'))]);
        try {
          const [one, two] = await Promise.all([handles[0]!.readFile(), handles[1]!.readFile()]);
          assert.equal(sha256(one), sha256(big));
          assert.equal(sha256(two), sha256(big));
          assert.equal((await handles[2]!.readFile()).toString(), 'linked');
          assert.equal((await handles[3]!.readFile()).toString(), 'linked');
        } finally {
          await Promise.all(handles.map((h) => h.close()));
        }
      });
      assert.ok(read < BIG / 8, `the daemon read ${read} bytes`);
    });
  });

  it('a lower layer on a stacked filesystem (overlayfs) is read through the daemon instead', async () => {
    const stacked = await tmp.make();
    const empty = await tmp.make();
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower}:${empty}`, stacked]);
    try {
      await withMount({ lowers: [stacked], mountpoint: await tmp.make() }, async (mnt, { pid }) => {
        let data = Buffer.alloc(0);
        const read = await readDuring(pid, async () => (data = await fs.readFile(join(mnt, 'big'))));
        assert.equal(sha256(data), sha256(big));
        assert.ok(read >= BIG, `the daemon read only ${read} bytes of ${BIG}`);
      });
    } finally {
      if (isMounted(stacked)) execFileSync('umount', [stacked]);
    }
  });
});
