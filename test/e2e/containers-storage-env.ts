// What the suites that drive a real containers/storage client (buildah, podman) with layerfs as the
// overlay `mount_program` share: the requirements, a private storage set-up per mount program
// (graph root, run root, storage.conf, registries.conf, policy), the test image (whiteouts, an
// opaque dir, hardlinks), the changes made through a mount, the judge (umoci's unpack of the same
// image, and the same changes made to a plain copy of it), and the comparison of the outcome with
// layerfs against the one with fuse-overlayfs.
//
// Used by mount-program.test.ts (buildah) and podman-mount-program.test.ts (podman).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, rename, rm, symlink as fsSymlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import { digestHex } from '../../src/oci/digest.js';
import { MountClient } from '../helpers/clients.js';
import { LAYERFS_BIN, LAYERFS_OVERLAY_BIN } from '../helpers/mount.js';
import { alive, onPath, waitFor } from '../helpers/process.js';
import { isMounted } from '../helpers/tmp.js';
import { type EntrySpec, dir, file, hardlink, symlink } from '../helpers/tar-builder.js';
import { dumpHostDir, dumpTree, linePath } from '../helpers/tree-dump.js';
import type { TestImage } from '../registry/harness/images.js';
import { getBlob, getManifest } from '../registry/harness/push.js';
import { type RunningRegistry, registryUnavailable } from '../registry/harness/registry-server.js';

export const exec = promisify(execFile);
/** bin/layerfs-overlay.js */
export const MOUNT_PROGRAM = LAYERFS_OVERLAY_BIN;
export const FUSE_OVERLAYFS = '/usr/bin/fuse-overlayfs';

/** The two mount programs every step runs with, in this order. */
export type Variant = 'layerfs' | 'fuse-overlayfs';
export const VARIANTS = ['layerfs', 'fuse-overlayfs'] as const;

// ---- environment -------------------------------------------------------------------------------

/**
 * Why a suite driving `client` (buildah, podman) cannot run here: no registry, not root, no
 * /dev/fuse, or one of `tools` missing. Never skipped in CI (CI is set), where it must run.
 */
export function containersSuiteSkip(client: string, tools: string[]): string | false {
  if (process.env.CI) return false;
  const registry = registryUnavailable();
  if (registry !== undefined) return registry;
  if (process.getuid?.() !== 0) return `${client} with a FUSE mount program needs root here`;
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    return '/dev/fuse is not usable';
  }
  for (const tool of tools) {
    if (!onPath(tool)) return `${tool} is missing (apt-get install ${tool}, or scripts/setup-system.sh with LAYERFS_TEST_PACKAGES=1)`;
  }
  return false;
}

export interface Result {
  stdout: string;
  stderr: string;
}

export async function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Result> {
  try {
    return await exec(cmd, args, { env, timeout: 120_000, maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string; message?: string };
    throw new Error(`${cmd} ${args.join(' ')} failed (${String(e.code)}):\n${e.stderr ?? ''}${e.stdout ?? ''}${e.message ?? ''}`);
  }
}

/** The file system type of the mount at exactly `path` (the top one), from /proc/self/mountinfo. */
export function fstypeAt(path: string): string | undefined {
  let found: string | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash > 0 && fields[4] === path) found = fields[dash + 1];
  }
  return found;
}

/** The type a mount made by `variant` shows in mountinfo. */
export const fstypeOf = (variant: Variant): string => (variant === 'layerfs' ? 'fuse.layerfs' : 'fuse.fuse-overlayfs');

export const sha256hex = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/** The environment of `layerfs` commands: a private HOME, registry config and no inherited layerfs settings. */
export function layerfsEnvFor(work: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: join(work, 'home'), DOCKER_CONFIG: join(work, 'docker'), LAYERFS_CONFIG: join(work, 'registries.json') };
  for (const key of ['XDG_RUNTIME_DIR', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'LAYERFS_ROOT', 'LAYERFS_LOG', 'LAYERFS_RUN_DIR']) delete env[key];
  return env;
}

/**
 * The environment of a containers/storage client whose storage lives in `base` (see
 * writeStorageFiles), with `extra` (e.g. BUILDAH_ISOLATION, CONTAINERS_CONF) on top. Settings of
 * the caller's own (XDG dirs, CONTAINERS_CONF, STORAGE_DRIVER, …) are dropped.
 */
export function storageEnv(base: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: join(base, 'home'),
    TMPDIR: join(base, 'tmp'),
    CONTAINERS_STORAGE_CONF: join(base, 'storage.conf'),
    CONTAINERS_REGISTRIES_CONF: join(base, 'registries.conf'),
    REGISTRY_AUTH_FILE: join(base, 'auth.json'),
    LAYERFS_RUN_DIR: join(base, 'layerfs-run'),
  };
  for (const key of ['XDG_RUNTIME_DIR', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'CONTAINERS_CONF', 'STORAGE_DRIVER', 'STORAGE_OPTS', 'LAYERFS_LOG']) delete env[key];
  return { ...env, ...extra };
}

/**
 * Private storage in `base` for one mount program: graph root, run root (`runroot`, default
 * `base`/runroot), storage.conf, registries.conf, policy.
 */
export async function writeStorageFiles(base: string, program: string, registryHost: string, runroot = join(base, 'runroot')): Promise<void> {
  for (const sub of ['graph', 'tmp', 'home/.config/containers', 'layerfs-run']) await mkdir(join(base, sub), { recursive: true });
  await mkdir(runroot, { recursive: true });
  await writeFile(
    join(base, 'storage.conf'),
    [
      '[storage]',
      'driver = "overlay"',
      `graphroot = "${join(base, 'graph')}"`,
      `runroot = "${runroot}"`,
      '',
      '[storage.options.overlay]',
      `mount_program = "${program}"`,
      '',
    ].join('\n'),
  );
  await writeFile(
    join(base, 'registries.conf'),
    ['unqualified-search-registries = []', '', '[[registry]]', `location = "${registryHost}"`, 'insecure = true', ''].join('\n'),
  );
  await writeFile(join(base, 'home/.config/containers/policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  await writeFile(join(base, 'auth.json'), '{"auths":{}}');
}

/** The daemon states layerfs-overlay left in the run dir `runDir` (LAYERFS_RUN_DIR). */
export async function daemonStates(runDir: string): Promise<Array<{ pid: number; mountpoint: string }>> {
  const dirPath = join(runDir, 'mounts');
  const names = await readdir(dirPath).catch(() => [] as string[]);
  const states = [];
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    states.push(JSON.parse(await readFile(join(dirPath, name), 'utf8')) as { pid: number; mountpoint: string });
  }
  return states;
}

// ---- comparisons -------------------------------------------------------------------------------

/**
 * A defect of the reference, not of layerfs: with Debian's fuse-overlayfs 1.10 as the mount
 * program, `buildah commit` (1.28) and `podman commit` (4.3), i.e. containers/storage's naive
 * diff over two fuse-overlayfs mounts, leave out the removal of the lower entries of a directory
 * that was removed and made again (var/lib/stay/z here), although fuse-overlayfs shows the
 * directory right (opaque, z hidden) and marks it opaque in its upper; the pushed image shows z
 * again. With layerfs the layer has var/lib/stay/.wh.z. The comparison with fuse-overlayfs allows
 * exactly this difference (and no other), so that a fixed fuse-overlayfs passes too.
 */
export const FUSE_OVERLAYFS_DEFECT = { layerLine: ' var/lib/stay/.wh.z', path: '/var/lib/stay/z' };

/** `actual` equals `expected`, or `expected` with the lines `extra` added (reports which). */
export function equalOrWith(actual: string[], expected: string[], extra: string[], what: string): boolean {
  try {
    assert.deepEqual(actual, expected);
    return false;
  } catch {
    assert.deepEqual(actual, [...expected, ...extra].sort(), `${what}: differs by more than the known fuse-overlayfs defect`);
    return true;
  }
}
/** Dump lines without the root's: a root is only the directory something was unpacked into. */
export const withoutRoot = (lines: string[]): string[] => lines.filter((l) => linePath(l) !== '/');

// ---- the image ---------------------------------------------------------------------------------

/** 200 KiB that do not compress away, the same every run. */
export const BIG = Buffer.concat(Array.from({ length: 200 }, (_, i) => createHash('sha512').update(`block ${i}`).digest()).flatMap((b) => Array(16).fill(b) as Buffer[]));

export const BASE: EntrySpec[] = [
  dir('docs'),
  file('docs/readme', 'read me\n'),
  dir('docs/sub'),
  file('docs/sub/deep', 'deep in docs\n'),
  dir('etc'),
  symlink('etc/alt', '/etc/hostname'),
  file('etc/gone.conf', 'gone\n'),
  file('etc/hostname', 'base\n'),
  file('etc/keep.conf', 'keep=1\n'),
  file('etc/shadow', 'root:*:19000::::::\n', { mode: 0o640, gid: 42 }),
  dir('home'),
  dir('home/user', { mode: 0o700, uid: 1000, gid: 1000 }),
  file('home/user/notes', 'private\n', { mode: 0o600, uid: 1000, gid: 1000 }),
  dir('olddir'),
  dir('olddir/inner'),
  file('olddir/inner/deep.txt', 'deep\n'),
  file('olddir/top.txt', 'top\n', { mode: 0o664 }),
  dir('opt'),
  dir('opt/app'),
  dir('opt/app/old'),
  file('opt/app/old/f', 'old f\n'),
  file('opt/app/old1', 'old 1\n'),
  dir('srv', { mode: 0o750 }),
  dir('srv/data'),
  file('srv/data/a.txt', 'a\n'),
  file('srv/data/big.bin', BIG),
  dir('srv/data/sub'),
  file('srv/data/sub/c.txt', 'c\n'),
  dir('tmp', { mode: 0o1777 }),
  dir('usr'),
  dir('usr/bin'),
  file('usr/bin/suid', '#!/bin/sh\n', { mode: 0o4755 }),
  file('usr/bin/tool', '#!/bin/sh\necho tool\n', { mode: 0o755 }),
  // A link entry carries its target's mode, as tar writes it: containers/storage applies the
  // link entry's mode to the shared inode, umoci does not (a different layer would differ).
  hardlink('usr/bin/tool-hl', 'usr/bin/tool', { mode: 0o755 }),
  dir('usr/share'),
  file('usr/share/x', 'shared\n'),
  hardlink('usr/share/y', 'usr/share/x'),
  dir('var'),
  dir('var/lib'),
  dir('var/lib/gone'),
  file('var/lib/gone/x', 'x\n'),
  dir('var/lib/stay'),
  file('var/lib/stay/z', 'z\n'),
];

export const LAYER1: EntrySpec[] = [
  dir('etc'),
  file('etc/.wh.gone.conf'),
  file('etc/hostname', 'layer1\n'),
  file('etc/layer1.conf', 'from layer 1\n', { mode: 0o640, gid: 42 }),
  dir('opt'),
  dir('opt/app'),
  file('opt/app/.wh..wh..opq'),
  file('opt/app/new1', 'new 1\n'),
  dir('srv', { mode: 0o750 }),
  dir('srv/data'),
  symlink('srv/data/b.txt', 'a.txt'),
  dir('usr'),
  dir('usr/lib'),
  file('usr/lib/m1', 'more\n'),
  hardlink('usr/lib/m2', 'usr/lib/m1'),
  dir('var'),
  dir('var/lib'),
  file('var/lib/.wh.gone'),
];

export const LAYER2: EntrySpec[] = [
  dir('etc'),
  file('etc/motd', 'hello from layer 2\n'),
  dir('srv', { mode: 0o711 }),
  dir('srv/data'),
  dir('srv/data/sub'),
  file('srv/data/sub/.wh.c.txt'),
  file('srv/data/sub/d.txt', 'd\n'),
];

/** The changes made through each mount, and to a plain copy of umoci's unpack for the expectation. */
export async function modify(root: string): Promise<void> {
  const p = (rel: string) => join(root, rel);
  await writeFile(p('etc/hostname'), 'changed\n'); // a lower file, changed in place
  await writeFile(p('etc/new.conf'), 'new=1\n', { mode: 0o600 }); // created
  await unlink(p('etc/keep.conf')); // a lower file removed
  await rename(p('etc/motd'), p('etc/motd.old')); // a lower file renamed
  await fsSymlink('hostname', p('etc/link'));
  await rm(p('srv/data'), { recursive: true }); // a directory merged from three layers, removed
  await rename(p('docs/readme'), p('docs/README.md'));
  // A lower directory tree renamed: layerfs renames it; fuse-overlayfs (like kernel overlayfs
  // without redirect_dir) says EXDEV, and mv copies and removes instead, as for any user.
  await exec('mv', [p('olddir'), p('newdir')]);
  await rm(p('var/lib/stay'), { recursive: true }); // removed and made again: opaque
  await mkdir(p('var/lib/stay'));
  await writeFile(p('var/lib/stay/fresh'), 'fresh\n');
  await chmod(p('usr/bin/suid'), 0o755); // setuid dropped
  await unlink(p('usr/share/y')); // one name of a hardlink pair
  await mkdir(p('added/sub'), { recursive: true });
  await writeFile(p('added/sub/file'), 'added\n');
}

/** Writes `image` as an OCI image layout with one tag, for umoci. */
export async function writeOciLayout(layout: string, image: TestImage, tag: string): Promise<void> {
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  const blob = (digest: string, bytes: Buffer) => writeFile(join(layout, 'blobs', 'sha256', digestHex(digest as `sha256:${string}`)), bytes);
  await blob(image.digest, image.manifest);
  await blob(image.configDigest, image.config);
  for (const layer of image.layers) await blob(layer.digest, layer.blob);
  await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: image.manifestMediaType, digest: image.digest, size: image.manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  };
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
}

/**
 * The judge: umoci's unpack of `image` (in `work`/bundle), and the same changes as modify() made
 * to a plain copy of it (`work`/expected-changed), as dump lines without the root.
 */
export async function expectedTrees(work: string, image: TestImage, env: NodeJS.ProcessEnv): Promise<{ expected: string[]; expectedChanged: string[] }> {
  await writeOciLayout(join(work, 'layout'), image, '1');
  await run('umoci', ['unpack', '--image', `${join(work, 'layout')}:1`, join(work, 'bundle')], env);
  const rootfs = join(work, 'bundle', 'rootfs');
  const expected = withoutRoot(await dumpHostDir(rootfs));
  const copy = join(work, 'expected-changed');
  await run('cp', ['-a', rootfs, copy], env);
  await modify(copy);
  return { expected, expectedChanged: withoutRoot(await dumpHostDir(copy)) };
}

// ---- the outcome -------------------------------------------------------------------------------

export interface Outcome {
  /** The tree through the client's mount of a container right after it was made from the image. */
  fresh: string[];
  /** The tree through the mount after modify(). */
  changed: string[];
  /** `tar -tv` of the layer the client committed (without dates). */
  layer: string[];
  /** The pushed image, pulled and mounted read-only by layerfs. */
  pulled: string[];
}

/**
 * The top layer of `repo:tag` in the registry, which must have `layers` layers, saved to
 * `blobPath` and listed by `tar -tv` (numeric owners, without dates, sorted).
 */
export async function committedLayer(reg: RunningRegistry, repo: string, tag: string, layers: number, blobPath: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  const manifest = JSON.parse((await getManifest(reg, repo, tag)).body.toString()) as { layers: Array<{ digest: string }> };
  assert.equal(manifest.layers.length, layers, 'the image layers and the committed one');
  const top = manifest.layers[manifest.layers.length - 1]!;
  await writeFile(blobPath, (await getBlob(reg, repo, top.digest)).body);
  return (await run('tar', ['-tvf', blobPath, '--numeric-owner'], env)).stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.replace(/ \d{4}-\d\d-\d\d \d\d:\d\d /, ' ').replace(/ +/g, ' '))
    .sort();
}

/** `layerfs pull` + `layerfs mount --read-only` of `ref` (store and mount point in `work`, named by `variant`): its tree. */
export async function pulledTree(work: string, variant: Variant, ref: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  const layerfs = (args: string[]) => run(process.execPath, [LAYERFS_BIN, ...args], env);
  const store = join(work, `${variant}-store`);
  const runDir = join(work, `${variant}-run`);
  await layerfs(['pull', '--root', store, ref]);
  const mp = join(work, `${variant}-pulled`);
  await mkdir(mp);
  await layerfs(['mount', '--root', store, '--run-dir', runDir, '--read-only', ref, mp]);
  try {
    return withoutRoot(await dumpTree(new MountClient(mp)));
  } finally {
    await layerfs(['umount', '--run-dir', runDir, mp]);
  }
}

/** The pulled image shows exactly the changed tree; with fuse-overlayfs, possibly with its known defect. */
export function assertPulled(variant: Variant, pulled: string[], expected: string[], expectedChanged: string[], t: TestContext): void {
  if (variant === 'layerfs') {
    assert.deepEqual(pulled, expectedChanged);
    return;
  }
  const zLine = expected.find((l) => linePath(l) === FUSE_OVERLAYFS_DEFECT.path)!;
  if (equalOrWith(pulled, expectedChanged, [zLine], 'pulled tree')) {
    t.diagnostic(`fuse-overlayfs: the committed image shows ${FUSE_OVERLAYFS_DEFECT.path} again (known defect, see FUSE_OVERLAYFS_DEFECT)`);
  }
}

/** layerfs (`a`) and fuse-overlayfs (`b`) as the mount program gave the same result, but for the known defect. */
export function assertSameOutcome(a: Partial<Outcome>, b: Partial<Outcome>, client: string, t: TestContext): void {
  for (const key of ['fresh', 'changed', 'layer', 'pulled'] as const) {
    assert.ok(a[key] !== undefined && b[key] !== undefined, `both variants got as far as ${key}`);
  }
  assert.deepEqual(a.fresh, b.fresh, `the tree after the container was made (${client})`);
  assert.deepEqual(a.changed, b.changed, 'the tree after the changes');
  // The committed layer records the changes (and only those) as whiteouts and entries.
  const layer = a.layer!.join('\n');
  for (const name of ['etc/.wh.keep.conf', 'etc/.wh.motd', 'srv/.wh.data', 'docs/.wh.readme', '.wh.olddir', 'usr/share/.wh.y', 'var/lib/stay/.wh.z']) {
    assert.ok(layer.includes(` ${name}`), `${name} in the committed layer:\n${layer}`);
  }
  const defect = a.layer!.filter((l) => l.endsWith(FUSE_OVERLAYFS_DEFECT.layerLine));
  const layerDefect = equalOrWith(a.layer!, b.layer!, defect, 'committed layer (layerfs vs fuse-overlayfs)');
  const zLine = a.fresh!.find((l) => linePath(l) === FUSE_OVERLAYFS_DEFECT.path)!;
  const pulledDefect = equalOrWith(b.pulled!, a.pulled!, [zLine], 'pulled tree (fuse-overlayfs vs layerfs)');
  assert.equal(layerDefect, pulledDefect, 'the defect shows in the layer and in the pulled image alike');
  if (layerDefect) t.diagnostic(`same result except the known fuse-overlayfs defect (FUSE_OVERLAYFS_DEFECT): layerfs commits the removal, fuse-overlayfs loses it (${client} commit)`);
}

/**
 * The upper of a container (containers/storage's diff dir) after modify() through a layerfs
 * mount is in the overlay form: 0/0 whiteouts, trusted.overlay.opaque, no `.wh.` names.
 */
export async function assertOverlayUpper(upperDir: string): Promise<void> {
  const upper = await dumpHostDir(upperDir);
  const line = (path: string) => upper.find((l) => linePath(l) === path);
  assert.deepEqual(upper.filter((l) => linePath(l).split('/').pop()!.startsWith('.wh.')), [], 'no .wh. names in the upper');
  for (const gone of ['/etc/keep.conf', '/etc/motd', '/srv/data', '/docs/readme', '/olddir', '/usr/share/y']) {
    assert.match(line(gone) ?? `${gone} missing`, /^\S+ chr 0000 0 0 0 - - 0,0 -$/, `${gone} is a 0/0 whiteout`);
  }
  assert.match(line('/var/lib/stay') ?? 'missing', / trusted\.overlay\.opaque=79$/, 'a directory made where a removed one was is opaque');
  assert.match(line('/newdir') ?? 'missing', / trusted\.overlay\.opaque=79$/, 'a renamed lower directory is opaque');
  assert.match(line('/etc/hostname') ?? 'missing', new RegExp(sha256hex('changed\n')));
}

/**
 * Where a container's freshly mounted root is, and who serves it: inside the variant's private
 * graph root, by the configured mount program (for layerfs, by one of its live daemons, whose run
 * directory is `layerfsRunDir`). Returns its tree without the root line.
 */
export async function freshMountTree(variant: Variant, mountpoint: string, graphRoot: string, layerfsRunDir: string): Promise<string[]> {
  assert.ok(mountpoint.startsWith(graphRoot), `mounted in the private graph root: ${mountpoint}`);
  assert.equal(fstypeAt(mountpoint), fstypeOf(variant), 'mounted by the configured mount program');
  if (variant === 'layerfs') {
    const states = await daemonStates(layerfsRunDir);
    assert.ok(states.some((s) => s.mountpoint === mountpoint && alive(s.pid)), `a layerfs daemon serves ${mountpoint}`);
  }
  return withoutRoot(await dumpTree(new MountClient(mountpoint)));
}

/** Makes the suite's changes (`modify`) through a container's mount; returns the tree after them. */
export async function changedMountTree(variant: Variant, mountpoint: string): Promise<string[]> {
  await modify(mountpoint);
  const tree = withoutRoot(await dumpTree(new MountClient(mountpoint)));
  // The container's upper (containers/storage's diff dir) is in the overlay form.
  if (variant === 'layerfs') await assertOverlayUpper(join(dirname(mountpoint), 'diff'));
  return tree;
}

/**
 * Runs the client's umount of a container mounted at `mountpoint` and checks that it ended the
 * mount and, for layerfs, every daemon that served it (and their recorded state).
 */
export async function unmountAndCheck(variant: Variant, mountpoint: string, layerfsRunDir: string, umount: () => Promise<unknown>): Promise<void> {
  const states = await daemonStates(layerfsRunDir);
  await umount();
  assert.ok(!isMounted(mountpoint), `${mountpoint} is unmounted`);
  if (variant !== 'layerfs') return;
  for (const state of states) await waitFor(() => !alive(state.pid), `daemon ${state.pid} to exit`);
  await waitFor(async () => (await daemonStates(layerfsRunDir)).length === 0, 'the daemon state to be removed');
}
