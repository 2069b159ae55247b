// computeChanges (docker diff) over real layer directories and an upper built from specs, plus the
// lower view it rests on.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { computeChanges } from '../../src/image/changes.js';
import { LowerView, comparePaths } from '../../src/image/lower-view.js';
import {
  type LayerSpec,
  buildLayer,
  dir,
  file,
  hardlink,
  opaque,
  overlayOpaque,
  overlayWhiteout,
  symlink,
  whiteout,
} from '../helpers/layers.js';
import { TempDirs } from '../helpers/tmp.js';

const temps = new TempDirs();
after(() => temps.cleanup());

/** Layer directories for `lowers` (top first) and `upper`, built in a fresh temp dir. */
async function buildStack(lowers: LayerSpec[], upper: LayerSpec): Promise<{ lowerDirs: string[]; upperDir: string }> {
  const base = await temps.make('changes');
  const lowerDirs: string[] = [];
  for (const [i, spec] of lowers.entries()) {
    const layerDir = await TempDirs.sub(base, `lower${i}`);
    await buildLayer(layerDir, spec);
    lowerDirs.push(layerDir);
  }
  const upperDir = await TempDirs.sub(base, 'upper');
  await buildLayer(upperDir, upper);
  return { lowerDirs, upperDir };
}

async function changesOf(lowers: LayerSpec[], upper: LayerSpec): Promise<string[]> {
  const { lowerDirs, upperDir } = await buildStack(lowers, upper);
  return (await computeChanges(lowerDirs, upperDir)).map((c) => `${c.kind} ${c.path}`);
}

const BASE: LayerSpec = [
  file('etc/passwd', 'root:x:0:0'),
  file('etc/group', 'root:x:0:'),
  file('usr/lib/a.so', 'a'),
  file('usr/lib/b.so', 'b'),
  file('usr/lib/sub/c.so', 'c'),
  file('srv/old/f', 'f'),
  file('srv/old/sub/g', 'g'),
  file('opt/tool', 'a file'),
  dir('var/cache'),
  file('var/cache/x', 'x'),
];

interface Case {
  name: string;
  lowers: LayerSpec[];
  upper: LayerSpec;
  expected: string[];
}

const CASES: Case[] = [
  { name: 'nothing changed', lowers: [BASE], upper: [], expected: [] },
  { name: 'create a file in a lower dir', lowers: [BASE], upper: [file('etc/new.conf', 'n')], expected: ['C /etc', 'A /etc/new.conf'] },
  {
    name: 'create a new tree',
    lowers: [BASE],
    upper: [file('app/bin/run', '#!'), symlink('app/current', 'bin')],
    expected: ['A /app', 'A /app/bin', 'A /app/bin/run', 'A /app/current'],
  },
  { name: 'modify a lower file', lowers: [BASE], upper: [file('etc/passwd', 'changed')], expected: ['C /etc', 'C /etc/passwd'] },
  {
    name: 'chmod a lower file (same content)',
    lowers: [BASE],
    upper: [file('etc/passwd', 'root:x:0:0', { mode: 0o600 })],
    expected: ['C /etc', 'C /etc/passwd'],
  },
  { name: 'chmod a lower directory', lowers: [BASE], upper: [dir('var/cache', { mode: 0o700 })], expected: ['C /var', 'C /var/cache'] },
  { name: 'delete a lower file', lowers: [BASE], upper: [whiteout('etc/group')], expected: ['C /etc', 'D /etc/group'] },
  {
    name: 'delete a lower directory: the directory, not its contents',
    lowers: [BASE],
    upper: [whiteout('usr/lib')],
    expected: ['C /usr', 'D /usr/lib'],
  },
  {
    name: 'delete and recreate a lower directory (opaque)',
    lowers: [BASE],
    upper: [opaque('usr/lib'), file('usr/lib/a.so', 'new a'), file('usr/lib/new.so', 'n')],
    expected: ['C /usr', 'C /usr/lib', 'C /usr/lib/a.so', 'D /usr/lib/b.so', 'A /usr/lib/new.so', 'D /usr/lib/sub'],
  },
  {
    name: 'an opaque directory replaces its subdirectories too',
    lowers: [BASE],
    upper: [opaque('usr'), file('usr/lib/sub/c.so', 'c2')],
    expected: ['C /usr', 'C /usr/lib', 'D /usr/lib/a.so', 'D /usr/lib/b.so', 'C /usr/lib/sub', 'C /usr/lib/sub/c.so'],
  },
  {
    name: 'overlay-form opaque directory',
    lowers: [BASE],
    upper: [overlayOpaque('usr/lib', 'trusted'), file('usr/lib/b.so', 'b2')],
    expected: ['C /usr', 'C /usr/lib', 'D /usr/lib/a.so', 'C /usr/lib/b.so', 'D /usr/lib/sub'],
  },
  {
    name: 'rename a lower directory: whiteout + new opaque directory',
    lowers: [BASE],
    upper: [whiteout('srv/old'), opaque('srv/new'), file('srv/new/f', 'f'), file('srv/new/sub/g', 'g')],
    expected: ['C /srv', 'A /srv/new', 'A /srv/new/f', 'A /srv/new/sub', 'A /srv/new/sub/g', 'D /srv/old'],
  },
  { name: 'whiteout of a name that does not exist below', lowers: [BASE], upper: [whiteout('etc/ghost')], expected: ['C /etc'] },
  { name: 'whiteout inside a new directory', lowers: [BASE], upper: [whiteout('newdir/x')], expected: ['A /newdir'] },
  { name: 'overlay-form whiteout (0/0 device)', lowers: [BASE], upper: [overlayWhiteout('etc/passwd')], expected: ['C /etc', 'D /etc/passwd'] },
  {
    name: 'a marker and a real entry of the same name: the entry wins',
    lowers: [BASE],
    upper: [whiteout('etc/passwd'), file('etc/passwd', 'recreated')],
    expected: ['C /etc', 'C /etc/passwd'],
  },
  {
    name: 'a lower file replaced by a directory',
    lowers: [BASE],
    upper: [opaque('opt/tool'), file('opt/tool/bin', 'x')],
    expected: ['C /opt', 'C /opt/tool', 'A /opt/tool/bin'],
  },
  { name: 'a lower directory replaced by a file', lowers: [BASE], upper: [file('var/cache', 'now a file')], expected: ['C /var', 'C /var/cache'] },
  {
    name: 'an opaque upper root deletes every lower top-level name',
    lowers: [BASE],
    upper: [opaque(''), file('etc/passwd', 'p')],
    expected: ['C /etc', 'D /etc/group', 'C /etc/passwd', 'D /opt', 'D /srv', 'D /usr', 'D /var'],
  },
  {
    name: 'what a higher lower layer deleted did not exist before',
    lowers: [[whiteout('etc/passwd'), whiteout('usr/lib')], BASE],
    upper: [file('etc/passwd', 'again'), whiteout('etc/group'), whiteout('usr/lib/a.so')],
    expected: ['C /etc', 'D /etc/group', 'A /etc/passwd', 'C /usr', 'A /usr/lib'],
  },
  {
    name: 'a higher lower layer that is opaque hides the layers below it',
    lowers: [[opaque('usr/lib'), file('usr/lib/z.so', 'z')], BASE],
    upper: [whiteout('usr/lib/a.so'), whiteout('usr/lib/z.so')],
    expected: ['C /usr', 'C /usr/lib', 'D /usr/lib/z.so'],
  },
  { name: 'no lower layers: everything is added', lowers: [], upper: [file('a/b', 'x'), whiteout('c')], expected: ['A /a', 'A /a/b'] },
  {
    name: 'order: component by component in byte order',
    lowers: [],
    upper: [file('a-b', ''), file('a/b', ''), file('B', ''), file('a/é', ''), file('a/z', '')],
    expected: ['A /B', 'A /a', 'A /a/b', 'A /a/z', 'A /a/é', 'A /a-b'],
  },
  {
    name: 'a hardlink in the upper is just another name',
    lowers: [BASE],
    upper: [file('etc/passwd', 'p'), hardlink('etc/passwd-', 'etc/passwd')],
    expected: ['C /etc', 'C /etc/passwd', 'A /etc/passwd-'],
  },
];

describe('computeChanges', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      assert.deepEqual(await changesOf(c.lowers, c.upper), c.expected);
    });
  }

  it('returns paths already sorted as comparePaths sorts them', async () => {
    const changes = await changesOf([BASE], [opaque('usr'), file('usr/lib-x', ''), file('usr/lib/q', ''), whiteout('etc/group')]);
    const paths = changes.map((line) => line.slice(2));
    assert.deepEqual([...paths].sort(comparePaths), paths);
  });

  it('refuses an upper that is not a directory', async () => {
    const base = await temps.make('changes');
    await assert.rejects(computeChanges([], join(base, 'missing')), { code: 'ENOENT' });
  });
});

describe('LowerView', () => {
  it('lookup: top-down, stopping at whiteouts, opaque dirs and non-directories', async () => {
    const { lowerDirs } = await buildStack(
      [
        [whiteout('etc/group'), opaque('usr/lib'), file('usr/lib/z', 'z'), file('srv', 'file over dir')],
        [file('etc/shadow', 's'), dir('usr/lib'), file('var/cache/y', 'y')],
        BASE,
      ],
      [],
    );
    const view = new LowerView(lowerDirs);
    const at = (path: string) => {
      const entry = view.lookup(path);
      return entry === undefined ? undefined : { kind: entry.kind, layer: entry.layer, layers: entry.layers };
    };
    assert.deepEqual(at('/etc'), { kind: 'dir', layer: 0, layers: [0, 1, 2] });
    assert.deepEqual(at('/etc/passwd'), { kind: 'file', layer: 2, layers: [2] });
    assert.deepEqual(at('/etc/shadow'), { kind: 'file', layer: 1, layers: [1] });
    assert.equal(at('/etc/group'), undefined);
    assert.deepEqual(at('/usr/lib'), { kind: 'dir', layer: 0, layers: [0] });
    assert.equal(at('/usr/lib/a.so'), undefined);
    assert.deepEqual(at('/srv'), { kind: 'file', layer: 0, layers: [0] });
    assert.equal(at('/srv/old/f'), undefined);
    assert.deepEqual(at('/var/cache'), { kind: 'dir', layer: 1, layers: [1, 2] });
    assert.equal(at('/etc/.wh.group'), undefined, 'markers cannot be looked up');
    assert.equal(at('/usr/lib/.wh..wh..opq'), undefined);
    assert.deepEqual(view.list('/usr/lib').map((e) => e.name), ['z']);
    assert.deepEqual(view.list('/').map((e) => e.name), ['etc', 'opt', 'srv', 'usr', 'var']);
    assert.deepEqual(view.list('/var/cache').map((e) => `${e.name}@${e.layer}`), ['x@2', 'y@1']);
    assert.deepEqual(view.list('/srv'), [], 'a file lists nothing');
  });

  it('a whiteout never hides an entry of its own layer; an opaque layer root hides the layers below', async () => {
    const { lowerDirs } = await buildStack([[file('a', 'top'), whiteout('a'), opaque(''), file('b', 'b')], [file('c', 'c')]], []);
    const view = new LowerView(lowerDirs);
    assert.equal(view.lookup('/a')?.layer, 0);
    assert.equal(view.lookup('/c'), undefined);
    assert.deepEqual(view.list('/').map((e) => e.name), ['a', 'b']);
  });
});
