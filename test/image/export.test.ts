// exportRootfs: the flattened view as one plain tar. Extracted by GNU tar and by our extractor and
// compared with the expected flattened tree; hardlinks checked in `tar -tvf` and by inode.
import assert from 'node:assert/strict';
import { createReadStream, createWriteStream, lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { extractLayer } from '../../src/extract/index.js';
import { exportRootfs } from '../../src/image/export.js';
import { comparePaths } from '../../src/image/lower-view.js';
import { run } from '../extract/support.js';
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
import { assertTree, dumpHostDir } from '../helpers/tree-dump.js';

const temps = new TempDirs();
after(() => temps.cleanup());

const BOTTOM: LayerSpec = [
  file('etc/passwd', 'p0'),
  file('etc/group', 'g0'),
  file('etc/shadow', 's0'),
  file('usr/lib/a.so', 'a'),
  file('usr/lib/sub/c.so', 'c'),
  file('opt/tool/bin', 'tool'),
  file('srv/file', 'a file'),
  file('var/cache/x', 'x'),
  symlink('etc/localtime', '/usr/share/zoneinfo/UTC'),
  // Hardlink groups, each touched differently above.
  file('bin/a', 'data'),
  hardlink('bin/b', 'bin/a'),
  hardlink('bin/c', 'bin/a'),
  file('lib/x', 'x'),
  hardlink('lib/y', 'lib/x'),
  hardlink('lib/z', 'lib/x'),
  file('data/f', 'df'),
  hardlink('keep/g', 'data/f'),
  file('share/m', 'm'),
  hardlink('share/n', 'share/m'),
  file('home/u', 'u'),
  hardlink('home/v', 'home/u'),
];

const MIDDLE: LayerSpec = [
  whiteout('etc/shadow'),
  dir('usr', { mode: 0o711 }),
  opaque('usr/lib'),
  file('usr/lib/new.so', 'n'),
  whiteout('bin/a'), // the first name of a hardlink group
  opaque('data'), // hides data/f, the first name of keep/g's group
  file('data/other', 'o'),
  dir('srv/file'), // a directory over a lower file
  file('srv/file/inner', 'i'),
];

const UPPER: LayerSpec = [
  file('etc/passwd', 'p-upper'),
  overlayWhiteout('etc/group'),
  file('lib/x', 'changed'), // copy-up of the first name of a group
  whiteout('home/u'),
  file('var/cache', 'now a file'), // a file over a lower directory
  overlayOpaque('opt'),
  file('opt/new', 'n'),
  file('up/h1', 'hh'),
  hardlink('up/h2', 'up/h1'),
];

/** The merged view of UPPER over MIDDLE over BOTTOM, flattened. */
const FLATTENED: LayerSpec = [
  file('etc/passwd', 'p-upper'),
  symlink('etc/localtime', '/usr/share/zoneinfo/UTC'),
  dir('usr', { mode: 0o711 }),
  file('usr/lib/new.so', 'n'),
  file('opt/new', 'n'),
  file('srv/file/inner', 'i'),
  file('var/cache', 'now a file'),
  file('bin/b', 'data'),
  file('bin/c', 'data'),
  file('lib/x', 'changed'),
  file('lib/y', 'x'),
  file('lib/z', 'x'),
  file('data/other', 'o'),
  file('keep/g', 'df'),
  file('share/m', 'm'),
  file('share/n', 'm'),
  file('home/v', 'u'),
  file('up/h1', 'hh'),
  file('up/h2', 'hh'),
];

let lowers: string[];
let upper: string;

before(async () => {
  const base = await temps.make('export-stack');
  const build = async (name: string, spec: LayerSpec): Promise<string> => {
    const layerDir = await TempDirs.sub(base, name);
    await buildLayer(layerDir, spec);
    return layerDir;
  };
  lowers = [await build('middle', MIDDLE), await build('bottom', BOTTOM)];
  upper = await build('upper', UPPER);
});

async function exportTo(layerDirs: string[], upperDir: string | undefined): Promise<string> {
  const tar = join(await temps.make('export'), 'rootfs.tar');
  await exportRootfs(layerDirs, upperDir, createWriteStream(tar));
  return tar;
}

async function extractWithGnuTar(tar: string): Promise<string> {
  const target = await TempDirs.sub(await temps.make('gnu'), 'rootfs');
  run('tar', ['-xf', tar, '-C', target, '--xattrs', '--xattrs-include=*', '--numeric-owner']);
  return target;
}

async function extractWithOurs(tar: string): Promise<string> {
  const target = await TempDirs.sub(await temps.make('ours'), 'rootfs');
  await extractLayer(createReadStream(tar), target);
  return target;
}

async function expectedTree(spec: LayerSpec): Promise<string[]> {
  const expected = await TempDirs.sub(await temps.make('expected'), 'rootfs');
  await buildLayer(expected, spec);
  return dumpHostDir(expected);
}

const names = (tar: string): string[] => run('tar', ['-tf', tar]).toString().split('\n').filter((l) => l !== '');

/** `NAME link to TARGET` lines of `tar -tvf`. */
function hardlinks(tar: string): string[] {
  return run('tar', ['-tvf', tar])
    .toString()
    .split('\n')
    .filter((line) => line.startsWith('h'))
    .map((line) => line.slice(line.search(/\S+ link to /)));
}

function sameInode(root: string, ...paths: string[]): boolean {
  return new Set(paths.map((p) => lstatSync(join(root, p)).ino)).size === 1;
}

describe('exportRootfs', () => {
  it('flattens whiteouts, opaque dirs and type changes; no markers, no overlay xattrs', async () => {
    const tar = await exportTo(lowers, upper);
    const expected = await expectedTree(FLATTENED);
    assertTree(await dumpHostDir(await extractWithGnuTar(tar)), expected);
    assertTree(await dumpHostDir(await extractWithOurs(tar)), expected);
    assert.deepEqual(names(tar).filter((n) => n.includes('.wh.')), []);
    const paths = names(tar).map((n) => n.replace(/\/$/, ''));
    for (let i = 1; i < paths.length; i++) assert.ok(comparePaths(paths[i - 1]!, paths[i]!) < 0, `${paths[i - 1]} before ${paths[i]}`);
  });

  it('hardlink groups: deleted or changed names leave the rest linked, with the data on the first visible name', async () => {
    const tar = await exportTo(lowers, upper);
    assert.deepEqual(hardlinks(tar), ['bin/c link to bin/b', 'lib/z link to lib/y', 'share/n link to share/m', 'up/h2 link to up/h1']);
    for (const root of [await extractWithGnuTar(tar), await extractWithOurs(tar)]) {
      assert.ok(sameInode(root, 'bin/b', 'bin/c'));
      assert.equal(readFileSync(join(root, 'bin/b'), 'utf8'), 'data');
      assert.ok(sameInode(root, 'lib/y', 'lib/z'));
      assert.ok(!sameInode(root, 'lib/x', 'lib/y'), 'the copied-up name left the group');
      assert.equal(lstatSync(join(root, 'lib/x')).nlink, 1);
      assert.equal(lstatSync(join(root, 'keep/g')).nlink, 1, 'the only visible name of its group');
      assert.equal(readFileSync(join(root, 'keep/g'), 'utf8'), 'df');
      assert.equal(lstatSync(join(root, 'home/v')).nlink, 1);
      assert.ok(sameInode(root, 'share/m', 'share/n'));
      assert.ok(sameInode(root, 'up/h1', 'up/h2'));
    }
  });

  it('without an upper: the image as its layers show it', async () => {
    const tar = await exportTo(lowers, undefined);
    assert.deepEqual(hardlinks(tar), ['bin/c link to bin/b', 'home/v link to home/u', 'lib/y link to lib/x', 'lib/z link to lib/x', 'share/n link to share/m']);
    const root = await extractWithGnuTar(tar);
    assert.equal(readFileSync(join(root, 'etc/group'), 'utf8'), 'g0');
    assert.equal(readFileSync(join(root, 'opt/tool/bin'), 'utf8'), 'tool');
    assert.ok(lstatSync(join(root, 'var/cache')).isDirectory());
    assert.ok(lstatSync(join(root, 'srv/file')).isDirectory());
    assert.equal(lstatSync(join(root, 'etc/shadow'), { throwIfNoEntry: false }), undefined);
    assert.ok(sameInode(root, 'lib/x', 'lib/y', 'lib/z'));
  });

  it('is deterministic', async () => {
    const a = readFileSync(await exportTo(lowers, upper));
    const b = readFileSync(await exportTo(lowers, upper));
    assert.ok(a.equals(b));
  });

  it('an aborted export rejects and destroys `out`', async () => {
    const out = createWriteStream(join(await temps.make('export'), 'rootfs.tar'));
    await assert.rejects(exportRootfs(lowers, upper, out, { signal: AbortSignal.abort() }), { name: 'AbortError' });
    assert.equal(out.destroyed, true);
  });

  it('a hardlink group hidden behind an opaque layer root', async () => {
    const base = await temps.make('export-root');
    const top = await TempDirs.sub(base, 'top');
    const bottom = await TempDirs.sub(base, 'bottom');
    await buildLayer(bottom, [file('a', 'old'), hardlink('b', 'a')]);
    await buildLayer(top, [opaque(''), file('b', 'new'), hardlink('c', 'b')]);
    const tar = await exportTo([top, bottom], undefined);
    assert.deepEqual(names(tar), ['b', 'c']);
    assert.deepEqual(hardlinks(tar), ['c link to b']);
  });
});
