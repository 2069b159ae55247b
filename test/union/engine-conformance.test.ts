// The conformance table against the union engine called directly (no kernel), plus a few
// properties only the engine's inode-based interface can show.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { constants as fsc } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createUnionFs } from '../../src/union/union-fs.js';
import type { UpperFormat } from '../../src/union/upper-writer.js';
import { ROOT_INO, type Caller, type UnionFs } from '../../src/union/types.js';
import { unionCases, runUnionCase, type WithClient } from '../conformance/union-cases.js';
import { EngineClient, expectCode } from '../helpers/clients.js';
import { buildLayer, file, type LayerSpec } from '../helpers/layers.js';
import { TempDirs } from '../helpers/tmp.js';

/** The engine over a case's stack, writing its upper in `upperFormat`. */
const withEngine =
  (upperFormat: UpperFormat): WithClient =>
  async (stack, fn) => {
    const fs = await createUnionFs({ lowers: stack.lowers, upper: stack.upper, workdir: stack.workdir, upperFormat });
    try {
      await fn(new EngineClient(fs));
    } finally {
      await fs.close();
    }
  };

// Every case with the default OCI upper; the writable ones again with the overlay upper (a
// read-only stack writes nothing, so its cases do not depend on the format).
for (const upperFormat of ['oci', 'overlay'] as const) {
  describe(upperFormat === 'oci' ? 'union conformance: engine' : 'union conformance: engine, overlay upper', () => {
    for (const kase of unionCases) {
      if (upperFormat === 'overlay' && !kase.writable) continue;
      it(kase.name, () => runUnionCase(kase, withEngine(upperFormat), { checkWorkdirEmpty: true, upperFormat }));
    }
  });
}

const ROOT: Caller = { uid: 0, gid: 0, pid: process.pid };

describe('engine only', () => {
  const temps = new TempDirs();
  after(() => temps.cleanup());

  /** A writable engine over one lower layer. */
  async function engine(lower: LayerSpec): Promise<{ fs: UnionFs; upper: string; lowerDir: string }> {
    const base = await temps.make('engine');
    const lowerDir = await TempDirs.sub(base, 'lower');
    await buildLayer(lowerDir, lower);
    const upper = await TempDirs.sub(base, 'upper');
    const workdir = await TempDirs.sub(base, 'work');
    return { fs: await createUnionFs({ lowers: [lowerDir], upper, workdir }), upper, lowerDir };
  }

  let fs: UnionFs;
  let upper: string;
  let lowerDir: string;
  before(async () => {
    ({ fs, upper, lowerDir } = await engine([file('a', 'A'), file('d/x', 'x'), file('d/y', 'y'), file('lower', 'old')]));
  });
  after(() => fs.close());

  it('inode numbers are stable across lookups and agree with readdir and getattr', async () => {
    const a1 = await fs.lookup(ROOT_INO, 'a');
    const a2 = await fs.lookup(ROOT_INO, 'a');
    assert.equal(a1.ino, a2.ino);
    assert.equal((await fs.getattr(a1.ino)).ino, a1.ino);
    const d = await fs.lookup(ROOT_INO, 'd');
    for (const entry of await fs.readdir(d.ino)) {
      if (entry.name === '.') assert.equal(entry.ino, d.ino);
      else if (entry.name === '..') assert.equal(entry.ino, ROOT_INO);
      else {
        const attr = await fs.lookup(d.ino, entry.name);
        assert.equal(entry.ino, attr.stIno ?? attr.ino, `readdir vs lookup for ${entry.name}`);
      }
    }
    const root = await fs.readdir(ROOT_INO);
    assert.equal(root.find((e) => e.name === 'a')?.ino, a1.ino);
    assert.equal((await fs.getattr(ROOT_INO)).ino, ROOT_INO);
  });

  it('an open file that is unlinked stays readable and writable; getattr(ino, fh) shows nlink 0', async () => {
    const created = await fs.create(ROOT_INO, 'tmpfile', fsc.S_IFREG | 0o644, fsc.O_RDWR, ROOT);
    const { fh } = created;
    const ino = created.attr.ino;
    try {
      assert.equal(await fs.write(fh, Buffer.from('hello'), 5, 0), 5);
      await fs.unlink(ROOT_INO, 'tmpfile');
      await expectCode(fs.lookup(ROOT_INO, 'tmpfile'), 'ENOENT', 'lookup after unlink');
      const attr = await fs.getattr(ino, fh);
      assert.equal(attr.nlink, 0);
      assert.equal(attr.size, 5);
      assert.equal(await fs.write(fh, Buffer.from('HE'), 2, 0), 2);
      const buf = Buffer.alloc(16);
      const n = await fs.read(fh, buf, 16, 0);
      assert.equal(buf.subarray(0, n).toString(), 'HEllo');
    } finally {
      await fs.release(fh);
    }
    await expectCode(fs.lookup(ROOT_INO, 'tmpfile'), 'ENOENT', 'lookup after release');
  });

  it('a lower file opened for writing, then unlinked, stays usable through its handle', async () => {
    const attr = await fs.lookup(ROOT_INO, 'a');
    const { fh } = await fs.open(attr.ino, fsc.O_RDWR);
    try {
      await fs.unlink(ROOT_INO, 'a');
      assert.equal((await fs.getattr(attr.ino, fh)).nlink, 0);
      await fs.write(fh, Buffer.from('Z'), 1, 1);
      const buf = Buffer.alloc(8);
      const n = await fs.read(fh, buf, 8, 0);
      assert.equal(buf.subarray(0, n).toString(), 'AZ');
    } finally {
      await fs.release(fh);
    }
    await expectCode(fs.lookup(ROOT_INO, 'a'), 'ENOENT', 'lookup /a after unlink');
    assert.equal(await readFile(`${lowerDir}/a`, 'utf8'), 'A', 'lower file untouched');
  });

  it('a read-only handle opened before copy-up reads the new content after a write elsewhere', async () => {
    const attr = await fs.lookup(ROOT_INO, 'lower');
    const ro = await fs.open(attr.ino, fsc.O_RDONLY);
    try {
      const buf = Buffer.alloc(16);
      let n = await fs.read(ro.fh, buf, 16, 0);
      assert.equal(buf.subarray(0, n).toString(), 'old');
      const rw = await fs.open(attr.ino, fsc.O_WRONLY | fsc.O_TRUNC);
      await fs.write(rw.fh, Buffer.from('new!'), 4, 0);
      await fs.release(rw.fh);
      n = await fs.read(ro.fh, buf, 16, 0);
      assert.equal(buf.subarray(0, n).toString(), 'new!');
    } finally {
      await fs.release(ro.fh);
    }
    assert.equal(await readFile(`${upper}/lower`, 'utf8'), 'new!');
    assert.equal(await readFile(`${lowerDir}/lower`, 'utf8'), 'old');
  });

  it('a node looked up before its name was replaced can still be opened (lookup count semantics)', async () => {
    // The kernel looks a name up, then sends OPEN for that node id; a rename replacing the name
    // may run in between. Until FORGET, the node id must stay valid.
    const x = await fs.lookup(ROOT_INO, 'd').then((d) => fs.lookup(d.ino, 'x'));
    const d = await fs.lookup(ROOT_INO, 'd');
    await fs.rename(d.ino, 'y', d.ino, 'x');
    const { fh } = await fs.open(x.ino, fsc.O_RDONLY);
    try {
      const buf = Buffer.alloc(8);
      const n = await fs.read(fh, buf, 8, 0);
      assert.equal(buf.subarray(0, n).toString(), 'x', 'the replaced file still reads its old content');
    } finally {
      await fs.release(fh);
    }
  });
});
