// THE conformance table of union semantics. Every case runs against the engine directly
// (test/union/engine-conformance.test.ts) and against a real FUSE mount
// (test/e2e/mount-conformance.test.ts) through the same FsClient interface, once per upper format
// ('oci': `.wh.` markers; 'overlay': 0/0 devices and the opaque xattr). The upper expectations
// below are written in the OCI form; for the overlay form they are translated (overlayUpperCheck).
//
// A case names its layers (built in code, top first), whether the stack has an upper, what to do,
// and what must be true afterwards: the merged tree (exact dump lines), extra checks, and the
// on-disk form of the upper. For every case the runner also proves that no lower layer changed
// at all (full dump including mtime and ctime before and after).
import assert from 'node:assert/strict';
import { constants as fsc } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { posix } from 'node:path';
import * as native from '../../src/native/index.js';
import type { UpperFormat } from '../../src/union/upper-writer.js';
import { OMIT, expectCode, type FsClient } from '../helpers/clients.js';
import {
  type LayerSpec,
  buildLayer,
  chardev,
  dir,
  fifo,
  file,
  hardlink,
  opaque,
  overlayOpaque,
  overlayWhiteout,
  symlink,
  whiteout,
} from '../helpers/layers.js';
import {
  ROOT_LINE,
  assertTree,
  assertTreeHas,
  assertTreeLacks,
  dumpHostDir,
  dumpTree,
  linePath,
  expectChr as C,
  expectDir as D,
  expectFifo as P,
  expectFile as F,
  expectSymlink as L,
} from '../helpers/tree-dump.js';
import { TempDirs, makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * After link(f, g) the kernel refreshes f's cached attributes only if the daemon answers with f's
 * own node id; libfuse 2's path API gives g a new one, and f's entry is busy until the reply is out,
 * so layerfs can only drop it just after: a stat of f right after link(2) may still see the old
 * st_nlink. Other names (unlink, rename, link's siblings) are refreshed before the reply.
 */
export interface UnionCase {
  name: string;
  /** Lower layers, top first. */
  lowers: LayerSpec[];
  /** Initial content of the upper (only with `writable`). */
  upper?: LayerSpec;
  /** Whether the stack has an upper (and workdir). */
  writable: boolean;
  run?: (c: FsClient) => Promise<void>;
  expect: {
    /** The exact dump of the merged tree after `run`. */
    tree?: string[];
    /** Lines (or bare paths) that must be in the merged dump. */
    has?: string[];
    /** Paths that must not be in the merged dump. */
    lacks?: string[];
    check?: (c: FsClient) => Promise<void>;
    /** The upper directory on disk after the mount is closed: lines or paths present / paths absent. */
    upper?: { has?: string[]; lacks?: string[] };
  };
}

// ---- values used by the cases -----------------------------------------------------------------

/** Binary xattr values with NUL and 0xff bytes (as security.capability has). */
const BIN = Buffer.from([0x00, 0xff, 0x00, 0x01, 0x80, 0x7f, 0xff]);
const BIN2 = Buffer.from([0xff, 0x00, 0xfe, 0x00]);
/** Times with nanoseconds that no millisecond clock can produce. */
const T1 = 1_500_000_000_111_111_111n;
const T2 = 1_400_000_000_222_222_222n;

const sorted = async (c: FsClient, p: string) => (await c.readdir(p)).sort();

async function assertNoMarkersListed(c: FsClient, p: string): Promise<void> {
  for (const name of await c.readdir(p)) {
    assert.ok(!name.startsWith('.wh.'), `marker ${name} listed in ${p}`);
    const child = p === '/' ? `/${name}` : `${p}/${name}`;
    if ((await c.lstat(child)).kind === 'dir') await assertNoMarkersListed(c, child);
  }
}

const name255 = 'n'.repeat(255);
const name256 = 'n'.repeat(256);
const longTarget = `${'segment/'.repeat(120)}end`;
/** 3 MiB + 17 bytes of a non-repeating-looking pattern (more than one copy chunk). */
const BIG = (() => {
  const buf = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 31 + (i >> 11)) & 0xff;
  return buf;
})();

// ---- the table ----------------------------------------------------------------------------------

export const unionCases: UnionCase[] = [
  // ---- lookup and merge (read-only stacks) ----
  {
    name: 'lookup goes top-down: the highest layer with a name wins',
    writable: false,
    lowers: [
      [file('a', 'top'), file('only-top', 't')],
      [file('a', 'bottom'), file('only-bottom', 'b')],
    ],
    expect: {
      tree: [ROOT_LINE, F('/a', 'top'), F('/only-bottom', 'b'), F('/only-top', 't')],
      check: async (c) => assert.equal((await c.readFile('/a')).toString(), 'top'),
    },
  },
  {
    name: 'directories merge across three layers; the highest layer wins per name',
    writable: false,
    lowers: [
      [dir('d', { mode: 0o750, uid: 11, gid: 12 }), file('d/x', '1'), file('d/shared', 'top')],
      [dir('d', { mode: 0o700 }), file('d/y', '2'), file('d/shared', 'mid')],
      [file('d/z', '3'), file('d/shared', 'bottom'), file('d/sub/deep', '4')],
    ],
    expect: {
      tree: [
        ROOT_LINE,
        D('/d', { mode: 0o750, uid: 11, gid: 12 }),
        F('/d/shared', 'top'),
        F('/d/x', '1'),
        F('/d/y', '2'),
        F('/d/z', '3'),
        D('/d/sub'),
        F('/d/sub/deep', '4'),
      ],
    },
  },
  {
    name: 'an OCI whiteout hides the name in the layers below',
    writable: false,
    lowers: [
      [whiteout('a'), whiteout('d/x'), whiteout('gone')],
      [file('a'), file('d/x'), file('d/y', 'y'), file('gone/f')],
    ],
    expect: {
      tree: [ROOT_LINE, D('/d'), F('/d/y', 'y')],
      check: async (c) => {
        await expectCode(c.lstat('/a'), 'ENOENT', 'lstat /a');
        await expectCode(c.lstat('/gone/f'), 'ENOENT', 'lstat /gone/f');
        await expectCode(c.readFile('/d/x'), 'ENOENT', 'read /d/x');
        assert.deepEqual(await sorted(c, '/'), ['d']);
      },
    },
  },
  {
    name: 'a whiteout never hides its own layer',
    writable: false,
    lowers: [
      [file('a', 'top'), whiteout('a'), file('d/new', 'n'), whiteout('d')],
      [file('a', 'bottom'), file('d/old', 'o'), file('b', 'b')],
    ],
    expect: { tree: [ROOT_LINE, F('/a', 'top'), F('/b', 'b'), D('/d'), F('/d/new', 'n')] },
  },
  {
    name: 'an opaque directory hides lower content (marker created first)',
    writable: false,
    lowers: [
      [opaque('d'), file('d/+first', '1'), file('d/zlast', '2')],
      [file('d/bottom', 'b'), file('d/+first', 'old'), file('d/sub/x')],
    ],
    expect: { tree: [ROOT_LINE, D('/d'), F('/d/+first', '1'), F('/d/zlast', '2')] },
  },
  {
    name: 'an opaque directory hides lower content (marker created last)',
    writable: false,
    lowers: [
      [file('d/+first', '1'), file('d/zlast', '2'), opaque('d')],
      [file('d/bottom', 'b'), file('d/zlast', 'old')],
      [file('d/bottom2', 'b2')],
    ],
    expect: { tree: [ROOT_LINE, D('/d'), F('/d/+first', '1'), F('/d/zlast', '2')] },
  },
  {
    name: 'an opaque directory in a middle layer hides only the layers below it',
    writable: false,
    lowers: [[file('d/top', 't')], [opaque('d'), file('d/mid', 'm')], [file('d/bottom', 'b')]],
    expect: { tree: [ROOT_LINE, D('/d'), F('/d/mid', 'm'), F('/d/top', 't')] },
  },
  {
    name: 'an opaque marker at a layer root hides every layer below',
    writable: false,
    lowers: [[opaque(''), file('a', 'top')], [file('b'), file('a', 'bottom')]],
    expect: { tree: [ROOT_LINE, F('/a', 'top')] },
  },
  {
    name: 'a whiteout in a middle layer hides only the layers below it',
    writable: false,
    lowers: [
      [file('a', 'v3'), file('d/new', 'n')],
      [whiteout('a'), whiteout('d')],
      [file('a', 'v1'), file('d/old', 'o')],
    ],
    expect: { tree: [ROOT_LINE, F('/a', 'v3'), D('/d'), F('/d/new', 'n')] },
  },
  {
    name: 'overlay-form whiteouts (0/0 char devices) in a lower hide lower entries',
    writable: false,
    lowers: [
      [overlayWhiteout('a'), overlayWhiteout('d'), overlayWhiteout('e/x'), chardev('realdev', 1, 3)],
      [file('a'), file('d/x'), file('e/x'), file('e/y', 'y'), file('keep', 'k')],
    ],
    expect: {
      tree: [ROOT_LINE, D('/e'), F('/e/y', 'y'), F('/keep', 'k'), C('/realdev', 1, 3)],
      check: async (c) => {
        await expectCode(c.lstat('/a'), 'ENOENT', 'lstat /a');
        await expectCode(c.lstat('/d'), 'ENOENT', 'lstat /d');
        await expectCode(c.lstat('/e/x'), 'ENOENT', 'lstat /e/x');
      },
    },
  },
  {
    name: 'overlay-form opaque directory: trusted.overlay.opaque=y',
    writable: false,
    lowers: [[overlayOpaque('d', 'trusted'), file('d/t', 't')], [file('d/b', 'b')]],
    expect: {
      tree: [ROOT_LINE, D('/d'), F('/d/t', 't')],
      check: async (c) => {
        assert.deepEqual(await c.listxattr('/d'), []);
        await expectCode(c.getxattr('/d', 'trusted.overlay.opaque'), 'ENODATA', 'getxattr trusted.overlay.opaque');
      },
    },
  },
  {
    name: 'overlay-form opaque directory: user.overlay.opaque=y',
    writable: false,
    lowers: [[overlayOpaque('d', 'user'), file('d/t', 't')], [file('d/b', 'b')]],
    expect: {
      tree: [ROOT_LINE, D('/d'), F('/d/t', 't')],
      check: async (c) => {
        assert.deepEqual(await c.listxattr('/d'), []);
        await expectCode(c.getxattr('/d', 'user.overlay.opaque'), 'ENODATA', 'getxattr user.overlay.opaque');
      },
    },
  },
  {
    name: 'a non-directory in a higher layer hides a directory below',
    writable: false,
    lowers: [[file('d', 'file'), symlink('s', 'target')], [file('d/x'), file('s/y')]],
    expect: {
      tree: [ROOT_LINE, F('/d', 'file'), L('/s', 'target')],
      check: async (c) => {
        await expectCode(c.readdir('/d'), 'ENOTDIR', 'readdir /d');
        await expectCode(c.lstat('/d/x'), 'ENOTDIR', 'lstat /d/x');
      },
    },
  },
  {
    name: 'a directory in a higher layer hides a non-directory below (and all below that)',
    writable: false,
    lowers: [[file('f/y', 'y'), file('s/a', 'a')], [file('f', 'file'), symlink('s', '/etc')], [file('f/z', 'z')]],
    expect: { tree: [ROOT_LINE, D('/f'), F('/f/y', 'y'), D('/s'), F('/s/a', 'a')] },
  },
  {
    name: 'markers are never listed and cannot be looked up',
    writable: false,
    lowers: [
      [whiteout('nothing-below'), opaque('d'), file('d/x', 'x'), overlayWhiteout('ow'), whiteout('e/y')],
      [file('y', 'y'), file('e/y'), file('e/z', 'z')],
    ],
    expect: {
      tree: [ROOT_LINE, D('/d'), F('/d/x', 'x'), D('/e'), F('/e/z', 'z'), F('/y', 'y')],
      check: async (c) => {
        await assertNoMarkersListed(c, '/');
        await expectCode(c.lstat('/.wh.nothing-below'), 'ENOENT', 'lstat /.wh.nothing-below');
        await expectCode(c.lstat('/d/.wh..wh..opq'), 'ENOENT', 'lstat /d/.wh..wh..opq');
        await expectCode(c.lstat('/e/.wh.y'), 'ENOENT', 'lstat /e/.wh.y');
        await expectCode(c.lstat('/.wh.y'), 'ENOENT', 'lstat /.wh.y');
        await expectCode(c.lstat('/ow'), 'ENOENT', 'lstat /ow');
      },
    },
  },
  {
    name: 'invalid markers (.wh., .wh.., .wh..., .wh..wh.x) in a lower are ignored',
    writable: false,
    lowers: [
      [file('.wh.'), file('.wh..'), file('.wh...'), file('.wh..wh.x'), file('d/.wh.'), file('d/.wh..'), file('top', 't')],
      [file('x', 'x'), file('d/k', 'k')],
    ],
    expect: {
      tree: [ROOT_LINE, D('/d'), F('/d/k', 'k'), F('/top', 't'), F('/x', 'x')],
      check: async (c) => {
        await expectCode(c.lstat('/.wh.'), 'ENOENT', 'lstat /.wh.');
        await expectCode(c.lstat('/.wh..'), 'ENOENT', 'lstat /.wh..');
        await expectCode(c.lstat('/.wh..wh.x'), 'ENOENT', 'lstat /.wh..wh.x');
      },
    },
  },
  {
    name: 'readdir merges all layers with no duplicates',
    writable: false,
    lowers: [
      [file('a'), file('b'), file('d/1')],
      [file('b'), file('c'), file('d/1'), file('d/2')],
      [file('a'), file('c'), file('d/2'), file('d/3'), whiteout('zz')],
    ],
    expect: {
      check: async (c) => {
        const root = await c.readdir('/');
        assert.deepEqual([...root].sort(), ['a', 'b', 'c', 'd']);
        const d = await c.readdir('/d');
        assert.deepEqual([...d].sort(), ['1', '2', '3']);
      },
    },
  },
  {
    name: 'hardlinks within one lower layer share one inode',
    writable: false,
    lowers: [
      [file('a', 'linked', { mode: 0o640 }), hardlink('b', 'a'), file('x', 'other'), hardlink('sub/y', 'x')],
      [file('b', 'lower b')],
    ],
    expect: {
      tree: [
        ROOT_LINE,
        F('/a', 'linked', { mode: 0o640 }),
        F('/b', 'linked', { mode: 0o640 }),
        D('/sub'),
        F('/sub/y', 'other'),
        F('/x', 'other'),
      ],
      check: async (c) => {
        const [a, b, x, y] = await Promise.all(['/a', '/b', '/x', '/sub/y'].map((p) => c.lstat(p)));
        assert.equal(a!.ino, b!.ino, 'a and b share an inode');
        assert.equal(x!.ino, y!.ino, 'x and sub/y share an inode');
        assert.notEqual(a!.ino, x!.ino);
        assert.equal(a!.nlink, 2);
        assert.equal(b!.nlink, 2);
        assert.equal(x!.nlink, 2);
        assert.equal((await c.lstat('/a')).ino, a!.ino, 'inode number stable');
      },
    },
  },
  {
    name: 'symlink targets in lowers are kept byte for byte',
    writable: false,
    lowers: [
      [
        symlink('abs', '/etc/passwd'),
        symlink('rel', '../x/./y'),
        symlink('slash', 'dir//'),
        symlink('space', 'a b'),
        symlink('utf', 'ünï/cödé'),
        symlink('dangling', 'nowhere'),
        symlink('long', longTarget),
        symlink('d/up', '../..'),
      ],
    ],
    expect: {
      tree: [
        ROOT_LINE,
        L('/abs', '/etc/passwd'),
        L('/rel', '../x/./y'),
        L('/slash', 'dir//'),
        L('/space', 'a b'),
        L('/utf', 'ünï/cödé'),
        L('/dangling', 'nowhere'),
        L('/long', longTarget),
        D('/d'),
        L('/d/up', '../..'),
      ],
    },
  },
  {
    name: 'read-only stack: every write operation is EROFS',
    writable: false,
    lowers: [[file('f', 'data', { xattrs: { 'user.keep': 'k' } }), dir('e'), file('d/x', 'x')]],
    expect: {
      tree: [ROOT_LINE, D('/d'), F('/d/x', 'x'), D('/e'), F('/f', 'data', { xattrs: { 'user.keep': 'k' } })],
      check: async (c) => {
        const ops: Array<[string, () => Promise<unknown>]> = [
          ['create', () => c.writeFile('/new', 'x')],
          ['open O_CREAT', () => c.open('/new2', fsc.O_CREAT | fsc.O_WRONLY)],
          ['open O_WRONLY', () => c.open('/f', fsc.O_WRONLY)],
          ['open O_RDWR', () => c.open('/f', fsc.O_RDWR)],
          ['truncate via writeFile', () => c.writeFile('/f', 'x')],
          ['append', () => c.appendFile('/f', 'x')],
          ['mkdir', () => c.mkdir('/nd')],
          ['rmdir', () => c.rmdir('/e')],
          ['unlink', () => c.unlink('/f')],
          ['rename', () => c.rename('/f', '/g')],
          ['symlink', () => c.symlink('t', '/sl')],
          ['link', () => c.link('/f', '/hl')],
          ['mknod', () => c.mknod('/nod', fsc.S_IFCHR | 0o644, native.makedev(1, 3))],
          ['mkfifo', () => c.mkfifo('/fifo')],
          ['chmod', () => c.chmod('/f', 0o600)],
          ['chown', () => c.chown('/f', 1, 1)],
          ['utimens', () => c.utimens('/f', { sec: 1, nsec: 0 }, { sec: 1, nsec: 0 })],
          ['truncate', () => c.truncate('/f', 0)],
          ['setxattr', () => c.setxattr('/f', 'user.new', 'v')],
          ['removexattr', () => c.removexattr('/f', 'user.keep')],
        ];
        for (const [what, op] of ops) await expectCode(op(), 'EROFS', what);
      },
    },
  },

  // ---- names ----
  {
    name: 'creating or renaming to a .wh. name is EINVAL',
    writable: true,
    lowers: [[file('a', 'A'), dir('d')]],
    run: async (c) => {
      await expectCode(c.writeFile('/.wh.x', 'x'), 'EINVAL', 'create /.wh.x');
      await expectCode(c.writeFile('/d/.wh.x', 'x'), 'EINVAL', 'create /d/.wh.x');
      await expectCode(c.writeFile('/.wh..wh..opq', ''), 'EINVAL', 'create /.wh..wh..opq');
      await expectCode(c.mkdir('/.wh.dir'), 'EINVAL', 'mkdir /.wh.dir');
      await expectCode(c.mkdir('/d/.wh..wh..opq'), 'EINVAL', 'mkdir /d/.wh..wh..opq');
      await expectCode(c.symlink('t', '/.wh.l'), 'EINVAL', 'symlink /.wh.l');
      await expectCode(c.mkfifo('/.wh.p'), 'EINVAL', 'mkfifo /.wh.p');
      await expectCode(c.link('/a', '/.wh.h'), 'EINVAL', 'link /.wh.h');
      await expectCode(c.rename('/a', '/.wh.a'), 'EINVAL', 'rename to /.wh.a');
      await expectCode(c.rename('/a', '/d/.wh.a'), 'EINVAL', 'rename to /d/.wh.a');
    },
    expect: {
      tree: [ROOT_LINE, F('/a', 'A'), D('/d')],
      upper: { lacks: ['/.wh.x', '/.wh.dir', '/.wh.l', '/.wh.p', '/.wh.h', '/.wh.a', '/.wh..wh..opq', '/d/.wh.x', '/d/.wh.a'] },
    },
  },
  {
    name: 'a 255-byte name works, a 256-byte name is ENAMETOOLONG',
    writable: true,
    lowers: [[file('f', 'f')]],
    run: async (c) => {
      await c.writeFile(`/${name255}`, 'ok');
      await c.mkdir(`/d${name255.slice(1)}`);
      await expectCode(c.lstat(`/${name256}`), 'ENAMETOOLONG', 'lstat 256');
      await expectCode(c.writeFile(`/${name256}`, 'x'), 'ENAMETOOLONG', 'create 256');
      await expectCode(c.mkdir(`/${name256}`), 'ENAMETOOLONG', 'mkdir 256');
      await expectCode(c.symlink('t', `/${name256}`), 'ENAMETOOLONG', 'symlink 256');
      await expectCode(c.rename('/f', `/${name256}`), 'ENAMETOOLONG', 'rename to 256');
    },
    expect: {
      tree: [ROOT_LINE, F('/f', 'f'), F(`/${name255}`, 'ok'), D(`/d${name255.slice(1)}`)],
      check: async (c) => assert.equal((await c.readFile(`/${name255}`)).toString(), 'ok'),
    },
  },

  {
    name: 'a lower entry with a 255-byte name can be removed and made again',
    writable: true,
    lowers: [[file(name255, 'lower'), file(`d/${name255}`, 'lower2')]],
    run: async (c) => {
      await c.unlink(`/${name255}`);
      await expectCode(c.lstat(`/${name255}`), 'ENOENT', 'lstat after unlink');
      await c.writeFile(`/${name255}`, 'again');
      assert.equal((await c.readFile(`/${name255}`)).toString(), 'again');
      await c.unlink(`/${name255}`);
      await c.unlink(`/d/${name255}`);
      await c.rmdir('/d');
    },
    expect: { tree: [ROOT_LINE] },
  },

  // ---- an upper written by others (OCI and overlay forms) ----
  {
    name: 'an upper with OCI markers: whiteouts and opaque directories apply',
    writable: true,
    upper: [whiteout('a'), opaque('d'), file('d/u', 'u')],
    lowers: [[file('a'), file('b', 'b'), file('d/l')]],
    expect: { tree: [ROOT_LINE, F('/b', 'b'), D('/d'), F('/d/u', 'u')] },
  },
  {
    name: 'an upper with overlay-form markers: hidden names can be made again',
    writable: true,
    upper: [overlayWhiteout('a'), overlayWhiteout('e'), overlayOpaque('d', 'trusted'), file('d/u', 'u')],
    lowers: [[file('a', 'lower'), file('b', 'b'), file('d/l'), file('e/x')]],
    run: async (c) => {
      assert.deepEqual(await sorted(c, '/'), ['b', 'd']);
      assert.deepEqual(await sorted(c, '/d'), ['u']);
      await c.writeFile('/a', 'new');
      await c.mkdir('/e');
    },
    expect: {
      tree: [ROOT_LINE, F('/a', 'new'), F('/b', 'b'), D('/d'), F('/d/u', 'u'), D('/e')],
      check: async (c) => {
        await c.unlink('/a');
        await c.rmdir('/e');
        assert.deepEqual(await sorted(c, '/'), ['b', 'd'], 'lower a and e stay hidden after removing the new ones');
      },
    },
  },

  // ---- copy-up ----
  {
    name: 'copy-up of a large file keeps every byte',
    writable: true,
    lowers: [[file('big', BIG)]],
    run: async (c) => {
      await c.appendFile('/big', 'tail');
    },
    expect: { tree: [ROOT_LINE, F('/big', Buffer.concat([BIG, Buffer.from('tail')]))] },
  },
  {
    name: 'chmod of a lower directory copies up only the directory; its lower entries still show',
    writable: true,
    lowers: [[file('d/x', 'x'), file('d/sub/y', 'y')], [file('d/z', 'z')]],
    run: async (c) => {
      await c.chmod('/d', 0o700);
    },
    expect: {
      tree: [ROOT_LINE, D('/d', { mode: 0o700 }), D('/d/sub'), F('/d/sub/y', 'y'), F('/d/x', 'x'), F('/d/z', 'z')],
      upper: { has: [D('/d', { mode: 0o700 })], lacks: ['/d/x', '/d/z', '/d/sub', '/d/.wh..wh..opq'] },
    },
  },
  {
    name: 'writing a lower file copies it up; readdir still lists it once',
    writable: true,
    lowers: [[file('d/f', 'old', { mode: 0o640, uid: 1000, gid: 1000, xattrs: { 'user.test': BIN } }), file('d/g', 'g')]],
    run: async (c) => {
      await c.writeFile('/d/f', 'new content');
    },
    expect: {
      tree: [
        ROOT_LINE,
        D('/d'),
        F('/d/f', 'new content', { mode: 0o640, uid: 1000, gid: 1000, xattrs: { 'user.test': BIN } }),
        F('/d/g', 'g'),
      ],
      check: async (c) => assert.deepEqual(await c.readdir('/d').then((n) => n.sort()), ['f', 'g']),
      upper: {
        has: [D('/d'), F('/d/f', 'new content', { mode: 0o640, uid: 1000, gid: 1000, xattrs: { 'user.test': BIN } })],
        lacks: ['/d/g'],
      },
    },
  },
  {
    name: 'appending to a lower file copies it up with its content',
    writable: true,
    lowers: [[file('f', 'abc')]],
    run: async (c) => {
      await c.appendFile('/f', 'def');
    },
    expect: { tree: [ROOT_LINE, F('/f', 'abcdef')], upper: { has: [F('/f', 'abcdef')] } },
  },
  {
    name: 'copy-up of a regular file keeps setuid/sticky mode, owner, mtime ns and binary xattrs',
    writable: true,
    lowers: [
      [
        dir('p', { mode: 0o1777, uid: 1000, gid: 1001, xattrs: { 'user.dir': BIN2 } }),
        file('p/suid', 'x', { mode: 0o4755, uid: 1234, gid: 5678, mtimeNs: T1, xattrs: { 'trusted.test': BIN, 'user.test': BIN2 } }),
        file('p/sgid', 'y', { mode: 0o2711, uid: 1, gid: 2, mtimeNs: T1 }),
      ],
    ],
    run: async (c) => {
      await c.setxattr('/p/suid', 'user.added', 'v');
      await c.setxattr('/p/sgid', 'user.added', 'v');
    },
    expect: {
      tree: [
        ROOT_LINE,
        D('/p', { mode: 0o1777, uid: 1000, gid: 1001, xattrs: { 'user.dir': BIN2 } }),
        F('/p/suid', 'x', { mode: 0o4755, uid: 1234, gid: 5678, xattrs: { 'trusted.test': BIN, 'user.test': BIN2, 'user.added': 'v' } }),
        F('/p/sgid', 'y', { mode: 0o2711, uid: 1, gid: 2, xattrs: { 'user.added': 'v' } }),
      ],
      check: async (c) => {
        assert.equal((await c.lstat('/p/suid')).mtimeNs, T1, 'mtime of /p/suid');
        assert.equal((await c.lstat('/p/sgid')).mtimeNs, T1, 'mtime of /p/sgid');
        assert.deepEqual(await c.getxattr('/p/suid', 'trusted.test'), BIN);
      },
      upper: {
        has: [
          D('/p', { mode: 0o1777, uid: 1000, gid: 1001, xattrs: { 'user.dir': BIN2 } }),
          F('/p/suid', 'x', { mode: 0o4755, uid: 1234, gid: 5678, xattrs: { 'trusted.test': BIN, 'user.test': BIN2, 'user.added': 'v' } }),
        ],
      },
    },
  },
  {
    name: 'copy-up copies parent directories with their metadata',
    writable: true,
    lowers: [
      [
        dir('a', { mode: 0o700, uid: 5, gid: 6, xattrs: { 'trusted.test': BIN } }),
        dir('a/b', { mode: 0o751, uid: 9, gid: 10, xattrs: { 'user.test': BIN2 } }),
        file('a/b/c', 'c'),
      ],
    ],
    run: async (c) => {
      await c.writeFile('/a/b/new', 'n');
    },
    expect: {
      tree: [
        ROOT_LINE,
        D('/a', { mode: 0o700, uid: 5, gid: 6, xattrs: { 'trusted.test': BIN } }),
        D('/a/b', { mode: 0o751, uid: 9, gid: 10, xattrs: { 'user.test': BIN2 } }),
        F('/a/b/c', 'c'),
        F('/a/b/new', 'n'),
      ],
      upper: {
        has: [
          D('/a', { mode: 0o700, uid: 5, gid: 6, xattrs: { 'trusted.test': BIN } }),
          D('/a/b', { mode: 0o751, uid: 9, gid: 10, xattrs: { 'user.test': BIN2 } }),
          F('/a/b/new', 'n'),
        ],
        lacks: ['/a/b/c'],
      },
    },
  },
  {
    name: 'copy-up of a child keeps the parent directory mtime',
    writable: true,
    lowers: [[dir('p', { mtimeNs: T2 }), file('p/f', 'f', { mtimeNs: T1 })]],
    run: async (c) => {
      await c.chmod('/p/f', 0o600);
    },
    expect: {
      tree: [ROOT_LINE, D('/p'), F('/p/f', 'f', { mode: 0o600 })],
      check: async (c) => {
        assert.equal((await c.lstat('/p')).mtimeNs, T2, 'mtime of /p after copy-up of /p/f');
        assert.equal((await c.lstat('/p/f')).mtimeNs, T1, 'mtime of /p/f after chmod');
      },
    },
  },
  {
    name: 'copy-up of a symlink keeps target, mtime ns and xattrs',
    writable: true,
    lowers: [[symlink('l', '../t/x', { uid: 1000, gid: 1000, mtimeNs: T1, xattrs: { 'trusted.test': BIN } })]],
    run: async (c) => {
      await c.chown('/l', 2000, 2001);
    },
    expect: {
      tree: [ROOT_LINE, L('/l', '../t/x', { uid: 2000, gid: 2001, xattrs: { 'trusted.test': BIN } })],
      check: async (c) => {
        assert.equal((await c.lstat('/l')).mtimeNs, T1, 'symlink mtime');
        assert.equal(await c.readlink('/l'), '../t/x');
      },
      upper: { has: [L('/l', '../t/x', { uid: 2000, gid: 2001, xattrs: { 'trusted.test': BIN } })] },
    },
  },
  {
    name: 'copy-up of a fifo keeps owner, mtime ns and xattrs',
    writable: true,
    lowers: [[fifo('p', { mode: 0o640, uid: 7, gid: 8, mtimeNs: T1, xattrs: { 'trusted.test': BIN } })]],
    run: async (c) => {
      await c.chmod('/p', 0o604);
    },
    expect: {
      tree: [ROOT_LINE, P('/p', { mode: 0o604, uid: 7, gid: 8, xattrs: { 'trusted.test': BIN } })],
      check: async (c) => assert.equal((await c.lstat('/p')).mtimeNs, T1, 'fifo mtime'),
      upper: { has: [P('/p', { mode: 0o604, uid: 7, gid: 8, xattrs: { 'trusted.test': BIN } })] },
    },
  },
  {
    name: 'copy-up of a character device keeps rdev, mode, owner and mtime ns',
    writable: true,
    lowers: [[chardev('c', 1, 3, { mode: 0o620, uid: 0, gid: 5, mtimeNs: T1 })]],
    run: async (c) => {
      await c.setxattr('/c', 'trusted.added', BIN);
    },
    expect: {
      tree: [ROOT_LINE, C('/c', 1, 3, { mode: 0o620, gid: 5, xattrs: { 'trusted.added': BIN } })],
      check: async (c) => assert.equal((await c.lstat('/c')).mtimeNs, T1, 'device mtime'),
      upper: { has: [C('/c', 1, 3, { mode: 0o620, gid: 5, xattrs: { 'trusted.added': BIN } })] },
    },
  },
  {
    name: 'copy-up keeps the inode number',
    writable: true,
    lowers: [[file('f', 'f'), dir('d'), file('d/x')]],
    expect: {
      check: async (c) => {
        const before = (await c.lstat('/f')).ino;
        const dirBefore = (await c.lstat('/d')).ino;
        await c.chmod('/f', 0o600);
        await c.writeFile('/d/y', 'y'); // copies up /d
        assert.equal((await c.lstat('/f')).ino, before, 'file inode after copy-up');
        assert.equal((await c.lstat('/d')).ino, dirBefore, 'directory inode after copy-up');
      },
    },
  },

  // ---- removing ----
  {
    name: 'unlink of a lower file writes a .wh. marker in the upper',
    writable: true,
    lowers: [[file('a'), file('d/x'), file('d/y', 'y')]],
    run: async (c) => {
      await c.unlink('/a');
      await c.unlink('/d/x');
      await expectCode(c.lstat('/a'), 'ENOENT', 'lstat /a after unlink');
    },
    expect: {
      tree: [ROOT_LINE, D('/d'), F('/d/y', 'y')],
      upper: { has: ['/.wh.a', '/d', '/d/.wh.x'], lacks: ['/a', '/d/x', '/d/y'] },
    },
  },
  {
    name: 'unlink of a copied-up file removes the upper copy and leaves a marker',
    writable: true,
    lowers: [[file('b', 'lower')]],
    run: async (c) => {
      await c.writeFile('/b', 'upper');
      await c.unlink('/b');
    },
    expect: { tree: [ROOT_LINE], upper: { has: ['/.wh.b'], lacks: ['/b'] } },
  },
  {
    name: 'rmdir of an upper-only directory leaves no marker',
    writable: true,
    lowers: [[file('keep')]],
    run: async (c) => {
      await c.mkdir('/nd');
      await c.writeFile('/nd/f', 'f');
      await c.unlink('/nd/f');
      await c.rmdir('/nd');
    },
    expect: { tree: [ROOT_LINE, F('/keep')], upper: { lacks: ['/nd', '/.wh.nd'] } },
  },
  {
    name: 'removing a directory made over a whiteout keeps the lower one hidden',
    writable: true,
    lowers: [[file('d/old', 'o')]],
    run: async (c) => {
      await c.unlink('/d/old');
      await c.rmdir('/d');
      await c.mkdir('/d');
      await c.writeFile('/d/new', 'n');
      await c.unlink('/d/new');
      await c.rmdir('/d');
    },
    expect: { tree: [ROOT_LINE], upper: { has: ['/.wh.d'], lacks: ['/d'] } },
  },
  {
    name: 'unlink of an upper-only file leaves no marker',
    writable: true,
    upper: [file('u', 'u')],
    lowers: [[file('l', 'l')]],
    run: async (c) => {
      await c.unlink('/u');
      await c.writeFile('/n', 'n');
      await c.unlink('/n');
    },
    expect: { tree: [ROOT_LINE, F('/l', 'l')], upper: { lacks: ['/u', '/.wh.u', '/n', '/.wh.n'] } },
  },
  {
    name: 'rmdir of a merged directory with lower entries is ENOTEMPTY; once emptied it works',
    writable: true,
    lowers: [[file('d/x')], [file('d/y'), file('keep')]],
    run: async (c) => {
      await expectCode(c.rmdir('/d'), 'ENOTEMPTY', 'rmdir non-empty /d');
      await c.unlink('/d/x');
      await expectCode(c.rmdir('/d'), 'ENOTEMPTY', 'rmdir /d with y left');
      await c.unlink('/d/y');
      await c.rmdir('/d');
      await expectCode(c.lstat('/d'), 'ENOENT', 'lstat /d after rmdir');
    },
    expect: { tree: [ROOT_LINE, F('/keep')], upper: { has: ['/.wh.d'], lacks: ['/d'] } },
  },
  {
    name: 'mkdir over a whiteout makes the directory opaque',
    writable: true,
    lowers: [[file('d/old', 'o'), file('x', 'file')]],
    run: async (c) => {
      await c.unlink('/d/old');
      await c.rmdir('/d');
      await c.mkdir('/d', 0o755);
      await c.unlink('/x');
      await c.mkdir('/x', 0o700);
      assert.deepEqual(await c.readdir('/d'), []);
    },
    expect: {
      tree: [ROOT_LINE, D('/d'), D('/x', { mode: 0o700 })],
      upper: { has: ['/d', '/d/.wh..wh..opq', '/x'], lacks: ['/.wh.d', '/.wh.x', '/d/old'] },
    },
  },
  {
    name: 'mkdir over a whiteout already in the upper makes the directory opaque',
    writable: true,
    upper: [whiteout('d')],
    lowers: [[file('d/old', 'o')]],
    run: async (c) => {
      await expectCode(c.lstat('/d'), 'ENOENT', 'lstat whited-out /d');
      await c.mkdir('/d');
    },
    expect: {
      tree: [ROOT_LINE, D('/d')],
      upper: { has: ['/d/.wh..wh..opq'], lacks: ['/.wh.d', '/d/old'] },
    },
  },
  {
    name: 'unlink then recreate as another type is seen at once',
    writable: true,
    lowers: [[file('x', 'x'), file('y/inner'), symlink('z', 't')]],
    run: async (c) => {
      await c.unlink('/x');
      await c.mkdir('/x');
      assert.equal((await c.lstat('/x')).kind, 'dir');
      assert.deepEqual(await c.readdir('/x'), []);
      await c.unlink('/y/inner');
      await c.rmdir('/y');
      await c.symlink('t2', '/y');
      assert.equal((await c.lstat('/y')).kind, 'symlink');
      assert.equal(await c.readlink('/y'), 't2');
      await c.unlink('/z');
      await c.mkfifo('/z', 0o600);
      assert.equal((await c.lstat('/z')).kind, 'fifo');
      await c.writeFile('/w', 'w');
      await c.unlink('/w');
      await c.mkdir('/w');
      assert.equal((await c.lstat('/w')).kind, 'dir');
      await c.rmdir('/w');
      await c.writeFile('/w', 'again');
      assert.equal((await c.readFile('/w')).toString(), 'again');
    },
    expect: { tree: [ROOT_LINE, F('/w', 'again'), D('/x'), L('/y', 't2'), P('/z', { mode: 0o600 })] },
  },

  // ---- rename ----
  {
    name: 'rename of a lower file to a new name',
    writable: true,
    lowers: [[file('a', 'A', { mode: 0o640, uid: 5, gid: 6, mtimeNs: T1, xattrs: { 'user.test': BIN } })]],
    run: async (c) => {
      await c.rename('/a', '/b');
    },
    expect: {
      tree: [ROOT_LINE, F('/b', 'A', { mode: 0o640, uid: 5, gid: 6, xattrs: { 'user.test': BIN } })],
      check: async (c) => {
        await expectCode(c.lstat('/a'), 'ENOENT', 'lstat /a after rename');
        assert.equal((await c.lstat('/b')).mtimeNs, T1, 'mtime kept by rename');
      },
      upper: { has: ['/.wh.a', '/b'], lacks: ['/a'] },
    },
  },
  {
    name: 'rename of a lower file into a lower-only subdirectory',
    writable: true,
    lowers: [[file('a', 'A'), dir('p', { mode: 0o750, uid: 3 }), dir('p/q'), file('p/q/other', 'o')]],
    run: async (c) => {
      await c.rename('/a', '/p/q/a');
    },
    expect: {
      tree: [ROOT_LINE, D('/p', { mode: 0o750, uid: 3 }), D('/p/q'), F('/p/q/a', 'A'), F('/p/q/other', 'o')],
      upper: { has: ['/.wh.a', D('/p', { mode: 0o750, uid: 3 }), '/p/q/a'], lacks: ['/a', '/p/q/other'] },
    },
  },
  {
    name: 'rename onto a whited-out name, then unlink: the lower entry stays hidden',
    writable: true,
    lowers: [[file('a', 'A'), file('b', 'B')]],
    run: async (c) => {
      await c.unlink('/b');
      await c.rename('/a', '/b');
      assert.equal((await c.readFile('/b')).toString(), 'A');
      await c.unlink('/b');
      await expectCode(c.lstat('/b'), 'ENOENT', 'lstat /b: the lower b must not come back');
    },
    expect: { tree: [ROOT_LINE], upper: { has: ['/.wh.a', '/.wh.b'], lacks: ['/a', '/b'] } },
  },
  {
    name: 'rename of a merged directory keeps its whiteouts in effect',
    writable: true,
    lowers: [[file('d/x', 'x'), file('d/y', 'y')], [file('d/z', 'z')]],
    run: async (c) => {
      await c.unlink('/d/x');
      await c.unlink('/d/z');
      await c.writeFile('/d/new', 'n');
      await c.rename('/d', '/e');
    },
    expect: {
      tree: [ROOT_LINE, D('/e'), F('/e/new', 'n'), F('/e/y', 'y')],
      check: async (c) => {
        await expectCode(c.lstat('/d'), 'ENOENT', 'lstat /d');
        await expectCode(c.lstat('/e/x'), 'ENOENT', 'lstat /e/x');
        await expectCode(c.lstat('/e/z'), 'ENOENT', 'lstat /e/z');
      },
    },
  },
  {
    name: 'rename of a directory onto a name whited out by a 0/0 device in the upper',
    writable: true,
    upper: [overlayWhiteout('e')],
    lowers: [[file('d/y', 'y'), file('e/x', 'x')]],
    run: async (c) => {
      await expectCode(c.lstat('/e'), 'ENOENT', 'lstat whited-out /e');
      await c.rename('/d', '/e');
    },
    expect: {
      tree: [ROOT_LINE, D('/e'), F('/e/y', 'y')],
      check: async (c) => {
        await expectCode(c.lstat('/e/x'), 'ENOENT', 'the lower e/x stays hidden');
        await expectCode(c.lstat('/d'), 'ENOENT', 'lstat /d');
      },
      upper: { has: ['/.wh.d', '/e/.wh..wh..opq', '/e/y'], lacks: ['/d'] },
    },
  },
  {
    name: 'rename of a directory into itself is EINVAL',
    writable: true,
    lowers: [[file('d/sub/f', 'f')]],
    run: async (c) => {
      await expectCode(c.rename('/d', '/d/sub/d'), 'EINVAL', 'rename /d into /d/sub');
      await expectCode(c.rename('/d', '/d/x'), 'EINVAL', 'rename /d into /d');
    },
    expect: { tree: [ROOT_LINE, D('/d'), D('/d/sub'), F('/d/sub/f', 'f')] },
  },
  {
    name: 'rename of a lower directory with contents moves everything (no EXDEV)',
    writable: true,
    lowers: [
      [dir('d', { mode: 0o750 }), file('d/x', 'x'), file('d/sub/y', 'y'), symlink('d/l', 'x'), whiteout('d/gone')],
      [file('d/z', 'z'), file('d/x', 'old'), file('d/gone', 'g'), file('d/sub/w', 'w')],
    ],
    run: async (c) => {
      await c.rename('/d', '/e');
    },
    expect: {
      tree: [
        ROOT_LINE,
        D('/e', { mode: 0o750 }),
        L('/e/l', 'x'),
        D('/e/sub'),
        F('/e/sub/w', 'w'),
        F('/e/sub/y', 'y'),
        F('/e/x', 'x'),
        F('/e/z', 'z'),
      ],
      check: async (c) => {
        await expectCode(c.lstat('/d'), 'ENOENT', 'lstat /d after rename');
        await expectCode(c.lstat('/e/gone'), 'ENOENT', 'whited-out entry stays hidden');
      },
      upper: { has: ['/.wh.d', '/e', '/e/x', '/e/z', '/e/sub/y', '/e/sub/w'], lacks: ['/d', '/e/gone'] },
    },
  },
  {
    name: 'rename over an existing file replaces it atomically',
    writable: true,
    lowers: [[file('a', 'A'), file('b', 'B')]],
    run: async (c) => {
      const old = await c.open('/b', fsc.O_RDONLY);
      try {
        // Every lookup of /b during the rename finds a file: the old one or the new one.
        const probes = Array.from({ length: 20 }, () => c.lstat('/b').then((st) => st.kind));
        await Promise.all([c.rename('/a', '/b'), ...probes]).then((r) => r.slice(1).forEach((k) => assert.equal(k, 'file')));
        const buf = Buffer.alloc(8);
        const n = await old.read(buf, 0);
        assert.equal(buf.subarray(0, n).toString(), 'B', 'an fd opened before the rename reads the old file');
      } finally {
        await old.close();
      }
      await c.writeFile('/u', 'U');
      await c.rename('/u', '/b');
    },
    expect: {
      tree: [ROOT_LINE, F('/b', 'U')],
      upper: { has: ['/.wh.a', F('/b', 'U')], lacks: ['/a', '/u'] },
    },
  },
  {
    name: 'rename of a directory over an empty merged directory',
    writable: true,
    lowers: [[file('src/f', 'f'), file('dst/g', 'g')], [file('dst/h', 'h')]],
    run: async (c) => {
      await c.unlink('/dst/g');
      await c.unlink('/dst/h');
      await c.rename('/src', '/dst');
    },
    expect: {
      tree: [ROOT_LINE, D('/dst'), F('/dst/f', 'f')],
      check: async (c) => {
        await expectCode(c.lstat('/src'), 'ENOENT', 'lstat /src');
        assert.deepEqual(await c.readdir('/dst'), ['f']);
      },
      upper: { has: ['/.wh.src', '/dst/f'], lacks: ['/src', '/dst/g', '/dst/h'] },
    },
  },
  {
    name: 'rename of a directory over a non-empty directory is ENOTEMPTY',
    writable: true,
    lowers: [[file('src/f', 'f'), file('dst/g', 'g')], [file('dst2/h', 'h')]],
    run: async (c) => {
      await expectCode(c.rename('/src', '/dst'), 'ENOTEMPTY', 'rename over dst');
      await expectCode(c.rename('/src', '/dst2'), 'ENOTEMPTY', 'rename over dst2 (lower-only content)');
      await expectCode(c.rename('/src/f', '/dst'), 'EISDIR', 'rename file over dir');
      await expectCode(c.rename('/src', '/dst/g'), 'ENOTDIR', 'rename dir over file');
    },
    expect: { tree: [ROOT_LINE, D('/dst'), F('/dst/g', 'g'), D('/dst2'), F('/dst2/h', 'h'), D('/src'), F('/src/f', 'f')] },
  },

  // ---- links ----
  {
    name: 'link() in the upper shares the inode; unlinking one name updates the others at once',
    writable: true,
    upper: [dir('d'), file('d/u', 'U')],
    lowers: [[dir('d'), file('d/a', 'A')]],
    run: async (c) => {
      await c.link('/d/u', '/d/v');
      await c.link('/d/a', '/d/a2');
    },
    expect: {
      tree: [ROOT_LINE, D('/d'), F('/d/a', 'A'), F('/d/a2', 'A'), F('/d/u', 'U'), F('/d/v', 'U')],
      check: async (c) => {
        const [u, v, a, a2] = await Promise.all(['/d/u', '/d/v', '/d/a', '/d/a2'].map((p) => c.lstat(p)));
        assert.equal(u!.ino, v!.ino);
        assert.equal(v!.nlink, 2, 'the new name');
        assert.equal(a!.ino, a2!.ino);
        assert.equal(a2!.nlink, 2, 'the new name of a copied-up lower file');
        await c.unlink('/d/v');
        assert.equal((await c.lstat('/d/u')).nlink, 1, 'nlink of the other name after unlinking one');
        await c.link('/d/u', '/d/w');
        await c.rename('/d/w', '/d/v'); // rename keeps the link
        assert.equal((await c.lstat('/d/v')).nlink, 2);
        await c.unlink('/d/a2');
        assert.equal((await c.lstat('/d/a')).nlink, 1, 'nlink after unlinking the other name');
        await c.link('/d/a', '/d/a2'); // restore the tree for the on-disk check
      },
      upper: { has: ['/d/a', '/d/a2', '/d/u', '/d/v'] },
    },
  },
  {
    // Nothing in the request names the other names of the file. Each change is made in the
    // mount's root directory and in a subdirectory, and the two names `keep` and `d/keep`, never
    // touched, are asked after each. How soon after is test/e2e/link-counts.test.ts's question.
    name: 'every other name of a file shows each new link count, after changes in the root directory and in a subdirectory',
    writable: true,
    lowers: [[file('lower', 'L')]],
    run: async (c) => {
      const counts: number[] = [];
      const keep = async () => counts.push((await c.lstat('/keep')).nlink, (await c.lstat('/d/keep')).nlink);
      await c.writeFile('/f', 'x');
      await c.mkdir('/d');
      await c.link('/f', '/keep');
      await c.link('/f', '/d/keep');
      await keep();
      const names = Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? `/g${i}` : `/d/g${i}`));
      for (const name of names) {
        await c.link('/f', name);
        await keep();
      }
      for (const [i, name] of names.entries()) {
        if (i % 3 === 0) await c.rename(name, i % 2 === 0 ? '/d/moved' : '/moved');
        if (i % 3 === 1) {
          await c.writeFile('/other', 'o');
          await c.rename('/other', name);
        }
        await keep();
        if (i % 3 !== 1) await c.unlink(i % 3 === 0 ? (i % 2 === 0 ? '/d/moved' : '/moved') : name);
        await keep();
      }
      const expected = [3, 3];
      let n = 3;
      for (let i = 0; i < 24; i++) expected.push(++n, n);
      for (let i = 0; i < 24; i++) {
        if (i % 3 === 1) n--; // replaced by rename
        expected.push(n, n);
        if (i % 3 !== 1) n--; // unlinked (after a rename, which keeps the count)
        expected.push(n, n);
      }
      assert.deepEqual(counts, expected);
    },
    expect: {
      tree: [ROOT_LINE, D('/d'), F('/d/g1', 'o'), F('/d/g13', 'o'), F('/d/g19', 'o'), F('/d/g7', 'o'), F('/d/keep', 'x'), F('/f', 'x'), F('/g10', 'o'), F('/g16', 'o'), F('/g22', 'o'), F('/g4', 'o'), F('/keep', 'x'), F('/lower', 'L')],
    },
  },
  {
    name: "link()'s source shows the new link count at once",
    writable: true,
    upper: [file('u', 'U')],
    lowers: [[file('a', 'A')]],
    run: async (c) => {
      await c.link('/u', '/v');
    },
    expect: {
      tree: [ROOT_LINE, F('/a', 'A'), F('/u', 'U'), F('/v', 'U')],
      check: async (c) => {
        assert.equal((await c.lstat('/u')).nlink, 2);
      },
      upper: { has: ['/u', '/v'] },
    },
  },
  {
    name: 'symlinks made through the union keep their target byte for byte',
    writable: true,
    lowers: [[dir('d')]],
    run: async (c) => {
      await c.symlink('/abs/./x//y/', '/d/abs');
      await c.symlink('../rel', '/d/rel');
      await c.symlink('ü x', '/d/u');
      await c.symlink(longTarget, '/d/long');
    },
    expect: {
      tree: [ROOT_LINE, D('/d'), L('/d/abs', '/abs/./x//y/'), L('/d/rel', '../rel'), L('/d/u', 'ü x'), L('/d/long', longTarget)],
      upper: { has: [L('/d/abs', '/abs/./x//y/')] },
    },
  },

  {
    name: 'mknod makes devices and fifos; a 0/0 character device (a whiteout) is EPERM',
    writable: true,
    lowers: [[file('a', 'A')]],
    run: async (c) => {
      await c.mknod('/null', fsc.S_IFCHR | 0o640, native.makedev(1, 3));
      await c.mknod('/fifo', fsc.S_IFIFO | 0o600, 0);
      // overlayfs refuses this too: on disk it would read back as a whiteout.
      await expectCode(c.mknod('/wh', fsc.S_IFCHR | 0o644, 0), 'EPERM', 'mknod 0/0');
      await expectCode(c.mknod('/a', fsc.S_IFCHR | 0o644, 0), 'EEXIST', 'mknod 0/0 over an existing name');
    },
    expect: {
      tree: [ROOT_LINE, F('/a', 'A'), P('/fifo', { mode: 0o600 }), C('/null', 1, 3, { mode: 0o640 })],
      upper: { has: [C('/null', 1, 3, { mode: 0o640 })], lacks: ['/wh', '/a'] },
    },
  },

  // ---- attributes ----
  {
    name: 'truncate extends with zeros and shrinks',
    writable: true,
    lowers: [[file('f', 'abc'), file('g', 'long content')]],
    run: async (c) => {
      await c.truncate('/f', 10);
      await c.truncate('/g', 4);
      await c.writeFile('/n', 'xy');
      await c.truncate('/n', 5000);
    },
    expect: {
      tree: [
        ROOT_LINE,
        F('/f', Buffer.concat([Buffer.from('abc'), Buffer.alloc(7)])),
        F('/g', 'long'),
        F('/n', Buffer.concat([Buffer.from('xy'), Buffer.alloc(4998)])),
      ],
    },
  },
  {
    name: 'utimens sets nanoseconds and honours UTIME_OMIT',
    writable: true,
    lowers: [[file('f', 'x', { mtimeNs: T1 }), dir('d', { mtimeNs: T1 }), symlink('l', 'f', { mtimeNs: T2 })]],
    run: async (c) => {
      await c.utimens('/f', { sec: 1_000_000_000, nsec: 123_456_789 }, OMIT);
      let st = await c.lstat('/f');
      assert.equal(st.mtimeNs, T1, 'mtime kept with UTIME_OMIT');
      assert.equal(st.atimeNs, 1_000_000_000_123_456_789n, 'atime set');
      await c.utimens('/f', OMIT, { sec: 1_700_000_000, nsec: 987_654_321 });
      st = await c.lstat('/f');
      assert.equal(st.mtimeNs, 1_700_000_000_987_654_321n, 'mtime set');
      assert.equal(st.atimeNs, 1_000_000_000_123_456_789n, 'atime kept with UTIME_OMIT');
      await c.utimens('/d', { sec: 1, nsec: 1 }, { sec: 2, nsec: 999_999_999 });
      assert.equal((await c.lstat('/d')).mtimeNs, 2_999_999_999n, 'directory mtime');
      await c.utimens('/l', OMIT, { sec: 1_600_000_001, nsec: 1 });
      assert.equal((await c.lstat('/l')).mtimeNs, 1_600_000_001_000_000_001n, 'symlink mtime');
      assert.equal((await c.lstat('/f')).mtimeNs, 1_700_000_000_987_654_321n, 'symlink target untouched');
    },
    expect: { tree: [ROOT_LINE, D('/d'), F('/f', 'x'), L('/l', 'f')] },
  },
  {
    name: 'xattrs set, get, list and remove through the union (with copy-up)',
    writable: true,
    lowers: [[file('f', 'x', { xattrs: { 'user.keep': 'k', 'user.drop': BIN } }), dir('d', { xattrs: { 'user.dirattr': 'v' } })]],
    run: async (c) => {
      assert.deepEqual(await c.getxattr('/f', 'user.drop'), BIN);
      await c.setxattr('/f', 'user.new', BIN2);
      assert.deepEqual(await c.getxattr('/f', 'user.new'), BIN2);
      assert.deepEqual((await c.listxattr('/f')).sort(), ['user.drop', 'user.keep', 'user.new']);
      await c.removexattr('/f', 'user.drop');
      await expectCode(c.getxattr('/f', 'user.drop'), 'ENODATA', 'getxattr removed');
      await expectCode(c.removexattr('/f', 'user.none'), 'ENODATA', 'removexattr missing');
      await c.setxattr('/f', 'user.keep', 'K2', native.constants.XATTR_REPLACE);
      await expectCode(c.setxattr('/f', 'user.keep', 'x', native.constants.XATTR_CREATE), 'EEXIST', 'XATTR_CREATE existing');
      await expectCode(c.setxattr('/f', 'user.absent', 'x', native.constants.XATTR_REPLACE), 'ENODATA', 'XATTR_REPLACE missing');
      await c.setxattr('/f', 'trusted.test', BIN);
      await c.setxattr('/d', 'user.more', 'm');
      await c.removexattr('/d', 'user.dirattr');
    },
    expect: {
      tree: [
        ROOT_LINE,
        D('/d', { xattrs: { 'user.more': 'm' } }),
        F('/f', 'x', { xattrs: { 'user.keep': 'K2', 'user.new': BIN2, 'trusted.test': BIN } }),
      ],
      upper: {
        has: [D('/d', { xattrs: { 'user.more': 'm' } }), F('/f', 'x', { xattrs: { 'user.keep': 'K2', 'user.new': BIN2, 'trusted.test': BIN } })],
      },
    },
  },
  {
    name: 'overlay private xattrs (trusted.overlay.*, user.overlay.*) are never visible or copied',
    writable: true,
    lowers: [
      [
        file('f', 'x', { xattrs: { 'trusted.overlay.foo': 'bar', 'user.overlay.origin': 'o', 'trusted.ok': '1' } }),
        overlayOpaque('d', 'trusted'),
        file('d/x', 'x'),
      ],
    ],
    run: async (c) => {
      assert.deepEqual(await c.listxattr('/f'), ['trusted.ok']);
      await expectCode(c.getxattr('/f', 'trusted.overlay.foo'), 'ENODATA', 'getxattr trusted.overlay.foo');
      await expectCode(c.getxattr('/f', 'user.overlay.origin'), 'ENODATA', 'getxattr user.overlay.origin');
      await assert.rejects(c.setxattr('/f', 'trusted.overlay.x', 'y'), 'setting trusted.overlay.* must fail');
      await c.chmod('/f', 0o600);
      await c.writeFile('/d/new', 'n');
    },
    expect: {
      tree: [ROOT_LINE, D('/d'), F('/d/new', 'n'), F('/d/x', 'x'), F('/f', 'x', { mode: 0o600, xattrs: { 'trusted.ok': '1' } })],
      upper: { has: [F('/f', 'x', { mode: 0o600, xattrs: { 'trusted.ok': '1' } })] },
    },
  },
];

// ---- running a case -------------------------------------------------------------------------------

export interface Stack {
  /** Lower layer directories, top first. */
  lowers: string[];
  upper?: string;
  workdir?: string;
  /** A scratch directory of the case (e.g. for a mount point). */
  scratch: string;
}

/** Opens `stack` (engine or mount), runs `fn` with a client on it, closes it again. */
export type WithClient = (stack: Stack, fn: (c: FsClient) => Promise<void>) => Promise<void>;

export interface RunOptions {
  /** After closing, the workdir must be empty (no leftover temp files). */
  checkWorkdirEmpty?: boolean;
  /** The form the stack writes its upper in (default 'oci'): decides how `expect.upper` is read. */
  upperFormat?: UpperFormat;
}

/** Builds the case's layers in a temp dir, runs it through `withClient`, checks everything. */
export async function runUnionCase(kase: UnionCase, withClient: WithClient, options: RunOptions = {}): Promise<void> {
  const base = await makeTempDir('case');
  try {
    const lowers: string[] = [];
    for (const [i, spec] of kase.lowers.entries()) {
      const layer = await TempDirs.sub(base, `lower${i}`);
      await buildLayer(layer, spec);
      lowers.push(layer);
    }
    const stack: Stack = { lowers, scratch: await TempDirs.sub(base, 'scratch') };
    if (kase.writable) {
      stack.upper = await TempDirs.sub(base, 'upper');
      await buildLayer(stack.upper, kase.upper ?? []);
      stack.workdir = await TempDirs.sub(base, 'work');
    } else {
      assert.equal(kase.upper, undefined, 'a read-only case has no upper content');
    }
    const before = await Promise.all(lowers.map((l) => dumpHostDir(l, { times: true })));
    const upperBefore = stack.upper === undefined ? [] : await dumpHostDir(stack.upper);

    await withClient(stack, async (c) => {
      if (kase.run !== undefined) await kase.run(c);
      const { tree, has, lacks, check } = kase.expect;
      if (tree !== undefined || has !== undefined || lacks !== undefined) {
        const actual = await dumpTree(c);
        if (tree !== undefined) assertTree(actual, tree, 'merged tree');
        if (has !== undefined) assertTreeHas(actual, has, 'merged tree:');
        if (lacks !== undefined) assertTreeLacks(actual, lacks, 'merged tree:');
      }
      if (check !== undefined) await check(c);
    });

    const after = await Promise.all(lowers.map((l) => dumpHostDir(l, { times: true })));
    for (const [i] of lowers.entries()) assert.deepEqual(after[i], before[i], `lower layer ${i} must not change`);

    if (stack.upper !== undefined) {
      const disk = await dumpHostDir(stack.upper);
      if ((options.upperFormat ?? 'oci') === 'oci') {
        if (kase.expect.upper?.has !== undefined) assertTreeHas(disk, kase.expect.upper.has, 'upper on disk:');
        if (kase.expect.upper?.lacks !== undefined) assertTreeLacks(disk, kase.expect.upper.lacks, 'upper on disk:');
      } else {
        overlayUpperCheck(disk, upperBefore, kase.expect.upper ?? {});
      }
    }
    if (options.checkWorkdirEmpty === true && stack.workdir !== undefined) {
      assert.deepEqual(await readdir(stack.workdir), [], 'workdir is empty after close');
    }
  } finally {
    await removeTempDir(base);
  }
}

// ---- the overlay upper form --------------------------------------------------------------------

type Fields = { kind: string; rdev: string; xattrs: string };
const fieldsOf = (line: string): Fields => {
  const f = line.split(' ');
  return { kind: f[1]!, rdev: f[8]!, xattrs: f[9]! };
};
const isWhiteoutLine = (line: string): boolean => {
  const f = fieldsOf(line);
  return f.kind === 'chr' && f.rdev === '0,0';
};
/** trusted.overlay.opaque = "y" (hex 79) among the xattrs of a dump line. */
const isOpaqueLine = (line: string): boolean => fieldsOf(line).xattrs.split(',').includes('trusted.overlay.opaque=79');

/**
 * Checks an overlay-form upper against expectations written in the OCI form: `DIR/.wh.NAME`
 * means a 0/0 character device at DIR/NAME, `DIR/.wh..wh..opq` the opaque xattr on DIR; a path
 * that must be absent may still be a whiteout. No `.wh.` name may appear that the case did not put
 * in the upper itself.
 */
function overlayUpperCheck(disk: string[], before: string[], expect: { has?: string[]; lacks?: string[] }): void {
  const lineFor = (p: string) => disk.find((l) => linePath(l) === p);
  const show = `\n${disk.join('\n')}`;
  const split = (item: string) => {
    const p = item.includes(' ') ? linePath(item) : item;
    return { p, dir: posix.dirname(p), base: posix.basename(p) };
  };
  for (const item of expect.has ?? []) {
    const { p, dir, base } = split(item);
    if (base === '.wh..wh..opq') {
      const line = lineFor(dir);
      assert.ok(line !== undefined && isOpaqueLine(line), `upper on disk: ${dir} should be opaque (trusted.overlay.opaque=y):${show}`);
    } else if (base.startsWith('.wh.')) {
      const target = posix.join(dir, base.slice(4));
      const line = lineFor(target);
      assert.ok(line !== undefined && isWhiteoutLine(line), `upper on disk: ${target} should be a 0/0 whiteout (for ${p}):${show}`);
    } else {
      assertTreeHas(disk, [item], 'upper on disk:');
    }
  }
  for (const item of expect.lacks ?? []) {
    const { p, dir, base } = split(item);
    if (base === '.wh..wh..opq') {
      const line = lineFor(dir);
      assert.ok(line === undefined || !isOpaqueLine(line), `upper on disk: ${dir} should not be opaque:${show}`);
    } else if (base.startsWith('.wh.')) {
      const target = posix.join(dir, base.slice(4));
      const line = lineFor(target);
      assert.ok(line === undefined || !isWhiteoutLine(line), `upper on disk: ${target} should not be a whiteout (for ${p}):${show}`);
    } else {
      const line = lineFor(p);
      assert.ok(line === undefined || isWhiteoutLine(line), `upper on disk: did not expect ${p} (other than as a whiteout):${show}`);
    }
  }
  const markers = (lines: string[]) => lines.map(linePath).filter((p) => posix.basename(p).startsWith('.wh.'));
  const initial = new Set(markers(before));
  const added = markers(disk).filter((p) => !initial.has(p));
  assert.deepEqual(added, [], 'an overlay-form upper gets no .wh. names');
}
