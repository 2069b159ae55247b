// layerfs as containers/storage's overlay `mount_program`, driven by a real client: Debian's
// buildah with a private graph root and run root (storage.conf via CONTAINERS_STORAGE_CONF,
// registries.conf via CONTAINERS_REGISTRIES_CONF, a policy in a private HOME), against the
// project's test registry (Debian's docker-registry).
//
//   push an image built in code (whiteouts, an opaque dir, hardlinks) → buildah from → buildah
//   mount: the tree equals umoci's unpack of the same image → write, delete, rename through the
//   mount: the tree equals the same changes made to a plain copy of umoci's unpack, and the upper
//   (the container's diff dir) is in the overlay form → buildah umount ends the daemon → buildah
//   commit + push → layerfs pull + mount --read-only shows exactly the changed tree.
//
// The same steps with Debian's fuse-overlayfs as the mount program must give the same result:
// the two changed trees, the two committed layers and the two pulled images are compared.
//
// Needs root, /dev/fuse, buildah, fuse-overlayfs, umoci, docker-registry, GNU tar.
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, unlink, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TempDirs, isMounted } from '../helpers/tmp.js';
import { dumpHostDir, linePath } from '../helpers/tree-dump.js';
import { buildTestImage } from '../registry/harness/images.js';
import { pushTestImage } from '../registry/harness/push.js';
import { type RunningRegistry, useRegistry } from '../registry/harness/registry-server.js';
import { alive, waitFor } from '../helpers/process.js';
import {
  BASE,
  FUSE_OVERLAYFS,
  LAYER1,
  LAYER2,
  MOUNT_PROGRAM,
  type Outcome,
  VARIANTS,
  type Variant,
  changedMountTree,
  freshMountTree,
  unmountAndCheck,
  assertPulled,
  assertSameOutcome,
  committedLayer,
  containersSuiteSkip,
  daemonStates,
  exec,
  expectedTrees,
  fstypeAt,
  layerfsEnvFor,
  pulledTree,
  storageEnv,
  writeStorageFiles,
  run,
} from './containers-storage-env.js';

// ---- the suite ---------------------------------------------------------------------------------

/** Why this suite cannot run here; never skipped in CI (CI is set), where it must run. */
const suiteSkip = (): string | false => containersSuiteSkip('buildah', ['buildah', 'fuse-overlayfs', 'umoci', 'tar']);

describe('layerfs-overlay as the mount_program of buildah (containers/storage)', { skip: suiteSkip() }, () => {
  const getRegistry = useRegistry();
  const temps = new TempDirs();
  let reg: RunningRegistry;
  let work = '';
  let baseRef = '';
  let expected: string[] = [];
  let expectedChanged: string[] = [];
  const outcomes = new Map<Variant, Partial<Outcome>>();
  let layerfsEnv: NodeJS.ProcessEnv = {};

  before(async () => {
    reg = getRegistry();
    work = await temps.make('mount-program');
    await mkdir(join(work, 'home'), { recursive: true });
    await writeFile(join(work, 'registries.json'), '{}');
    layerfsEnv = layerfsEnvFor(work);

    const image = await buildTestImage([BASE, LAYER1, LAYER2]);
    await pushTestImage(reg, 'test/mp', '1', image);
    baseRef = `${reg.host}/test/mp:1`;

    // The judge: umoci's unpack of the same image, and the same changes made to a plain copy of it.
    ({ expected, expectedChanged } = await expectedTrees(work, image, layerfsEnv));
  });

  after(async () => {
    for (const variant of VARIANTS) {
      await run('buildah', ['rm', '--all'], buildahEnv(variant)).catch(() => undefined);
    }
    await temps.cleanup();
  });

  it('the expected tree (umoci) has the layers\' whiteouts and opaque directory applied', () => {
    const has = (line: string) => assert.ok(expected.some((l) => l.startsWith(line)), `${line} in\n${expected.join('\n')}`);
    const lacks = (path: string) => assert.ok(!expected.some((l) => linePath(l) === path), `no ${path}`);
    has('/etc/hostname file 0644 0 0 7 ');
    has('/srv dir 0711 ');
    has('/opt/app/new1 ');
    has('/srv/data/sub/d.txt ');
    has('/usr/bin/suid file 4755 ');
    for (const path of ['/etc/gone.conf', '/var/lib/gone', '/opt/app/old', '/opt/app/old1', '/srv/data/sub/c.txt']) lacks(path);
  });

  /** Private storage for one mount program: graph root, run root, storage.conf, registries.conf, policy. */
  const variantDir = (variant: Variant): string => join(work, variant);
  const runDir = (variant: Variant): string => join(variantDir(variant), 'layerfs-run');
  const buildahEnv = (variant: Variant): NodeJS.ProcessEnv => storageEnv(variantDir(variant), { BUILDAH_ISOLATION: 'chroot' });
  const prepareVariant = (variant: Variant) => writeStorageFiles(variantDir(variant), variant === 'layerfs' ? MOUNT_PROGRAM : FUSE_OVERLAYFS, reg.host);

  const buildah = (variant: Variant, args: string[]) => run('buildah', args, buildahEnv(variant));
  const container = (variant: Variant) => `mp-${variant}`;
  const pushedRef = (variant: Variant) => `${reg.host}/test/pushed-${variant}:2`;

  for (const variant of VARIANTS) {
    const outcome: Partial<Outcome> = {};
    outcomes.set(variant, outcome);
    let mountpoint = '';

    it(`${variant}: buildah from, buildah mount: the tree equals umoci's unpack`, async () => {
      await prepareVariant(variant);
      await buildah(variant, ['from', '--tls-verify=false', '--name', container(variant), baseRef]);
      mountpoint = (await buildah(variant, ['mount', container(variant)])).stdout.trim();
      outcome.fresh = await freshMountTree(variant, mountpoint, join(variantDir(variant), 'graph'), runDir(variant));
      assert.deepEqual(outcome.fresh, expected);
    });

    it(`${variant}: write, delete, rename through the mount: the same tree as those changes made to a plain copy`, async () => {
      assert.ok(mountpoint !== '' && isMounted(mountpoint), 'mounted by the previous test');
      outcome.changed = await changedMountTree(variant, mountpoint);
      assert.deepEqual(outcome.changed, expectedChanged);
    });

    it(`${variant}: buildah umount ends the mount${variant === 'layerfs' ? ' and its daemon' : ''}`, async () => {
      await unmountAndCheck(variant, mountpoint, runDir(variant), () => buildah(variant, ['umount', container(variant)]));
    });

    it(`${variant}: buildah commit + push; layerfs pull + mount --read-only shows exactly the changed tree`, async (t) => {
      await buildah(variant, ['commit', '--quiet', '--format', 'oci', container(variant), pushedRef(variant)]);
      await buildah(variant, ['push', '--tls-verify=false', pushedRef(variant)]);
      // No mount is left behind by commit (it mounts the container and its parent again).
      const leftover = (await daemonStates(runDir(variant))).filter((s) => alive(s.pid));
      assert.deepEqual(leftover, [], 'no layerfs daemon left running after commit');

      outcome.layer = await committedLayer(reg, `test/pushed-${variant}`, '2', 4, join(work, `${variant}-layer.tar`), layerfsEnv);
      outcome.pulled = await pulledTree(work, variant, pushedRef(variant), layerfsEnv);
      assertPulled(variant, outcome.pulled, expected, expectedChanged, t);
    });
  }

  it('layerfs and fuse-overlayfs as the mount program give the same result', (t) => {
    assertSameOutcome(outcomes.get('layerfs')!, outcomes.get('fuse-overlayfs')!, 'buildah', t);
  });
});

// ---- the program on its own ---------------------------------------------------------------------

describe('layerfs-overlay on its own: daemon, unmount from outside, errors', () => {
  const temps = new TempDirs();
  after(() => temps.cleanup());

  interface Exit {
    code: number;
    stdout: string;
    stderr: string;
  }

  async function program(args: string[], env: NodeJS.ProcessEnv): Promise<Exit> {
    try {
      const { stdout, stderr } = await exec(process.execPath, [MOUNT_PROGRAM, ...args], { env: { ...process.env, ...env }, timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  /** A failure: non-zero exit, exactly one line on stderr, `layerfs-overlay: …` matching. */
  function failsWith(r: Exit, code: number, pattern: RegExp): void {
    assert.equal(r.code, code, `exit status; stderr:\n${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `one line:\n${r.stderr}`);
    assert.match(lines[0]!, /^layerfs-overlay: /);
    assert.match(lines[0]!, pattern);
  }

  async function stack(): Promise<{ base: string; lower: string; upper: string; work: string; mnt: string; run: string }> {
    const base = await temps.make('overlay-program');
    const dirs = { base, lower: join(base, 'lower'), upper: join(base, 'upper'), work: join(base, 'work'), mnt: join(base, 'mnt'), run: join(base, 'run') };
    for (const d of [dirs.lower, dirs.upper, dirs.work, dirs.mnt, join(dirs.lower, 'd')]) await mkdir(d, { recursive: true });
    await writeFile(join(dirs.lower, 'a'), 'a\n');
    await writeFile(join(dirs.lower, 'd', 'x'), 'x\n');
    return dirs;
  }

  async function states(run: string): Promise<Array<{ pid: number; mountpoint: string }>> {
    const dirPath = join(run, 'mounts');
    const names = await readdir(dirPath).catch(() => [] as string[]);
    return Promise.all(names.filter((n) => n.endsWith('.json')).map(async (n) => JSON.parse(await readFile(join(dirPath, n), 'utf8')) as { pid: number; mountpoint: string }));
  }

  it('daemonizes once the mount is ready, writes the overlay form, exits when fusermount3 -u unmounts it', async () => {
    const s = await stack();
    const r = await program(['-o', `lowerdir=${s.lower},upperdir=${s.upper},workdir=${s.work},,volatile`, '-o', 'xattr_permissions=2', s.mnt], { LAYERFS_RUN_DIR: s.run });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'ignored options are reported at debug level only');
    assert.ok(isMounted(s.mnt), 'mounted when the program returns');
    assert.equal(fstypeAt(s.mnt), 'fuse.layerfs');
    const [state] = await states(s.run);
    assert.ok(state !== undefined && alive(state.pid), 'a daemon serves the mount');

    assert.equal(await readFile(join(s.mnt, 'a'), 'utf8'), 'a\n');
    await unlink(join(s.mnt, 'a'));
    await rm(join(s.mnt, 'd'), { recursive: true });
    await mkdir(join(s.mnt, 'd'));
    await writeFile(join(s.mnt, 'd', 'new'), 'new\n');
    const upper = await dumpHostDir(s.upper);
    const line = (p: string) => upper.find((l) => linePath(l) === p) ?? `${p} missing`;
    assert.match(line('/a'), /^\/a chr 0000 0 0 0 - - 0,0 -$/);
    assert.match(line('/d'), / trusted\.overlay\.opaque=79$/);
    assert.deepEqual(upper.filter((l) => linePath(l).includes('.wh.')), []);

    await exec('fusermount3', ['-u', s.mnt]);
    await waitFor(() => !alive(state!.pid), 'the daemon to exit');
    assert.deepEqual(await states(s.run), [], 'its state is removed');
    assert.ok(!isMounted(s.mnt));
  });

  it('lowerdir alone is read-only; umount ends it too', async () => {
    const s = await stack();
    const r = await program(['-o', `lowerdir=${s.upper}:${s.lower}`, s.mnt], { LAYERFS_RUN_DIR: s.run });
    assert.equal(r.code, 0, r.stderr);
    await assert.rejects(writeFile(join(s.mnt, 'new'), 'x'), { code: 'EROFS' });
    assert.deepEqual((await readdir(s.mnt)).sort(), ['a', 'd']);
    const [state] = await states(s.run);
    await exec('umount', [s.mnt]);
    await waitFor(() => !alive(state!.pid), 'the daemon to exit');
  });

  it('errors: one line, non-zero exit, nothing mounted', async () => {
    const s = await stack();
    const env = { LAYERFS_RUN_DIR: s.run };
    failsWith(await program(['-o', `lowerdir=${s.lower},upperdir=${s.upper},workdir=${s.work},uidmapping=0:1000:1`, s.mnt], env), 2, /uidmapping is not supported/);
    failsWith(await program(['-o', `upperdir=${s.upper}`, s.mnt], env), 2, /lowerdir is required/);
    failsWith(await program(['-o', `lowerdir=${join(s.base, 'nowhere')}`, s.mnt], env), 1, /lower directory .*nowhere does not exist/);
    await writeFile(join(s.mnt, 'junk'), 'x');
    failsWith(await program(['-o', `lowerdir=${s.lower}`, s.mnt], env), 1, /is not empty/);
    assert.ok(!isMounted(s.mnt));
    assert.deepEqual(await states(s.run), []);
  });
});
