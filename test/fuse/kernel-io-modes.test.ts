// The per-open I/O mode decisions of src/fuse/kernel-io-modes.ts. Real mounts cover what the kernel
// does with them (test/e2e/passthrough.test.ts); these cover the orderings a real mount cannot be
// made to hit on purpose, such as a read-only open finishing while a write open is copying up. The
// backing registrations are recorded instead of being made on /dev/fuse: the decisions are what
// is under test, and each registration's effect is checked on real mounts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type BackingFiles, KernelIoModes } from '../../src/fuse/kernel-io-modes.js';

class RecordedBacking implements BackingFiles {
  readonly open = new Set<number>();
  registrations = 0;
  #next = 1;
  attempts = 0;
  constructor(private readonly failWith?: string) {}
  openBacking(_fd: number): number {
    this.attempts++;
    if (this.failWith !== undefined) throw Object.assign(new Error(this.failWith), { code: this.failWith });
    this.registrations++;
    const id = this.#next++;
    this.open.add(id);
    return id;
  }
  closeBacking(id: number): void {
    assert.ok(this.open.delete(id), `backing id ${id} closed twice or never opened`);
  }
}

const LOWER = { keepCache: true, lowerFd: 99 };
/** Kernel inode of libfuse node `node` (its renewed one with `renewed`); engine inode `node` too. */
const k = (node: number, renewed = false) => ({ node, renewed, ino: node });
const UPPER = { keepCache: false };

describe('KernelIoModes', () => {
  it('read-only opens of a lower file share one backing id, closed at the last release', () => {
    const backing = new RecordedBacking();
    const modes = new KernelIoModes(backing);
    assert.deepEqual(modes.opened(k(7), 1, LOWER), { kind: 'passthrough', backingId: 1 });
    assert.deepEqual(modes.opened(k(7), 2, LOWER), { kind: 'passthrough', backingId: 1 });
    assert.equal(backing.registrations, 1);
    modes.released(1);
    assert.deepEqual([...backing.open], [1], 'still open while a handle uses it');
    modes.released(2);
    assert.deepEqual([...backing.open], []);
    assert.deepEqual(modes.opened(k(7), 3, LOWER), { kind: 'passthrough', backingId: 2 }, 'registered anew');
  });

  it('a content change is refused while the inode has passthrough opens, and allowed after', () => {
    const modes = new KernelIoModes(new RecordedBacking());
    modes.opened(k(7), 1, LOWER);
    assert.equal(modes.beginChange(k(7)), false);
    assert.equal(modes.beginChange(k(8)), true, 'another inode is not concerned');
    modes.endChange(k(8));
    modes.released(1);
    assert.equal(modes.beginChange(k(7)), true);
  });

  it('a change under way holds off passthrough: a read-only open finishing meanwhile is cached', () => {
    const backing = new RecordedBacking();
    const modes = new KernelIoModes(backing);
    assert.equal(modes.beginChange(k(7)), true);
    assert.deepEqual(modes.opened(k(7), 1, LOWER), { kind: 'cached', keepCache: true });
    assert.deepEqual(modes.opened(k(7), 2, UPPER, true), { kind: 'cached', keepCache: false });
    modes.endChange(k(7));
    assert.deepEqual(modes.opened(k(7), 3, LOWER), { kind: 'cached', keepCache: true }, 'cached opens still there');
    assert.equal(backing.registrations, 0);
    for (const fh of [1, 2, 3]) modes.released(fh);
    assert.equal(modes.opened(k(7), 4, LOWER).kind, 'passthrough', 'once every cached open is released');
  });

  it('a writable open is never passthrough, even with a backing id registered for its inode', () => {
    const modes = new KernelIoModes(new RecordedBacking());
    modes.opened(k(7), 1, LOWER);
    assert.deepEqual(modes.opened(k(7), 2, LOWER, true), { kind: 'cached', keepCache: true });
  });

  it('after a metadata copy-up (no lower fd) a read-only open still shares the registered id', () => {
    const modes = new KernelIoModes(new RecordedBacking());
    modes.opened(k(7), 1, LOWER);
    assert.deepEqual(modes.opened(k(7), 2, UPPER), { kind: 'passthrough', backingId: 1 });
    assert.deepEqual(new KernelIoModes(new RecordedBacking()).opened(k(8), 1, UPPER), { kind: 'cached', keepCache: false }, 'no id to share: cached');
  });

  it('without passthrough, or when registration fails, every open is cached; each new failure is reported once', () => {
    assert.deepEqual(new KernelIoModes(undefined).opened(k(7), 1, LOWER), { kind: 'cached', keepCache: true });
    const reported: string[] = [];
    const modes = new KernelIoModes(new RecordedBacking('ELOOP'), (code) => reported.push(code));
    assert.deepEqual(modes.opened(k(7), 1, LOWER), { kind: 'cached', keepCache: true });
    assert.deepEqual(modes.opened(k(8), 2, LOWER), { kind: 'cached', keepCache: true });
    assert.deepEqual(reported, ['ELOOP']);
    assert.equal(modes.beginChange(k(7)), true, 'cached opens block no change');
    assert.equal(modes.opened(k(9), 3, LOWER).kind, 'cached');
  });

  it('after EPERM (the kernel took no passthrough) no open asks for a backing file again', () => {
    const backing = new RecordedBacking('EPERM');
    const reported: string[] = [];
    const modes = new KernelIoModes(backing, (code) => reported.push(code));
    for (let fh = 1; fh <= 5; fh++) assert.deepEqual(modes.opened(k(fh), fh, LOWER), { kind: 'cached', keepCache: true });
    assert.equal(backing.attempts, 1);
    assert.deepEqual(reported, ['EPERM']);
    assert.equal(modes.beginChange(k(1)), true, 'the open tracked before EPERM blocks nothing');
    modes.endChange(k(1));
    for (let fh = 1; fh <= 5; fh++) modes.released(fh);
    assert.equal(modes.beginChange(k(2)), true);
    modes.endChange(k(2));
  });

  it('an ELOOP (a lower layer on a stacked filesystem) is tried again for other files', () => {
    const backing = new RecordedBacking('ELOOP');
    const modes = new KernelIoModes(backing);
    modes.opened(k(7), 1, LOWER);
    modes.opened(k(8), 2, LOWER);
    assert.equal(backing.attempts, 2);
  });

  it('a renewed kernel inode is an inode of its own: it can change while the old one reads the lower file, and never reads it itself', () => {
    const backing = new RecordedBacking();
    const modes = new KernelIoModes(backing);
    assert.equal(modes.opened(k(7), 1, LOWER).kind, 'passthrough');
    assert.equal(modes.beginChange(k(7)), false, 'the old inode cannot take the change');
    assert.equal(modes.beginChange(k(7, true)), true, 'the renewed one can');
    assert.deepEqual(modes.opened(k(7, true), 2, UPPER, true), { kind: 'cached', keepCache: false });
    modes.endChange(k(7, true));
    assert.deepEqual(modes.opened(k(7, true), 3, LOWER), { kind: 'cached', keepCache: true }, 'no passthrough on a renewed inode');
    modes.released(2);
    modes.released(3);
    assert.deepEqual(modes.opened(k(7, true), 4, LOWER), { kind: 'cached', keepCache: true }, 'not even once it is idle');
    assert.deepEqual(modes.opened(k(7), 5, LOWER), { kind: 'passthrough', backingId: 1 }, 'the old inode keeps its backing file');
    assert.equal(backing.registrations, 1);
  });

  it('without a node id (no wrapped channel) the engine inode stands in', () => {
    const modes = new KernelIoModes(new RecordedBacking());
    const byIno = (ino: number) => ({ node: 0, renewed: false, ino });
    assert.equal(modes.opened(byIno(7), 1, LOWER).kind, 'passthrough');
    assert.equal(modes.beginChange(byIno(7)), false);
    assert.equal(modes.beginChange(byIno(8)), true, 'another engine inode is not concerned');
    assert.equal(modes.beginChange(k(7)), true, 'nor is a kernel inode known by its node id');
  });
});
