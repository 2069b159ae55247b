// Real-filesystem tests for the native addon (no mocks). Needs root (mknod of
// devices, trusted.* xattrs, RENAME_WHITEOUT) and a filesystem with user xattrs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants as fsc, existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { constants as osc, tmpdir } from 'node:os';
import { join } from 'node:path';

import * as native from '../../src/native/index.js';

let root: string;
let counter = 0;

/** A fresh path inside the test's temp dir. */
function p(name: string): string {
  counter += 1;
  return join(root, `${counter}-${name}`);
}

async function touch(path: string, content = ''): Promise<string> {
  await fs.writeFile(path, content);
  return path;
}

/** Every byte value, with 0x00 and >= 0x80 bytes in it. */
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 7 + 3) & 0xff));

/** The value of one xattr as printed by getfattr (hex), without following links. */
function getfattrHex(path: string, name: string): string {
  const out = execFileSync('getfattr', ['-h', '--absolute-names', '-e', 'hex', '-n', name, path], {
    encoding: 'utf8',
  });
  const line = out.split('\n').find((l) => l.startsWith(`${name}=`));
  assert.ok(line, `getfattr printed no ${name}: ${out}`);
  return line.slice(name.length + 1);
}

/** Assert `promise` rejects with a Node-fs-shaped errno error. */
async function rejectsErrno(
  promise: Promise<unknown>,
  expected: { code: string; syscall: string; path?: string; dest?: string },
): Promise<native.NativeFsError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail(`expected ${expected.code}`),
    (err: unknown) => {
      caught = err;
    },
  );
  assertErrno(caught, expected);
  return caught as native.NativeFsError;
}

function assertErrno(err: unknown, expected: { code: string; syscall: string; path?: string; dest?: string }): void {
  assert.ok(err instanceof Error, 'not an Error');
  assert.ok(native.isNativeFsError(err));
  assert.equal(err.code, expected.code);
  // Negative errno, like Node's own fs errors.
  assert.equal(err.errno, -(osc.errno as Record<string, number>)[expected.code]!);
  assert.equal(err.syscall, expected.syscall);
  assert.equal(err.path, expected.path);
  assert.equal(err.dest, expected.dest);
  assert.ok(err.message.startsWith(`${expected.code}: `), err.message);
}

before(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'layerfs-native-'));
});

after(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('constants', () => {
  it('exports the kernel values', () => {
    assert.deepEqual({ ...native.constants }, {
      XATTR_CREATE: 1,
      XATTR_REPLACE: 2,
      RENAME_NOREPLACE: 1,
      RENAME_EXCHANGE: 2,
      RENAME_WHITEOUT: 4,
      UTIME_NOW: (1 << 30) - 1,
      UTIME_OMIT: (1 << 30) - 2,
      LOCK_SH: 1,
      LOCK_EX: 2,
      LOCK_NB: 4,
      LOCK_UN: 8,
    });
    assert.equal(native.UTIME_NOW, native.constants.UTIME_NOW);
    assert.equal(native.RENAME_WHITEOUT, 4);
  });
});

describe('xattrs', () => {
  it('round-trips binary values exactly (async), matching getfattr', async () => {
    const f = await touch(p('bin'));
    await native.lsetxattr(f, 'user.bin', ALL_BYTES);
    const got = await native.lgetxattr(f, 'user.bin');
    assert.ok(Buffer.isBuffer(got));
    assert.deepEqual(got, ALL_BYTES);
    assert.equal(getfattrHex(f, 'user.bin'), `0x${ALL_BYTES.toString('hex')}`);
  });

  it('round-trips binary values exactly (sync), reading what setfattr wrote', async () => {
    const f = await touch(p('bin-sync'));
    const value = Buffer.from([0x00, 0xff, 0x80, 0x00, 0x7f, 0xc3, 0x28, 0x00]);
    execFileSync('setfattr', ['-n', 'user.ext', '-v', `0x${value.toString('hex')}`, f]);
    assert.deepEqual(native.lgetxattrSync(f, 'user.ext'), value);
    native.lsetxattrSync(f, 'user.mine', value);
    assert.equal(getfattrHex(f, 'user.mine'), `0x${value.toString('hex')}`);
  });

  it('handles empty values and non-Buffer views', async () => {
    const f = await touch(p('views'));
    await native.lsetxattr(f, 'user.empty', Buffer.alloc(0));
    assert.equal((await native.lgetxattr(f, 'user.empty')).length, 0);
    await native.lsetxattr(f, 'user.u16', new Uint16Array([0x0201, 0x0403]));
    assert.deepEqual(await native.lgetxattr(f, 'user.u16'), Buffer.from(new Uint16Array([0x0201, 0x0403]).buffer));
    const bytes = new Uint8Array([9, 8, 7, 6, 5]);
    await native.lsetxattr(f, 'user.dv', new DataView(bytes.buffer, 1, 3));
    assert.deepEqual(await native.lgetxattr(f, 'user.dv'), Buffer.from([8, 7, 6]));
  });

  it('stores a 64 KiB value', async (t) => {
    const value = Buffer.alloc(64 * 1024);
    for (let i = 0; i < value.length; i++) value[i] = (i * 31 + (i >> 8)) & 0xff;
    // ext4 without ea_inode caps values at one block; tmpfs takes the full
    // XATTR_SIZE_MAX (64 KiB). Use the first candidate that accepts it.
    const dirs = [root];
    if (existsSync('/dev/shm')) dirs.push(await fs.mkdtemp('/dev/shm/layerfs-native-'));
    try {
      for (const dir of dirs) {
        const f = await touch(join(dir, 'big'));
        try {
          await native.lsetxattr(f, 'user.big', value);
        } catch (err) {
          if (native.isNativeFsError(err) && (err.code === 'ENOSPC' || err.code === 'E2BIG')) continue;
          throw err;
        }
        assert.deepEqual(await native.lgetxattr(f, 'user.big'), value);
        assert.deepEqual(native.lgetxattrSync(f, 'user.big'), value);
        assert.equal(getfattrHex(f, 'user.big'), `0x${value.toString('hex')}`);
        return;
      }
      t.skip('no filesystem here accepts 64 KiB xattr values');
    } finally {
      for (const dir of dirs.slice(1)) await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('lists and removes', async () => {
    const f = await touch(p('list'));
    await native.lsetxattr(f, 'user.a', Buffer.from('1'));
    native.lsetxattrSync(f, 'user.b', Buffer.from('2'));
    await native.lsetxattr(f, 'trusted.c', Buffer.from('3'));
    assert.deepEqual((await native.llistxattr(f)).sort(), ['trusted.c', 'user.a', 'user.b']);
    assert.deepEqual(native.llistxattrSync(f).sort(), ['trusted.c', 'user.a', 'user.b']);
    await native.lremovexattr(f, 'user.a');
    native.lremovexattrSync(f, 'trusted.c');
    assert.deepEqual(await native.llistxattr(f), ['user.b']);
    await rejectsErrno(native.lremovexattr(f, 'user.a'), { code: 'ENODATA', syscall: 'lremovexattr', path: f });
    const empty = await touch(p('none'));
    assert.deepEqual(await native.llistxattr(empty), []);
  });

  it('reports a missing attribute as ENODATA', async () => {
    const f = await touch(p('nodata'));
    const err = await rejectsErrno(native.lgetxattr(f, 'user.missing'), {
      code: 'ENODATA',
      syscall: 'lgetxattr',
      path: f,
    });
    assert.equal(err.errno, -61);
    assert.equal(err.message, `ENODATA: no data available, lgetxattr '${f}'`);
    assert.throws(() => native.lgetxattrSync(f, 'user.missing'), { code: 'ENODATA', errno: -61, syscall: 'lgetxattr', path: f });
  });

  it('honours XATTR_CREATE and XATTR_REPLACE', async () => {
    const f = await touch(p('flags'));
    await rejectsErrno(native.lsetxattr(f, 'user.x', Buffer.from('v'), native.XATTR_REPLACE), {
      code: 'ENODATA',
      syscall: 'lsetxattr',
      path: f,
    });
    await native.lsetxattr(f, 'user.x', Buffer.from('v1'), native.XATTR_CREATE);
    await rejectsErrno(native.lsetxattr(f, 'user.x', Buffer.from('v2'), native.XATTR_CREATE), {
      code: 'EEXIST',
      syscall: 'lsetxattr',
      path: f,
    });
    await native.lsetxattr(f, 'user.x', Buffer.from('v3'), native.XATTR_REPLACE);
    assert.equal((await native.lgetxattr(f, 'user.x')).toString(), 'v3');
  });

  it('acts on a symlink itself, never its target', async () => {
    const target = await touch(p('target'));
    await native.lsetxattr(target, 'user.on-target', Buffer.from('t'));
    const link = p('link');
    await fs.symlink(target, link);

    await native.lsetxattr(link, 'trusted.on-link', Buffer.from([0, 1, 0xfe]));
    assert.deepEqual(await native.lgetxattr(link, 'trusted.on-link'), Buffer.from([0, 1, 0xfe]));
    assert.equal(getfattrHex(link, 'trusted.on-link'), '0x0001fe');
    assert.deepEqual(await native.llistxattr(link), ['trusted.on-link']);
    assert.deepEqual(await native.llistxattr(target), ['user.on-target']);
    await rejectsErrno(native.lgetxattr(link, 'user.on-target'), { code: 'ENODATA', syscall: 'lgetxattr', path: link });
    await rejectsErrno(native.lgetxattr(target, 'trusted.on-link'), {
      code: 'ENODATA',
      syscall: 'lgetxattr',
      path: target,
    });
    // user.* is not allowed on symlinks: following the link would have succeeded.
    await rejectsErrno(native.lsetxattr(link, 'user.x', Buffer.from('x')), { code: 'EPERM', syscall: 'lsetxattr', path: link });
    await native.lremovexattr(link, 'trusted.on-link');
    assert.deepEqual(await native.llistxattr(link), []);

    // A dangling link works too (nothing is resolved).
    const dangling = p('dangling');
    await fs.symlink(join(root, 'does-not-exist'), dangling);
    native.lsetxattrSync(dangling, 'trusted.d', Buffer.from('d'));
    assert.deepEqual(native.llistxattrSync(dangling), ['trusted.d']);
  });

  it('works on file descriptors', async () => {
    const f = await touch(p('fd'));
    const handle = await fs.open(f, 'r+');
    try {
      const fd = handle.fd;
      await native.fsetxattr(fd, 'user.fd', ALL_BYTES);
      native.fsetxattrSync(fd, 'user.fd2', Buffer.from([0x80, 0]));
      assert.deepEqual(await native.fgetxattr(fd, 'user.fd'), ALL_BYTES);
      assert.deepEqual(native.fgetxattrSync(fd, 'user.fd2'), Buffer.from([0x80, 0]));
      assert.deepEqual((await native.flistxattr(fd)).sort(), ['user.fd', 'user.fd2']);
      assert.deepEqual(native.flistxattrSync(fd).sort(), ['user.fd', 'user.fd2']);
      await native.fremovexattr(fd, 'user.fd');
      native.fremovexattrSync(fd, 'user.fd2');
      assert.deepEqual(await native.flistxattr(fd), []);
      await native.fsetxattr(fd, 'user.seen', Buffer.from('by path'));
      assert.equal((await native.lgetxattr(f, 'user.seen')).toString(), 'by path');
      await assert.rejects(native.fgetxattr(fd, 'user.nope'), (err: unknown) => {
        assertErrno(err, { code: 'ENODATA', syscall: 'fgetxattr' });
        assert.equal((err as Error).message, 'ENODATA: no data available, fgetxattr');
        return true;
      });
    } finally {
      await handle.close();
    }
  });

  it('reads consistently while the value changes size concurrently', async () => {
    const f = await touch(p('race'));
    const small = Buffer.alloc(16, 0xaa);
    const large = Buffer.alloc(3000, 0xbb);
    await native.lsetxattr(f, 'user.race', small);
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 400; i++) {
      ops.push(native.lsetxattr(f, 'user.race', i % 2 === 0 ? large : small));
      ops.push(
        native.lgetxattr(f, 'user.race').then((v) => {
          assert.ok(v.equals(small) || v.equals(large), `torn read of ${v.length} bytes`);
        }),
      );
      ops.push(native.llistxattr(f).then((names) => assert.deepEqual(names, ['user.race'])));
    }
    await Promise.all(ops);
  });
});

describe('mknod / makedev', () => {
  it('computes device numbers like the kernel', () => {
    assert.equal(native.makedev(1, 3), 0x103);
    for (const [maj, min] of [[0, 0], [1, 3], [8, 17], [259, 70000], [4095, 1048575]] as const) {
      const dev = native.makedev(maj, min);
      assert.equal(native.major(dev), maj);
      assert.equal(native.minor(dev), min);
      assert.equal(native.major(BigInt(dev)), maj);
      assert.equal(native.minor(BigInt(dev)), min);
    }
  });

  it('creates a FIFO', async () => {
    const path = p('fifo');
    await native.mknod(path, fsc.S_IFIFO | 0o644, 0);
    const st = await fs.lstat(path);
    assert.ok(st.isFIFO());
  });

  it('creates a regular file', async () => {
    const path = p('reg');
    native.mknodSync(path, fsc.S_IFREG | 0o600, 0);
    const st = await fs.lstat(path);
    assert.ok(st.isFile());
    assert.equal(st.size, 0);
  });

  it('creates a character device (1,3) with the right rdev', async () => {
    const path = p('null');
    const dev = native.makedev(1, 3);
    await native.mknod(path, fsc.S_IFCHR | 0o666, dev);
    const st = await fs.lstat(path);
    assert.ok(st.isCharacterDevice());
    assert.equal(st.rdev, dev);
    assert.equal(native.major(st.rdev), 1);
    assert.equal(native.minor(st.rdev), 3);
    const big = await fs.lstat(path, { bigint: true });
    assert.equal(big.rdev, BigInt(dev));
    assert.equal(native.minor(big.rdev), 3);
  });

  it('creates a block device, encoding large minors like stat(1)', async () => {
    const path = p('blk');
    const dev = native.makedev(259, 70000);
    native.mknodSync(path, fsc.S_IFBLK | 0o600, BigInt(dev));
    const st = await fs.lstat(path);
    assert.ok(st.isBlockDevice());
    assert.equal(st.rdev, dev);
    assert.equal(native.major(st.rdev), 259);
    assert.equal(native.minor(st.rdev), 70000);
    assert.equal(execFileSync('stat', ['-c', '%Hr %Lr', path], { encoding: 'utf8' }).trim(), '259 70000');
  });

  it('does not follow a symlink at the final component', async () => {
    const link = p('mknod-link');
    const target = join(root, 'mknod-target-never-created');
    await fs.symlink(target, link);
    await rejectsErrno(native.mknod(link, fsc.S_IFIFO | 0o644, 0), { code: 'EEXIST', syscall: 'mknod', path: link });
    assert.equal(existsSync(target), false);
    assert.throws(() => native.mknodSync(link, fsc.S_IFIFO | 0o644, 0), { code: 'EEXIST', errno: -17 });
  });
});

describe('renameat2', () => {
  it('RENAME_NOREPLACE refuses to replace, with path and dest in the error', async () => {
    const a = await touch(p('a'), 'A');
    const b = await touch(p('b'), 'B');
    const err = await rejectsErrno(native.renameat2(a, b, native.RENAME_NOREPLACE), {
      code: 'EEXIST',
      syscall: 'renameat2',
      path: a,
      dest: b,
    });
    assert.equal(err.message, `EEXIST: file exists, renameat2 '${a}' -> '${b}'`);
    assert.throws(() => native.renameat2Sync(a, b, native.RENAME_NOREPLACE), { code: 'EEXIST', path: a, dest: b });
    assert.equal(await fs.readFile(a, 'utf8'), 'A');
    assert.equal(await fs.readFile(b, 'utf8'), 'B');
    const c = p('c');
    await native.renameat2(a, c, native.RENAME_NOREPLACE);
    assert.equal(await fs.readFile(c, 'utf8'), 'A');
    assert.equal(existsSync(a), false);
  });

  it('plain rename (flags 0) replaces', async () => {
    const a = await touch(p('a'), 'A');
    const b = await touch(p('b'), 'B');
    native.renameat2Sync(a, b);
    assert.equal(await fs.readFile(b, 'utf8'), 'A');
  });

  it('RENAME_EXCHANGE swaps two files', async () => {
    const a = await touch(p('a'), 'A');
    const b = await touch(p('b'), 'B');
    await native.renameat2(a, b, native.RENAME_EXCHANGE);
    assert.equal(await fs.readFile(a, 'utf8'), 'B');
    assert.equal(await fs.readFile(b, 'utf8'), 'A');
    native.renameat2Sync(a, b, native.RENAME_EXCHANGE);
    assert.equal(await fs.readFile(a, 'utf8'), 'A');
  });

  it('RENAME_EXCHANGE swaps a file with a directory', async () => {
    const file = await touch(p('file'), 'F');
    const dir = p('dir');
    await fs.mkdir(dir);
    await touch(join(dir, 'child'), 'C');
    await native.renameat2(file, dir, native.RENAME_EXCHANGE);
    assert.ok((await fs.lstat(file)).isDirectory());
    assert.equal(await fs.readFile(join(file, 'child'), 'utf8'), 'C');
    assert.ok((await fs.lstat(dir)).isFile());
    assert.equal(await fs.readFile(dir, 'utf8'), 'F');
  });

  it('RENAME_EXCHANGE needs both sides', async () => {
    const a = await touch(p('a'));
    const missing = p('missing');
    await rejectsErrno(native.renameat2(a, missing, native.RENAME_EXCHANGE), {
      code: 'ENOENT',
      syscall: 'renameat2',
      path: a,
      dest: missing,
    });
  });

  it('RENAME_WHITEOUT leaves a 0/0 character device at the source', async () => {
    const a = await touch(p('a'), 'A');
    const b = p('b');
    await native.renameat2(a, b, native.RENAME_WHITEOUT);
    assert.equal(await fs.readFile(b, 'utf8'), 'A');
    const st = await fs.lstat(a);
    assert.ok(st.isCharacterDevice());
    assert.equal(st.rdev, 0);
    assert.equal(native.major(st.rdev), 0);
    assert.equal(native.minor(st.rdev), 0);
  });

  it('renames a symlink, not its target', async () => {
    const target = await touch(p('t'), 'T');
    const link = p('l');
    await fs.symlink(target, link);
    const moved = p('moved');
    await native.renameat2(link, moved, native.RENAME_NOREPLACE);
    assert.ok((await fs.lstat(moved)).isSymbolicLink());
    assert.equal(await fs.readFile(target, 'utf8'), 'T');
  });
});

describe('lutimens / futimens', () => {
  const atime = { sec: 1_000_000_000, nsec: 123_456_789 };
  const mtime = { sec: 1_100_000_000, nsec: 987_654_321 };

  it('sets both times with nanosecond precision', async () => {
    const f = await touch(p('times'));
    await native.lutimens(f, atime, mtime);
    const st = await fs.lstat(f, { bigint: true });
    assert.equal(st.atimeNs, 1_000_000_000_123_456_789n);
    assert.equal(st.mtimeNs, 1_100_000_000_987_654_321n);
  });

  it('UTIME_OMIT leaves a time unchanged', async () => {
    const f = await touch(p('omit'));
    native.lutimensSync(f, atime, mtime);
    await native.lutimens(f, native.TIME_OMIT, { sec: 42, nsec: 1 });
    let st = await fs.lstat(f, { bigint: true });
    assert.equal(st.atimeNs, 1_000_000_000_123_456_789n);
    assert.equal(st.mtimeNs, 42_000_000_001n);
    await native.lutimens(f, { sec: 7, nsec: 7 }, { sec: 0, nsec: native.UTIME_OMIT });
    st = await fs.lstat(f, { bigint: true });
    assert.equal(st.atimeNs, 7_000_000_007n);
    assert.equal(st.mtimeNs, 42_000_000_001n);
  });

  it('UTIME_NOW sets the current time', async () => {
    const f = await touch(p('now'));
    await native.lutimens(f, atime, mtime);
    const before = BigInt(Date.now() - 2000) * 1_000_000n;
    await native.lutimens(f, native.TIME_OMIT, native.TIME_NOW);
    const after = BigInt(Date.now() + 2000) * 1_000_000n;
    const st = await fs.lstat(f, { bigint: true });
    assert.equal(st.atimeNs, 1_000_000_000_123_456_789n);
    assert.ok(st.mtimeNs >= before && st.mtimeNs <= after, `mtime ${st.mtimeNs} not ~now`);
  });

  it('changes a symlink, not its target', async () => {
    const target = await touch(p('target'));
    await native.lutimens(target, { sec: 5, nsec: 5 }, { sec: 6, nsec: 6 });
    const link = p('link');
    await fs.symlink(target, link);
    await native.lutimens(link, atime, mtime);
    const linkStat = await fs.lstat(link, { bigint: true });
    assert.equal(linkStat.mtimeNs, 1_100_000_000_987_654_321n);
    const targetStat = await fs.lstat(target, { bigint: true });
    assert.equal(targetStat.atimeNs, 5_000_000_005n);
    assert.equal(targetStat.mtimeNs, 6_000_000_006n);
  });

  it('works on file descriptors', async () => {
    const f = await touch(p('futimens'));
    const handle = await fs.open(f, 'r');
    try {
      await native.futimens(handle.fd, atime, mtime);
      let st = await fs.lstat(f, { bigint: true });
      assert.equal(st.mtimeNs, 1_100_000_000_987_654_321n);
      native.futimensSync(handle.fd, native.TIME_OMIT, { sec: 3, nsec: 999_999_999 });
      st = await fs.lstat(f, { bigint: true });
      assert.equal(st.atimeNs, 1_000_000_000_123_456_789n);
      assert.equal(st.mtimeNs, 3_999_999_999n);
    } finally {
      await handle.close();
    }
  });

  it('converts from bigint nanoseconds and milliseconds', async () => {
    assert.deepEqual(native.timespecFromNs(1_100_000_000_987_654_321n), mtime);
    assert.deepEqual(native.timespecFromNs(-1n), { sec: -1, nsec: 999_999_999 });
    assert.deepEqual(native.timespecFromMs(1500), { sec: 1, nsec: 500_000_000 });
    assert.deepEqual(native.timespecFromMs(-1), { sec: -1, nsec: 999_000_000 });
    // A bigint stat copied through timespecFromNs is exact.
    const src = await touch(p('src'));
    const dst = await touch(p('dst'));
    await native.lutimens(src, atime, mtime);
    const s = await fs.lstat(src, { bigint: true });
    await native.lutimens(dst, native.timespecFromNs(s.atimeNs), native.timespecFromNs(s.mtimeNs));
    const d = await fs.lstat(dst, { bigint: true });
    assert.equal(d.atimeNs, s.atimeNs);
    assert.equal(d.mtimeNs, s.mtimeNs);
  });
});

describe('errors', () => {
  it('are shaped like Node fs errors', async () => {
    const missing = join(root, 'no', 'such');
    const cases: [() => Promise<unknown>, string][] = [
      [() => native.lgetxattr(missing, 'user.x'), 'lgetxattr'],
      [() => native.lsetxattr(missing, 'user.x', Buffer.from('x')), 'lsetxattr'],
      [() => native.llistxattr(missing), 'llistxattr'],
      [() => native.lremovexattr(missing, 'user.x'), 'lremovexattr'],
      [() => native.mknod(missing, fsc.S_IFIFO | 0o600, 0), 'mknod'],
      [() => native.lutimens(missing, native.TIME_NOW, native.TIME_NOW), 'lutimens'],
    ];
    for (const [call, syscall] of cases) {
      const err = await rejectsErrno(call(), { code: 'ENOENT', syscall, path: missing });
      assert.equal(err.errno, -2);
      assert.equal(err.message, `ENOENT: no such file or directory, ${syscall} '${missing}'`);
    }
    // Same shape as Node's own errors for the same condition.
    const nodeErr = await fs.lstat(missing).then(
      () => assert.fail('lstat should fail'),
      (e: NodeJS.ErrnoException) => e,
    );
    const ourErr = await native.lgetxattr(missing, 'user.x').then(
      () => assert.fail('lgetxattr should fail'),
      (e: NodeJS.ErrnoException) => e,
    );
    assert.equal(ourErr.code, nodeErr.code);
    assert.equal(ourErr.errno, nodeErr.errno);
    assert.equal(ourErr.path, nodeErr.path);
  });

  it('fd variants report EBADF without a path', async () => {
    const bad = 1_000_000;
    const cases: [() => Promise<unknown>, string][] = [
      [() => native.fgetxattr(bad, 'user.x'), 'fgetxattr'],
      [() => native.fsetxattr(bad, 'user.x', Buffer.from('x')), 'fsetxattr'],
      [() => native.flistxattr(bad), 'flistxattr'],
      [() => native.fremovexattr(bad, 'user.x'), 'fremovexattr'],
      [() => native.futimens(bad, native.TIME_NOW, native.TIME_NOW), 'futimens'],
    ];
    for (const [call, syscall] of cases) {
      const err = await rejectsErrno(call(), { code: 'EBADF', syscall });
      assert.equal(err.errno, -9);
    }
    assert.throws(() => native.fgetxattrSync(bad, 'user.x'), { code: 'EBADF', syscall: 'fgetxattr' });
  });

  it('bad argument types are TypeErrors (rejections for the async variants)', async () => {
    const f = await touch(p('args'));
    const loose = native as unknown as Record<string, (...args: unknown[]) => unknown>;
    const typeErrors: [string, unknown[]][] = [
      ['lgetxattrSync', [42, 'user.x']],
      ['lgetxattrSync', [f, undefined]],
      ['lgetxattrSync', [Buffer.from(f), 'user.x']],
      ['lsetxattrSync', [f, 'user.x', 'not a buffer']],
      ['lsetxattrSync', [f, 'user.x', Buffer.from('v'), '1']],
      ['fgetxattrSync', ['3', 'user.x']],
      ['mknodSync', [p('m'), '0644', 0]],
      ['mknodSync', [p('m'), fsc.S_IFIFO, {}]],
      ['renameat2Sync', [f, null, 0]],
      ['lutimensSync', [f, 5, native.TIME_NOW]],
      ['lutimensSync', [f, { sec: '1', nsec: 0 }, native.TIME_NOW]],
      ['lutimensSync', [f, { sec: 1 }, native.TIME_NOW]],
      ['makedev', ['1', 3]],
      ['major', ['1']],
    ];
    for (const [fn, args] of typeErrors) {
      assert.throws(() => loose[fn]!(...args), (err: unknown) => {
        assert.ok(err instanceof TypeError, `${fn}: ${String(err)}`);
        assert.equal((err as NodeJS.ErrnoException).code, 'ERR_INVALID_ARG_TYPE');
        return true;
      });
    }
    await assert.rejects(loose.lgetxattr!(42, 'user.x') as Promise<unknown>, TypeError);
    await assert.rejects(loose.renameat2!(f, 7) as Promise<unknown>, TypeError);
  });

  it('strings with NUL bytes are rejected with a TypeError', async () => {
    const f = await touch(p('nul'));
    for (const call of [
      () => native.lgetxattrSync(`${f}\0suffix`, 'user.x'),
      () => native.lgetxattrSync(f, 'user.x\0y'),
      () => native.lsetxattrSync(f, 'user.\0', Buffer.from('v')),
      () => native.renameat2Sync(f, `${f}\0`),
      () => native.mknodSync(`${f}\0`, fsc.S_IFIFO, 0),
      () => native.lutimensSync(`\0${f}`, native.TIME_NOW, native.TIME_NOW),
    ]) {
      assert.throws(call, { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    }
    await assert.rejects(native.llistxattr(`${f}\0`), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('out-of-range numbers are RangeErrors', () => {
    const f = join(root, 'range');
    const rangeErrors: (() => unknown)[] = [
      () => native.fgetxattrSync(-1, 'user.x'),
      () => native.fgetxattrSync(1.5, 'user.x'),
      () => native.lsetxattrSync(f, 'user.x', Buffer.from('v'), -1),
      () => native.mknodSync(f, 2 ** 32, 0),
      () => native.mknodSync(f, fsc.S_IFIFO, -1),
      () => native.mknodSync(f, fsc.S_IFIFO, -1n),
      () => native.lutimensSync(f, { sec: 0, nsec: 1_000_000_000 }, native.TIME_NOW),
      () => native.lutimensSync(f, { sec: 0.5, nsec: 0 }, native.TIME_NOW),
      () => native.lutimensSync(f, { sec: Number.NaN, nsec: 0 }, native.TIME_NOW),
      () => native.makedev(-1, 0),
      () => native.makedev(2 ** 22, 0),
    ];
    for (const call of rangeErrors) {
      assert.throws(call, RangeError);
    }
  });
});

describe('flock', () => {
  it('an exclusive lock excludes another open file description until released, and dies with its holder', async () => {
    const { openSync, closeSync, writeFileSync, mkdtempSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { spawnSync } = await import('node:child_process');
    const native = await import('../../src/native/index.js');
    const dir = mkdtempSync(join(tmpdir(), 'flock-'));
    const path = join(dir, 'lock');
    writeFileSync(path, '');
    const a = openSync(path, 'r');
    const b = openSync(path, 'r');
    try {
      await native.flock(a, native.constants.LOCK_EX);
      await assert.rejects(native.flock(b, native.constants.LOCK_EX | native.constants.LOCK_NB), { code: 'EAGAIN', syscall: 'flock' });
      await native.flock(a, native.constants.LOCK_UN);
      await native.flock(b, native.constants.LOCK_EX | native.constants.LOCK_NB);
      await native.flock(b, native.constants.LOCK_UN);
      // A process that dies holding the lock releases it.
      const child = spawnSync('flock', ['-x', path, 'true']);
      assert.equal(child.status, 0);
      await native.flock(a, native.constants.LOCK_SH | native.constants.LOCK_NB);
      await native.flock(b, native.constants.LOCK_SH | native.constants.LOCK_NB); // shared locks coexist
    } finally {
      closeSync(a);
      closeSync(b);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
