// POSIX behaviour through a real layerfs mount, compared with a plain host directory: every
// scenario runs the same operations on a fresh directory of each and returns what it observed;
// the two observations must be equal (and a few facts are also asserted outright).
// The mount runs in a child process (test/helpers/mount.ts). Needs root, /dev/fuse, setpriv.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { constants as fsc } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { codeOf } from '../helpers/clients.js';
import { buildLayer, file } from '../helpers/layers.js';
import { mountForSuite } from '../helpers/mount.js';
import { TempDirs } from '../helpers/tmp.js';

const execFileP = promisify(execFile);
const NOBODY = 65534;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


async function readAt(fh: fs.FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  return buf.subarray(0, bytesRead);
}

/**
 * Runs one fs operation as nobody (uid/gid 65534, no groups) in a separate process; returns 'OK'
 * or the errno code. ops: read PATH, write PATH, unlink PATH.
 */
async function asNobody(op: 'read' | 'write' | 'unlink', path: string): Promise<string> {
  const script = `
    const fs = require('node:fs');
    const [op, p] = process.argv.slice(1);
    try {
      if (op === 'read') fs.readFileSync(p);
      else if (op === 'write') fs.writeFileSync(p, 'by nobody');
      else fs.unlinkSync(p);
      console.log('OK');
    } catch (e) { console.log(e.code); }`;
  const { stdout } = await execFileP(
    'setpriv',
    [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, '-e', script, op, path],
    { timeout: 30_000 },
  );
  return stdout.trim();
}

type Scenario = (root: string) => Promise<unknown>;

const scenarios: Array<{ name: string; run: Scenario; expect?: (observed: unknown) => void }> = [
  {
    name: 'rename over an existing file replaces it; an fd on the old file still reads it',
    run: async (root) => {
      await fs.writeFile(join(root, 'a'), 'A');
      await fs.writeFile(join(root, 'b'), 'B');
      const old = await fs.open(join(root, 'b'), 'r');
      try {
        await fs.rename(join(root, 'a'), join(root, 'b'));
        return {
          b: await fs.readFile(join(root, 'b'), 'utf8'),
          a: await codeOf(() => fs.lstat(join(root, 'a'))),
          oldFd: (await readAt(old, 10, 0)).toString(),
          oldNlink: Number((await old.stat()).nlink),
        };
      } finally {
        await old.close();
      }
    },
    expect: (o) => assert.deepEqual(o, { b: 'A', a: 'ENOENT', oldFd: 'B', oldNlink: 0 }),
  },
  {
    // The kernel caches each name's attributes for long; a stale count shows only when stat(f)
    // comes right after link(f, …), so it is asked again and again.
    name: "link()'s source shows each new link count at once, link after link",
    run: async (root) => {
      const counts: number[] = [];
      await fs.writeFile(join(root, 'f'), 'x');
      await fs.mkdir(join(root, 'd'));
      for (let i = 1; i <= 30; i++) {
        await fs.link(join(root, 'f'), join(root, i % 2 === 0 ? `g${i}` : `d/g${i}`));
        counts.push(Number((await fs.lstat(join(root, 'f'))).nlink));
      }
      return counts;
    },
    expect: (o) => assert.deepEqual(o, Array.from({ length: 30 }, (_, i) => i + 2)),
  },
  {
    name: 'link counts after link, unlink and rename',
    run: async (root) => {
      const p = (n: string) => join(root, n);
      const nlink = async (n: string) => Number((await fs.lstat(p(n))).nlink);
      const out: Record<string, unknown> = {};
      await fs.writeFile(p('f'), 'x');
      out['new'] = await nlink('f');
      await fs.link(p('f'), p('g'));
      out['afterLink'] = [await nlink('f'), await nlink('g')];
      await fs.link(p('g'), p('h'));
      out['three'] = await nlink('f');
      await fs.unlink(p('f'));
      out['afterUnlink'] = [await nlink('g'), await nlink('h')];
      await fs.rename(p('g'), p('i'));
      out['afterRename'] = [await nlink('i'), await nlink('h')];
      out['sameIno'] = (await fs.lstat(p('i'))).ino === (await fs.lstat(p('h'))).ino;
      await fs.mkdir(p('d'));
      out['dir'] = await nlink('d');
      await fs.mkdir(p('d/s'));
      out['dirWithSub'] = await nlink('d');
      await fs.rmdir(p('d/s'));
      out['dirAfterRmdir'] = await nlink('d');
      return out;
    },
    expect: (o) =>
      assert.deepEqual(o, {
        new: 1,
        afterLink: [2, 2],
        three: 3,
        afterUnlink: [2, 2],
        afterRename: [2, 2],
        sameIno: true,
        dir: 2,
        dirWithSub: 3,
        dirAfterRmdir: 2,
      }),
  },
  {
    name: 'mtime and ctime change when (and only when) they should',
    run: async (root) => {
      const d = join(root, 'd');
      const f = join(d, 'x');
      const st = (p: string) => fs.lstat(p, { bigint: true });
      const out: Record<string, boolean> = {};
      await fs.mkdir(d);
      const d0 = await st(d);
      await sleep(30);
      await fs.writeFile(f, 'x');
      const d1 = await st(d);
      out['dirMtimeAfterCreate'] = d1.mtimeNs > d0.mtimeNs;
      out['dirCtimeAfterCreate'] = d1.ctimeNs > d0.ctimeNs;
      const f0 = await st(f);
      await sleep(30);
      await fs.chmod(f, 0o600);
      const f1 = await st(f);
      out['fileCtimeAfterChmod'] = f1.ctimeNs > f0.ctimeNs;
      out['fileMtimeKeptByChmod'] = f1.mtimeNs === f0.mtimeNs;
      await sleep(30);
      await fs.appendFile(f, 'more');
      const f2 = await st(f);
      out['fileMtimeAfterWrite'] = f2.mtimeNs > f1.mtimeNs;
      out['fileCtimeAfterWrite'] = f2.ctimeNs > f1.ctimeNs;
      await sleep(30);
      await fs.truncate(f, 1);
      const f3 = await st(f);
      out['fileMtimeAfterTruncate'] = f3.mtimeNs > f2.mtimeNs;
      const d2 = await st(d);
      await sleep(30);
      await fs.rename(f, join(d, 'y'));
      const d3 = await st(d);
      out['dirMtimeAfterRename'] = d3.mtimeNs > d2.mtimeNs;
      await sleep(30);
      await fs.unlink(join(d, 'y'));
      const d4 = await st(d);
      out['dirMtimeAfterUnlink'] = d4.mtimeNs > d3.mtimeNs;
      await sleep(30);
      await fs.readdir(d);
      out['dirMtimeKeptByReaddir'] = (await st(d)).mtimeNs === d4.mtimeNs;
      return out;
    },
    expect: (o) => assert.ok(Object.values(o as Record<string, boolean>).every((v) => v), JSON.stringify(o)),
  },
  {
    name: 'O_APPEND writes go to the end whatever the offset',
    run: async (root) => {
      const p = join(root, 'f');
      await fs.writeFile(p, 'abc');
      const fh = await fs.open(p, fsc.O_WRONLY | fsc.O_APPEND);
      try {
        await fh.write(Buffer.from('def'), 0, 3, 0);
        await fh.write(Buffer.from('ghi'));
      } finally {
        await fh.close();
      }
      return fs.readFile(p, 'utf8');
    },
    expect: (o) => assert.equal(o, 'abcdefghi'),
  },
  {
    name: 'O_EXCL on an existing name is EEXIST (also for a dangling symlink)',
    run: async (root) => {
      await fs.writeFile(join(root, 'x'), 'x');
      await fs.symlink('nowhere', join(root, 'dangling'));
      return {
        file: await codeOf(() => fs.open(join(root, 'x'), fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY).then((h) => h.close())),
        symlink: await codeOf(() =>
          fs.open(join(root, 'dangling'), fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY).then((h) => h.close()),
        ),
        fresh: await codeOf(() => fs.open(join(root, 'y'), fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY).then((h) => h.close())),
        content: await fs.readFile(join(root, 'x'), 'utf8'),
      };
    },
    expect: (o) => assert.deepEqual(o, { file: 'EEXIST', symlink: 'EEXIST', fresh: 'OK', content: 'x' }),
  },
  {
    name: 'truncate extending a file fills with zeros',
    run: async (root) => {
      const p = join(root, 'f');
      await fs.writeFile(p, 'hi');
      await fs.truncate(p, 8195);
      const data = await fs.readFile(p);
      const fh = await fs.open(p, 'r+');
      try {
        await fh.truncate(10_000);
        await fh.write(Buffer.from('end'), 0, 3, 10_000);
      } finally {
        await fh.close();
      }
      const data2 = await fs.readFile(p);
      return {
        size: data.length,
        head: data.subarray(0, 2).toString(),
        restZero: data.subarray(2).every((b) => b === 0),
        size2: data2.length,
        zeroUpTo10000: data2.subarray(2, 10_000).every((b) => b === 0),
        tail: data2.subarray(10_000).toString(),
      };
    },
    expect: (o) =>
      assert.deepEqual(o, { size: 8195, head: 'hi', restZero: true, size2: 10_003, zeroUpTo10000: true, tail: 'end' }),
  },
  {
    name: 'a write at 1 MiB into a new file reads back zeros before it',
    run: async (root) => {
      const p = join(root, 'sparse');
      const MiB = 1024 * 1024;
      const fh = await fs.open(p, 'w+');
      try {
        await fh.write(Buffer.from('Z'), 0, 1, MiB);
        const before = await readAt(fh, MiB, 0);
        const at = await readAt(fh, 10, MiB);
        return {
          size: Number((await fh.stat()).size),
          beforeLen: before.length,
          allZero: before.every((b) => b === 0),
          at: at.toString(),
        };
      } finally {
        await fh.close();
      }
    },
    expect: (o) => assert.deepEqual(o, { size: 1024 * 1024 + 1, beforeLen: 1024 * 1024, allZero: true, at: 'Z' }),
  },
  {
    name: 'a 300-component path near the 4096-byte limit works',
    run: async (root) => {
      // Components as long as fit: root + 300 × ('/' + name) + '/f' stays below PATH_MAX (4096 with NUL).
      const nameLen = Math.floor((4095 - root.length - '/f'.length) / 300) - 1;
      const parts = Array.from({ length: 300 }, (_, i) => `${i}`.padStart(nameLen, 'c'));
      const deep = join(root, ...parts);
      const target = join(deep, 'f');
      assert.ok(target.length > 3800 && target.length < 4096, `path length ${target.length}`);
      await fs.mkdir(deep, { recursive: true });
      await fs.writeFile(target, 'deep');
      const out = {
        content: await fs.readFile(target, 'utf8'),
        listing: await fs.readdir(deep),
        kind: (await fs.lstat(target)).isFile(),
      };
      await fs.rm(join(root, parts[0]!), { recursive: true });
      return { ...out, gone: await codeOf(() => fs.lstat(join(root, parts[0]!))) };
    },
    expect: (o) => assert.deepEqual(o, { content: 'deep', listing: ['f'], kind: true, gone: 'ENOENT' }),
  },
  {
    name: 'an unlinked but open file: fstat nlink 0, still readable and writable',
    run: async (root) => {
      const p = join(root, 'f');
      await fs.writeFile(p, 'data');
      const fh = await fs.open(p, 'r+');
      try {
        await fs.unlink(p);
        const st = await fh.stat();
        const first = (await readAt(fh, 10, 0)).toString();
        await fh.write(Buffer.from('X'), 0, 1, 0);
        await fh.write(Buffer.from('++'), 0, 2, 4);
        return {
          nlink: Number(st.nlink),
          first,
          after: (await readAt(fh, 10, 0)).toString(),
          size: Number((await fh.stat()).size),
          lstat: await codeOf(() => fs.lstat(p)),
          listing: await fs.readdir(root),
        };
      } finally {
        await fh.close();
      }
    },
    expect: (o) => assert.deepEqual(o, { nlink: 0, first: 'data', after: 'Xata++', size: 6, lstat: 'ENOENT', listing: [] }),
  },
  {
    name: 'a setgid directory passes its group on to new entries',
    run: async (root) => {
      const d = join(root, 'g');
      await fs.mkdir(d);
      await fs.chown(d, 0, 1234);
      await fs.chmod(d, 0o2775);
      await fs.writeFile(join(d, 'f'), 'f');
      await fs.mkdir(join(d, 's'));
      const f = await fs.lstat(join(d, 'f'));
      const s = await fs.lstat(join(d, 's'));
      return { fileGid: f.gid, dirGid: s.gid, dirSetgid: (s.mode & 0o2000) !== 0, fileSetgid: (f.mode & 0o2000) !== 0 };
    },
    expect: (o) => assert.deepEqual(o, { fileGid: 1234, dirGid: 1234, dirSetgid: true, fileSetgid: false }),
  },
  {
    name: 'directory renames: over an empty dir works, over a non-empty dir is ENOTEMPTY, file over dir is EISDIR',
    run: async (root) => {
      const p = (n: string) => join(root, n);
      await fs.mkdir(p('src'));
      await fs.writeFile(p('src/f'), 'f');
      await fs.mkdir(p('empty'));
      await fs.mkdir(p('full'));
      await fs.writeFile(p('full/g'), 'g');
      return {
        overFull: await codeOf(() => fs.rename(p('src'), p('full'))),
        fileOverDir: await codeOf(() => fs.rename(p('src/f'), p('full'))),
        dirOverFile: await codeOf(() => fs.rename(p('src'), p('full/g'))),
        intoItself: await codeOf(() => fs.rename(p('src'), p('src/sub'))),
        overEmpty: await codeOf(() => fs.rename(p('src'), p('empty'))),
        listing: (await fs.readdir(root)).sort(),
        moved: await fs.readdir(p('empty')),
      };
    },
    expect: (o) =>
      assert.deepEqual(o, {
        overFull: 'ENOTEMPTY',
        fileOverDir: 'EISDIR',
        dirOverFile: 'ENOTDIR',
        intoItself: 'EINVAL',
        overEmpty: 'OK',
        listing: ['empty', 'full'],
        moved: ['f'],
      }),
  },
  {
    name: 'a directory with 1000 entries lists each exactly once',
    run: async (root) => {
      const names = Array.from({ length: 1000 }, (_, i) => `entry-${i}-${'x'.repeat(i % 50)}`);
      for (const n of names) await fs.writeFile(join(root, n), n);
      const listed = await fs.readdir(root);
      return { count: listed.length, unique: new Set(listed).size, same: [...listed].sort().join() === [...names].sort().join() };
    },
    expect: (o) => assert.deepEqual(o, { count: 1000, unique: 1000, same: true }),
  },
  {
    name: 'a 5 MiB file written in odd-sized chunks reads back byte for byte',
    run: async (root) => {
      const data = Buffer.alloc(5 * 1024 * 1024 + 3);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 13)) & 0xff;
      const fh = await fs.open(join(root, 'big'), 'w');
      try {
        for (let off = 0; off < data.length; off += 65_537) {
          await fh.write(data, off, Math.min(65_537, data.length - off), off);
        }
      } finally {
        await fh.close();
      }
      const back = await fs.readFile(join(root, 'big'));
      return { size: back.length, equal: back.equals(data) };
    },
    expect: (o) => assert.deepEqual(o, { size: 5 * 1024 * 1024 + 3, equal: true }),
  },
  {
    name: 'permissions are enforced for a non-root user (nobody)',
    run: async (root) => {
      const p = (n: string) => join(root, n);
      await fs.writeFile(p('secret'), 'secret');
      await fs.chmod(p('secret'), 0o600);
      await fs.mkdir(p('rootdir'));
      await fs.chmod(p('rootdir'), 0o755);
      await fs.mkdir(p('shared'));
      await fs.chmod(p('shared'), 0o1777);
      await fs.writeFile(p('shared/rootfile'), 'r');
      await fs.chmod(p('shared/rootfile'), 0o666);
      const out = {
        readSecret: await asNobody('read', p('secret')),
        writeRootDir: await asNobody('write', p('rootdir/new')),
        writeShared: await asNobody('write', p('shared/mine')),
        writeRootFileInShared: await asNobody('write', p('shared/rootfile')),
        unlinkRootFileInSticky: await asNobody('unlink', p('shared/rootfile')),
        owner: '',
      };
      const st = await fs.lstat(p('shared/mine'));
      out.owner = `${st.uid}:${st.gid}`;
      return out;
    },
    expect: (o) =>
      assert.deepEqual(o, {
        readSecret: 'EACCES',
        writeRootDir: 'EACCES',
        writeShared: 'OK',
        writeRootFileInShared: 'OK',
        unlinkRootFileInSticky: 'EPERM',
        owner: `${NOBODY}:${NOBODY}`,
      }),
  },
];

describe('POSIX behaviour: layerfs mount vs plain directory', () => {
  const temps = new TempDirs();
  let plain: string;
  let mountpoint: string;
  let release: (() => Promise<void>) | undefined;

  before(async () => {
    const base = await temps.make('posix');
    plain = await TempDirs.sub(base, 'plain');
    const lower = await TempDirs.sub(base, 'lower');
    await buildLayer(lower, [file('lower-file', 'from the lower layer')]);
    const upper = await TempDirs.sub(base, 'upper');
    const workdir = await TempDirs.sub(base, 'work');
    const mnt = await TempDirs.sub(base, 'mnt');
    ({ mountpoint, release } = await mountForSuite({ lowers: [lower], upper, workdir, mountpoint: mnt }));
  });

  after(async () => {
    try {
      await release?.();
    } finally {
      await temps.cleanup();
    }
  });

  for (const [i, scenario] of scenarios.entries()) {
    it(scenario.name, async () => {
      const here = await TempDirs.sub(plain, `s${i}`);
      const there = await TempDirs.sub(mountpoint, `s${i}`);
      const expected = await scenario.run(here);
      scenario.expect?.(expected); // the reference itself behaves as the scenario says
      const actual = await scenario.run(there);
      assert.deepEqual(actual, expected, 'mount differs from a plain directory');
    });
  }
});
