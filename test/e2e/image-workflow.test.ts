// Images end to end, through the CLI, with real components: a real registry (Debian's
// docker-registry), real FUSE mounts served by background daemons (always child processes: a
// process must never touch a mount it serves), GNU tar, umoci and skopeo as independent judges.
//
//   push (built in code) → pull → mount → the tree equals umoci's unpack of the same image
//   → tar of the mount, export of the image: the same content, hardlinks right
//   → modify through the mount → diff lists exactly that → commit (mounted) → push → pull into an
//     empty store → mount → the same tree as the modified mount (and as umoci's unpack of what
//     skopeo fetched from the registry)
//   named writable layers across unmount and SIGKILL; --rm, rm, --read-only; bad input; chroot.
//
// Needs root, /dev/fuse, docker-registry, umoci, skopeo, GNU tar; busybox for the chroot case.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { chmod, mkdir, open, readFile, readdir, rename, rm, stat, symlink as fsSymlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { digestHex } from '../../src/oci/digest.js';
import { Store } from '../../src/store/store.js';
import { MountClient } from '../helpers/clients.js';
import { LAYERFS_BIN } from '../helpers/mount.js';
import { type EntrySpec, dir, file, hardlink, symlink } from '../helpers/tar-builder.js';
import { TempDirs, isMounted } from '../helpers/tmp.js';
import { dumpHostDir, dumpTree, linePath } from '../helpers/tree-dump.js';
import { type TestImage, buildIndex, buildTestImage } from '../registry/harness/images.js';
import { getBlob, getManifest, pushIndex, pushTestImage } from '../registry/harness/push.js';
import { type RunningRegistry, registrySkip, useRegistry } from '../registry/harness/registry-server.js';
import { alive, onPath, waitFor } from '../helpers/process.js';

const exec = promisify(execFile);
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SAMPLE_SCRIPT = join(REPO_ROOT, 'scripts', 'make-sample-image.mjs');
const BUSYBOX = '/bin/busybox';

// ---- environment -------------------------------------------------------------------------------

function suiteSkip(): string | false {
  const registry = registrySkip();
  if (registry) return registry;
  if (process.getuid?.() !== 0) return 'image mounts need root';
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    return '/dev/fuse is not usable';
  }
  for (const tool of ['umoci', 'skopeo', 'tar', 'chroot']) if (!onPath(tool)) return `${tool} is missing`;
  return false;
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Environment of every CLI run: credentials and configuration from the test's own dirs only. */
let cliEnv: NodeJS.ProcessEnv = {};

async function layerfs(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [LAYERFS_BIN, ...args], { env: { ...cliEnv, ...env }, timeout: 60_000, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string; message?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message ?? '' };
  }
}

/** Runs the CLI and insists that it succeeded. */
async function ok(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  const r = await layerfs(args, env);
  assert.equal(r.code, 0, `layerfs ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r;
}

/** Runs the CLI and insists on a clear failure: non-zero exit, one `layerfs: ` line matching, no stack. */
async function fails(args: string[], pattern: RegExp): Promise<Result> {
  const r = await layerfs(args);
  assert.notEqual(r.code, 0, `layerfs ${args.join(' ')} should have failed; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `no stack trace:\n${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  const errors = lines.filter((l) => l.startsWith('layerfs: '));
  assert.equal(errors.length, 1, `one error line:\n${r.stderr}`);
  assert.equal(lines[lines.length - 1], errors[0], `the error line comes last:\n${r.stderr}`);
  assert.match(errors[0]!, pattern);
  return r;
}

async function run(cmd: string, args: string[], options: { cwd?: string } = {}): Promise<string> {
  const { stdout } = await exec(cmd, args, { timeout: 60_000, maxBuffer: 64 << 20, ...options });
  return stdout;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

const sha256hex = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

// ---- the image ---------------------------------------------------------------------------------

/** 200 KiB that do not compress away, the same every run. */
const BIG = Buffer.concat(Array.from({ length: 200 }, (_, i) => createHash('sha512').update(`block ${i}`).digest()).flatMap((b) => Array(10).fill(b) as Buffer[]));

const BASE: EntrySpec[] = [
  dir('bin-real'),
  dir('docs'),
  file('docs/readme', 'read me\n'),
  dir('docs/sub'),
  file('docs/sub/deep', 'deep in docs\n'),
  dir('etc'),
  symlink('etc/alt', '/etc/hostname'),
  file('etc/hostname', 'base\n'),
  file('etc/keep.conf', 'keep=1\n'),
  file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n'),
  file('etc/shadow', 'root:*:19000::::::\n', { mode: 0o640, gid: 42 }),
  dir('home'),
  dir('home/user', { mode: 0o700, uid: 1000, gid: 1000 }),
  file('home/user/notes', 'private\n', { mode: 0o600, uid: 1000, gid: 1000 }),
  dir('lib'),
  // The name carrying the data first; layer 1 deletes it, so lib/libA.so must carry it then.
  file('lib/libA.so.1', 'libA contents\n', { mode: 0o755 }),
  hardlink('lib/libA.so', 'lib/libA.so.1'),
  dir('olddir'),
  dir('olddir/inner'),
  file('olddir/inner/deep.txt', 'deep\n'),
  file('olddir/top.txt', 'top\n', { mode: 0o664 }),
  dir('opt'),
  dir('opt/app'),
  dir('opt/app/olddir'),
  file('opt/app/olddir/f', 'old f\n'),
  file('opt/app/old1', 'old 1\n'),
  dir('srv', { mode: 0o750 }),
  dir('srv/data'),
  file('srv/data/a.txt', 'a\n'),
  file('srv/data/b.txt', 'b\n'),
  file('srv/data/big.bin', BIG),
  dir('srv/data/sub'),
  file('srv/data/sub/c.txt', 'c\n'),
  dir('tmp', { mode: 0o1777 }),
  dir('usr'),
  dir('usr/bin'),
  file('usr/bin/suid', '#!/bin/sh\n', { mode: 0o4755 }),
  file('usr/bin/tool', '#!/bin/sh\necho tool\n', { mode: 0o755 }),
  hardlink('usr/bin/tool-hl', 'usr/bin/tool'),
  dir('usr/share'),
  file('usr/share/x', 'shared\n'),
  hardlink('usr/share/y', 'usr/share/x'),
  symlink('bin', 'usr/bin'),
  dir('var'),
  dir('var/lib'),
  dir('var/lib/gone'),
  file('var/lib/gone/x', 'x\n'),
  file('var/lib/gone/y', 'y\n'),
  dir('var/lib/stay'),
  file('var/lib/stay/z', 'z\n'),
];

const LAYER1: EntrySpec[] = [
  dir('etc'),
  file('etc/hostname', 'layer1\n'),
  file('etc/layer1.conf', 'from layer 1\n', { mode: 0o640, gid: 42 }),
  dir('lib'),
  file('lib/.wh.libA.so.1'),
  dir('opt'),
  dir('opt/app'),
  file('opt/app/.wh..wh..opq'),
  file('opt/app/new1', 'new 1\n'),
  dir('srv', { mode: 0o750 }),
  dir('srv/data'),
  symlink('srv/data/b.txt', 'a.txt'),
  dir('usr'),
  dir('usr/lib'),
  dir('usr/lib/more'),
  file('usr/lib/more/m1', 'more\n'),
  hardlink('usr/lib/more/m2', 'usr/lib/more/m1'),
  dir('var'),
  dir('var/lib'),
  file('var/lib/.wh.gone'),
];

const LAYER2: EntrySpec[] = [dir('etc'), file('etc/motd', 'hello from layer 2\n'), dir('srv', { mode: 0o711 })];

/** Writes `image` as an OCI image layout with one tag, for umoci. */
async function writeOciLayout(layout: string, image: TestImage, tag: string): Promise<void> {
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

/** umoci's unpack of `layout:tag`: the flattened root filesystem as an independent tool makes it. */
async function umociRootfs(layout: string, tag: string, bundle: string): Promise<string> {
  await run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
  return join(bundle, 'rootfs');
}

/** Dump lines without the root's: the root of an extraction is just the directory extracted into. */
const withoutRoot = (lines: string[]): string[] => lines.filter((l) => linePath(l) !== '/');

/** `tar -tv` of an archive, sorted, without dates (mtimes are not what is compared here). */
async function tarListing(archive: string): Promise<string[]> {
  const out = await run('tar', ['-tvf', archive, '--numeric-owner']);
  return out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.replace(/ \d{4}-\d\d-\d\d \d\d:\d\d /, ' ').replace(/ +/g, ' ').replace(/ \.\//g, ' '))
    .filter((l) => !l.endsWith(' ')) // the root, './'
    .sort();
}

async function extract(archive: string, into: string): Promise<string> {
  await mkdir(into, { recursive: true });
  await run('tar', ['-xpf', archive, '--same-owner', '--numeric-owner', '-C', into]);
  return into;
}

// ---- the suite ---------------------------------------------------------------------------------

describe('images end to end: push, pull, mount, modify, diff, commit, push, pull, export', { skip: suiteSkip() }, () => {
  const getRegistry = useRegistry();
  const temps = new TempDirs();
  let reg: RunningRegistry;
  let work = '';
  let root = '';
  let runDir = '';
  let image: TestImage;
  let baseRef = '';
  /** umoci's unpack of the base image. */
  let expectedRootfs = '';
  let expected: string[] = [];
  /** Every mountpoint made, unmounted in after() whatever happened. */
  const mountpoints = new Set<string>();
  let mpCount = 0;

  const storeArgs = () => ['--root', root];
  const runArgs = () => ['--run-dir', runDir];

  async function mountpoint(name: string): Promise<string> {
    const mp = join(work, 'mnt', `${++mpCount}-${name}`);
    await mkdir(mp, { recursive: true });
    mountpoints.add(mp);
    return mp;
  }

  /** `layerfs mount`, returning the writable layer's name (what it prints). */
  async function mountImage(ref: string, mp: string, extra: string[] = [], storeRoot = root): Promise<string> {
    const r = await ok(['mount', '--root', storeRoot, ...runArgs(), ...extra, ref, mp]);
    assert.ok(isMounted(mp), `${mp} is mounted when mount returns`);
    return r.stdout.trim();
  }

  async function umount(mp: string): Promise<void> {
    await ok(['umount', ...runArgs(), mp]);
    assert.ok(!isMounted(mp));
  }

  interface PsRow {
    name: string;
    image: string;
    digest: string;
    mountpoint?: string;
    pid?: number;
    state: string;
    size: number;
  }
  async function ps(all = true, storeRoot = root): Promise<PsRow[]> {
    return JSON.parse((await ok(['ps', '--root', storeRoot, ...runArgs(), '--format', 'json', ...(all ? ['-a'] : [])])).stdout) as PsRow[];
  }

  const dumpMount = (mp: string) => dumpTree(new MountClient(mp));

  before(async () => {
    reg = getRegistry();
    work = await temps.make('image-workflow');
    root = join(work, 'store');
    runDir = join(work, 'run');
    await mkdir(join(work, 'home'), { recursive: true });
    await mkdir(join(work, 'docker'), { recursive: true });
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: join(work, 'home'), DOCKER_CONFIG: join(work, 'docker'), REGISTRY_AUTH_FILE: join(work, 'no-auth.json'), LAYERFS_CONFIG: join(work, 'registries.json') };
    for (const key of ['XDG_RUNTIME_DIR', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'LAYERFS_ROOT', 'LAYERFS_LOG']) delete env[key];
    cliEnv = env;
    await writeFile(join(work, 'registries.json'), '{}');

    image = await buildTestImage([BASE, LAYER1, LAYER2]);
    await pushTestImage(reg, 'test/base', '1', image);
    baseRef = `${reg.host}/test/base:1`;
    await writeOciLayout(join(work, 'layout'), image, '1');
    expectedRootfs = await umociRootfs(join(work, 'layout'), '1', join(work, 'bundle'));
    expected = await dumpHostDir(expectedRootfs);
  });

  after(async () => {
    for (const mp of mountpoints) {
      if (isMounted(mp)) await layerfs(['umount', ...runArgs(), '--lazy', mp]);
    }
    await temps.cleanup();
  });

  it('the expected tree (umoci) has what the layers say', () => {
    // A check of the judge itself: whiteouts, the opaque dir, the type change and modes applied.
    const has = (line: string) => assert.ok(expected.some((l) => l.startsWith(line)), `${line} in\n${expected.join('\n')}`);
    const lacks = (path: string) => assert.ok(!expected.some((l) => linePath(l) === path), `no ${path}`);
    has('/etc/hostname file 0644 0 0 7 ');
    has('/srv dir 0711 ');
    has('/srv/data/b.txt symlink 0777 0 0 5 - a.txt');
    has('/home/user/notes file 0600 1000 1000 ');
    has('/usr/bin/suid file 4755 ');
    has('/tmp dir 1777 ');
    has(`/lib/libA.so file 0755 0 0 14 ${sha256hex('libA contents\n')}`);
    has('/opt/app/new1 ');
    for (const path of ['/lib/libA.so.1', '/var/lib/gone', '/opt/app/old1', '/opt/app/olddir']) lacks(path);
  });

  let baseMp = '';
  let workLayer = '';

  it('pull, then mount: every file reads as in the image (tree dump equals umoci\'s unpack)', async () => {
    const pulled = await ok(['pull', ...storeArgs(), baseRef]);
    assert.equal(pulled.stdout.trim(), image.digest);
    baseMp = await mountpoint('base');
    workLayer = await mountImage(baseRef, baseMp, ['--name', 'work']);
    assert.equal(workLayer, 'work');
    assert.deepEqual(withoutRoot(await dumpMount(baseMp)), withoutRoot(expected));
    // The hardlink pairs are one inode in the mount, as in the image.
    const [t, h] = await Promise.all([stat(join(baseMp, 'usr/bin/tool')), stat(join(baseMp, 'usr/bin/tool-hl'))]);
    assert.equal(t.ino, h.ino, 'usr/bin/tool and tool-hl are one inode');
    assert.equal(t.nlink, 2);
    const rows = await ps(false);
    assert.equal(rows.length, 1);
    assert.deepEqual({ ...rows[0], pid: typeof rows[0]!.pid, size: typeof rows[0]!.size }, {
      name: 'work',
      image: baseRef,
      digest: image.digest,
      mountpoint: baseMp,
      pid: 'number',
      state: 'serving',
      size: 'number',
    });
  });

  it('tar -C MOUNTPOINT -c . reproduces the image\'s flattened content', async () => {
    const fromMount = join(work, 'mount.tar');
    const fromUmoci = join(work, 'umoci.tar');
    await run('tar', ['-C', baseMp, '--sort=name', '--numeric-owner', '-cf', fromMount, '.']);
    await run('tar', ['-C', expectedRootfs, '--sort=name', '--numeric-owner', '-cf', fromUmoci, '.']);
    assert.deepEqual(await tarListing(fromMount), await tarListing(fromUmoci));
    const listing = await tarListing(fromMount);
    assert.ok(listing.some((l) => /usr\/bin\/tool-hl link to usr\/bin\/tool$/.test(l)), `hardlink kept:\n${listing.join('\n')}`);
    assert.deepEqual(withoutRoot(await dumpHostDir(await extract(fromMount, join(work, 'x-mount')))), withoutRoot(expected));
  });

  it('export of the image: the flattened rootfs, hardlinks kept, a hardlink whose data name was whited out still has its data', async () => {
    const out = join(work, 'image-export.tar');
    await ok(['export', ...storeArgs(), baseRef, out]);
    assert.deepEqual(withoutRoot(await dumpHostDir(await extract(out, join(work, 'x-image-export')))), withoutRoot(expected));
    const listing = await tarListing(out);
    assert.ok(listing.some((l) => l.startsWith('-rwxr-xr-x 0/0 14 lib/libA.so')), `lib/libA.so is a file of its own:\n${listing.join('\n')}`);
    assert.ok(listing.some((l) => /usr\/lib\/more\/m2 link to usr\/lib\/more\/m1$/.test(l)), 'hardlinks of a higher layer kept');
    assert.ok(listing.some((l) => /usr\/bin\/tool-hl link to usr\/bin\/tool$/.test(l)), 'hardlinks of the base layer kept');
    // GNU tar lists the same entries for the export as for a tar of the mount.
    assert.deepEqual(listing, await tarListing(join(work, 'mount.tar')));
  });

  let modified: string[] = [];
  const EXPECTED_DIFF = [
    'C /docs',
    'A /docs/new.md',
    'D /docs/readme',
    'D /docs/sub',
    'C /etc',
    'C /etc/hostname',
    'D /etc/keep.conf',
    'A /etc/new.conf',
    'A /newdir',
    'A /newdir/inner',
    'A /newdir/inner/deep.txt',
    'A /newdir/top.txt',
    'D /olddir',
    'C /srv',
    'C /srv/data',
    'C /srv/data/a.txt',
    'C /usr',
    'C /usr/bin',
    'D /usr/bin/tool',
    'C /usr/share',
    'C /usr/share/x',
  ];

  it('modify through the mount; diff lists exactly those changes', async () => {
    const mp = baseMp;
    await writeFile(join(mp, 'etc/new.conf'), 'new\n'); // create
    await writeFile(join(mp, 'etc/hostname'), 'changed\n'); // change
    await chmod(join(mp, 'srv/data/a.txt'), 0o600); // chmod
    await unlink(join(mp, 'etc/keep.conf')); // delete a lower file
    await rm(join(mp, 'docs'), { recursive: true }); // delete a lower dir...
    await mkdir(join(mp, 'docs'), { mode: 0o755 }); // ...and make it again
    await writeFile(join(mp, 'docs/new.md'), '# new\n');
    await rename(join(mp, 'olddir'), join(mp, 'newdir')); // rename a lower dir
    await unlink(join(mp, 'usr/bin/tool')); // one name of a lower hardlink pair
    // The other pair: one name replaced by a changed copy, as package managers do (for a change
    // in place, see the case further down).
    await writeFile(join(mp, 'usr/share/x.new'), 'changed shared\n');
    await rename(join(mp, 'usr/share/x.new'), join(mp, 'usr/share/x'));

    modified = await dumpMount(mp);
    const line = (path: string) => modified.find((l) => linePath(l) === path);
    assert.match(line('/etc/new.conf')!, / file 0644 0 0 4 /);
    assert.match(line('/srv/data/a.txt')!, / file 0600 /);
    assert.match(line('/newdir/inner/deep.txt')!, new RegExp(sha256hex('deep\n')));
    assert.match(line('/newdir/top.txt')!, / file 0664 /);
    assert.match(line('/usr/bin/tool-hl')!, new RegExp(sha256hex('#!/bin/sh\necho tool\n')));
    assert.match(line('/usr/share/y')!, new RegExp(sha256hex('shared\n')), 'changing x did not change its old link y');
    for (const gone of ['/etc/keep.conf', '/docs/readme', '/docs/sub', '/olddir', '/usr/bin/tool']) assert.equal(line(gone), undefined, gone);

    const text = await ok(['diff', ...storeArgs(), 'work']);
    assert.deepEqual(text.stdout.trimEnd().split('\n'), EXPECTED_DIFF);
    const json = JSON.parse((await ok(['diff', ...storeArgs(), '--format', 'json', baseMp])).stdout) as Array<{ kind: string; path: string }>;
    assert.deepEqual(
      json.map((c) => `${c.kind} ${c.path}`),
      EXPECTED_DIFF,
      'by mountpoint, as JSON',
    );
  });

  let committed = '';
  const appRef = () => `${reg.host}/test/app:2`;

  it('commit while mounted, push, pull into an empty store, mount: the same tree', async () => {
    const c = await ok(['commit', ...storeArgs(), ...runArgs(), '-m', 'modified in the e2e test', '-a', 'Tester <t@example.com>', baseMp, appRef()]);
    committed = c.stdout.trim();
    assert.match(committed, /^sha256:[0-9a-f]{64}$/);
    assert.ok(isMounted(baseMp), 'still mounted after the commit');
    // Deterministic: the same upper committed again gives the same layer blob.
    const again = (await ok(['commit', ...storeArgs(), ...runArgs(), 'work', `${reg.host}/test/app:again`])).stdout.trim();
    // The mount still works and is no longer frozen.
    await writeFile(join(baseMp, 'etc/after-commit'), 'not in the image\n');
    await unlink(join(baseMp, 'etc/after-commit'));

    const store = await Store.open(root);
    const stored = await store.image(committed as `sha256:${string}`);
    assert.equal(stored.layers.length, 4);
    assert.deepEqual(stored.config.rootfs.diff_ids.slice(0, 3), image.layers.map((l) => l.diffId));
    const history = stored.config.history!;
    assert.deepEqual({ ...history[history.length - 1], created: undefined }, { created: undefined, created_by: 'layerfs commit', author: 'Tester <t@example.com>', comment: 'modified in the e2e test' });
    assert.equal(stored.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    const storedAgain = await store.image(again as `sha256:${string}`);
    assert.deepEqual(storedAgain.layers.map((l) => l.digest), stored.layers.map((l) => l.digest), 'same content, same layer digest');

    const pushed = await ok(['push', ...storeArgs(), appRef()]);
    assert.equal(pushed.stdout.trim(), `${reg.host}/test/app:2@${committed}`);
    // The base layers came from test/base on the same registry: mounted, not uploaded again.
    const outcomes = pushed.stderr.split('\n').filter((l) => /^[0-9a-f]{12}: (mounted|uploaded|already there)$/.test(l));
    assert.equal(outcomes.length, 5, pushed.stderr);
    assert.equal(outcomes.filter((l) => l.endsWith('mounted')).length, 3, `three base layers mounted:\n${pushed.stderr}`);
    const remote = await getManifest(reg, 'test/app', '2');
    assert.equal(remote.status, 200);
    assert.equal(`sha256:${sha256hex(remote.body)}`, committed);

    // Another name for it, pushed: every blob is already there (HEAD), only the manifest goes up.
    await ok(['tag', ...storeArgs(), appRef(), `${reg.host}/test/app:latest`]);
    const retag = await ok(['push', ...storeArgs(), `${reg.host}/test/app:latest`]);
    assert.equal(retag.stderr.split('\n').filter((l) => /: already there$/.test(l)).length, 5, retag.stderr);
    assert.equal(`sha256:${sha256hex((await getManifest(reg, 'test/app', 'latest')).body)}`, committed);

    // save writes an OCI archive other tools read, digests intact.
    const archive = join(work, 'app.oci.tar');
    await ok(['save', ...storeArgs(), appRef(), archive]);
    assert.equal(`sha256:${sha256hex(await run('skopeo', ['inspect', '--raw', `oci-archive:${archive}`]))}`, committed);
    const dockerArchive = join(work, 'app.docker.tar');
    await ok(['save', ...storeArgs(), '--format', 'docker-archive', appRef(), dockerArchive]);
    assert.equal(`sha256:${sha256hex(await run('skopeo', ['inspect', '--raw', '--config', `docker-archive:${dockerArchive}`]))}`, stored.id);

    const root2 = join(work, 'store2');
    const pulled = await ok(['pull', '--root', root2, appRef()]);
    assert.equal(pulled.stdout.trim(), committed);
    const mp2 = await mountpoint('repulled');
    await mountImage(appRef(), mp2, ['--read-only'], root2);
    try {
      assert.deepEqual(await dumpMount(mp2), modified);
    } finally {
      await umount(mp2);
    }

    // An independent judge of the committed layer's markers: skopeo fetches, umoci unpacks.
    const layout = join(work, 'skopeo-layout');
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${appRef()}`, `oci:${layout}:2`]);
    const rootfs = await umociRootfs(layout, '2', join(work, 'bundle2'));
    assert.deepEqual(withoutRoot(await dumpHostDir(rootfs)), withoutRoot(modified));
  });

  it('export of a writable layer: its mount\'s content, hardlinks to deleted or changed names right', async () => {
    await umount(baseMp);
    const out = join(work, 'layer-export.tar');
    await ok(['export', ...storeArgs(), 'work', out]);
    assert.deepEqual(withoutRoot(await dumpHostDir(await extract(out, join(work, 'x-layer-export')))), withoutRoot(modified));
    const listing = await tarListing(out);
    assert.ok(listing.some((l) => /^-rwxr-xr-x 0\/0 20 usr\/bin\/tool-hl$/.test(l)), `tool-hl carries its data:\n${listing.join('\n')}`);
    assert.ok(listing.some((l) => /^-rw-r--r-- 0\/0 7 usr\/share\/y$/.test(l)), `y is not a link to the changed x:\n${listing.join('\n')}`);
    assert.ok(listing.some((l) => /^-rw-r--r-- 0\/0 15 usr\/share\/x$/.test(l)));
    assert.ok(listing.some((l) => /usr\/lib\/more\/m2 link to usr\/lib\/more\/m1$/.test(l)), 'untouched hardlinks kept');
  });

  it(
    'writing one name of a lower hardlink pair in place changes that name only',
    async () => {
      const mp = await mountpoint('hardlink-write');
      await mountImage(baseRef, mp, ['--rm']);
      try {
        await stat(join(mp, 'usr/share/y')); // y is known to the daemon before x
        await stat(join(mp, 'usr/share/x'));
        await writeFile(join(mp, 'usr/share/x'), 'changed shared\n');
        await chmod(join(mp, 'usr/share/x'), 0o600);
        assert.equal(await readFile(join(mp, 'usr/share/x'), 'utf8'), 'changed shared\n');
        assert.equal((await stat(join(mp, 'usr/share/x'))).mode & 0o7777, 0o600);
        assert.equal(await readFile(join(mp, 'usr/share/y'), 'utf8'), 'shared\n');
        assert.equal((await stat(join(mp, 'usr/share/y'))).mode & 0o7777, 0o644);
      } finally {
        await umount(mp);
      }
    },
  );

  async function storeContainerUpper(name: string): Promise<string> {
    const store = await Store.open(root);
    return (await store.containers.get(name))!.upper;
  }

  it('a named writable layer survives unmount/remount and a SIGKILL of its daemon', async () => {
    const mp = await mountpoint('named');
    assert.equal(await mountImage(baseRef, mp, ['--name', 'keep']), 'keep');
    await writeFile(join(mp, 'etc/first'), 'first\n');
    await umount(mp);
    const down = (await ps()).find((r) => r.name === 'keep');
    assert.equal(down?.state, 'unmounted');

    assert.equal(await mountImage(baseRef, mp, ['--name', 'keep']), 'keep');
    assert.equal(await readFile(join(mp, 'etc/first'), 'utf8'), 'first\n', 'kept across unmount');
    const handle = await open(join(mp, 'etc/synced'), 'w');
    await handle.write('written and synced\n');
    await handle.sync();
    await handle.close();
    await mkdir(join(mp, 'var/lib/made'));
    await unlink(join(mp, 'etc/passwd'));
    await run('sync', ['-f', join(mp, 'etc')]);

    const serving = (await ps(false)).find((r) => r.name === 'keep');
    assert.equal(serving?.state, 'serving');
    const pid = serving!.pid!;
    assert.ok(alive(pid));
    process.kill(pid, 'SIGKILL');
    await waitFor(() => !alive(pid), 'the daemon to die');
    await assert.rejects(readFile(join(mp, 'etc/hostname')), { code: 'ENOTCONN' }, 'the mount is stale');
    const stale = (await ps()).find((r) => r.name === 'keep');
    assert.equal(stale?.state, 'stale');
    assert.equal(stale?.mountpoint, mp);

    // Mounting on the stale mountpoint is refused (what it says is checked in the case below).
    await fails(['mount', ...storeArgs(), ...runArgs(), '--name', 'keep', baseRef, mp], /stale|busy/);
    assert.equal((await ps()).find((r) => r.name === 'keep')?.state, 'stale');
    await ok(['umount', ...runArgs(), mp]);
    assert.ok(!isMounted(mp));
    assert.equal((await ps()).find((r) => r.name === 'keep')?.state, 'unmounted');

    // Another layer mounted there now: the mountpoint names it, not the killed one that was there.
    const other = await mountImage(baseRef, mp, ['--rm']);
    await writeFile(join(mp, 'etc/other'), 'other\n');
    assert.deepEqual((await ok(['diff', ...storeArgs(), mp])).stdout.trimEnd().split('\n'), ['C /etc', 'A /etc/other']);
    assert.deepEqual((await ps(false)).filter((r) => r.mountpoint === mp).map((r) => [r.name, r.state]), [[other, 'serving']]);
    assert.equal((await ps()).find((r) => r.name === 'keep')?.state, 'unmounted');
    await umount(mp);

    assert.equal(await mountImage(baseRef, mp, ['--name', 'keep']), 'keep');
    assert.equal(await readFile(join(mp, 'etc/synced'), 'utf8'), 'written and synced\n');
    assert.equal(await readFile(join(mp, 'etc/first'), 'utf8'), 'first\n');
    assert.ok((await stat(join(mp, 'var/lib/made'))).isDirectory());
    assert.equal(await exists(join(mp, 'etc/passwd')), false, 'the deletion is kept too');
    assert.equal(await readFile(join(mp, 'etc/hostname'), 'utf8'), 'layer1\n', 'the image below is intact');
    await umount(mp);
  });

  it(
    'a stale image mount is called stale, by mount and by umount',
    async () => {
      const mp = await mountpoint('stale');
      await mountImage(baseRef, mp, ['--name', 'stale']);
      try {
        await stat(mp); // the root's attributes are now in the kernel's cache, as after any use
        const pid = (await ps(false)).find((r) => r.name === 'stale')!.pid!;
        process.kill(pid, 'SIGKILL');
        await waitFor(() => !alive(pid), 'the daemon to die');
        await fails(['mount', ...storeArgs(), ...runArgs(), '--name', 'stale', baseRef, mp], /stale mount .*layerfs umount/);
        assert.match((await ok(['umount', ...runArgs(), mp])).stderr, /cleared stale mount/);
      } finally {
        if (isMounted(mp)) await layerfs(['umount', ...runArgs(), '--lazy', mp]);
        await layerfs(['rm', ...storeArgs(), 'stale']);
      }
    },
  );

  it('--rm deletes the writable layer at unmount', async () => {
    const mp = await mountpoint('rm');
    const name = await mountImage(baseRef, mp, ['--rm']);
    assert.match(name, /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/);
    await writeFile(join(mp, 'scratch'), 'gone soon\n');
    assert.equal((await ps(false)).find((r) => r.name === name)?.state, 'serving');
    const dir = join(root, 'containers', name);
    assert.ok(await exists(dir));
    await umount(mp);
    await waitFor(async () => !(await exists(dir)), 'the --rm layer to be deleted');
    assert.equal((await ps()).find((r) => r.name === name), undefined);
  });

  it('rm refuses a mounted writable layer, and deletes it once unmounted', async () => {
    const mp = await mountpoint('rm-mounted');
    await mountImage(baseRef, mp, ['--name', 'held']);
    await writeFile(join(mp, 'data'), 'precious\n');
    await fails(['rm', ...storeArgs(), 'held'], /held.*mounted.*unmount it first/);
    assert.equal(await readFile(join(mp, 'data'), 'utf8'), 'precious\n', 'the mount still serves');
    assert.equal((await ps(false)).find((r) => r.name === 'held')?.state, 'serving');
    await umount(mp);
    const r = await ok(['rm', ...storeArgs(), 'held']);
    assert.equal(r.stdout.trim(), 'held');
    assert.equal((await ps()).find((row) => row.name === 'held'), undefined);
    await fails(['rm', ...storeArgs(), 'held'], /no writable layer named held/);
  });

  it('--read-only: writes fail with EROFS, and no writable layer is made', async () => {
    const before = (await ps()).map((r) => r.name);
    const mp = await mountpoint('ro');
    assert.equal(await mountImage(baseRef, mp, ['--read-only']), '');
    assert.equal(await readFile(join(mp, 'etc/hostname'), 'utf8'), 'layer1\n');
    await assert.rejects(writeFile(join(mp, 'new'), 'x'), { code: 'EROFS' });
    await assert.rejects(writeFile(join(mp, 'etc/hostname'), 'x'), { code: 'EROFS' });
    await assert.rejects(mkdir(join(mp, 'd')), { code: 'EROFS' });
    await assert.rejects(unlink(join(mp, 'etc/passwd')), { code: 'EROFS' });
    await assert.rejects(chmod(join(mp, 'etc/passwd'), 0o600), { code: 'EROFS' });
    await assert.rejects(fsSymlink('x', join(mp, 'l')), { code: 'EROFS' });
    const rows = await ps();
    assert.deepEqual(rows.filter((r) => r.name !== '(read-only)').map((r) => r.name), before);
    assert.deepEqual(
      rows.filter((r) => r.name === '(read-only)').map((r) => [r.mountpoint, r.state, r.digest]),
      [[mp, 'serving', image.digest]],
    );
    await umount(mp);
  });

  describe('bad input: one clear line, non-zero exit, nothing lost or half-written', () => {
    /** What the store holds, to compare before and after a failure. */
    async function storeState(storeRoot = root): Promise<{ images: string[]; blobs: string[]; layers: string[]; containers: string[]; temp: string[] }> {
      const store = await Store.open(storeRoot);
      return {
        images: (await store.images.list()).map((r) => `${r.ref} ${r.manifest.digest}`).sort(),
        blobs: (await store.blobs.list()).sort(),
        layers: (await store.layers.list()).map((l) => l.diffId).sort(),
        containers: (await store.containers.list()).map((c) => c.name).sort(),
        temp: await readdir(join(storeRoot, 'tmp')).catch(() => []),
      };
    }

    it('an unknown image (registry 404): pull and mount fail, nothing is stored or mounted', async () => {
      const state = await storeState();
      await fails(['pull', ...storeArgs(), `${reg.host}/test/nope:1`], /test\/nope.*(not found|unknown|does not exist)/i);
      const mp = await mountpoint('unknown');
      await fails(['mount', ...storeArgs(), ...runArgs(), `${reg.host}/test/nope:1`, mp], /test\/nope.*(not found|unknown|does not exist)/i);
      assert.ok(!isMounted(mp));
      assert.deepEqual(await storeState(), state);
      await fails(['pull', ...storeArgs(), `${reg.host}/test/base:nosuchtag`], /nosuchtag.*(not found|unknown|does not exist)|(not found|unknown|does not exist).*nosuchtag/i);
      assert.deepEqual(await storeState(), state);
    });

    it('a wrong platform: an index without it names what it has; nothing stored or mounted', async () => {
      const amd64 = await buildTestImage([[file('arch', 'amd64\n')]], { platform: { os: 'linux', architecture: 'amd64' } });
      const arm64 = await buildTestImage([[file('arch', 'arm64\n')]], { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
      await pushIndex(reg, 'test/multi', '1', buildIndex([{ image: amd64 }, { image: arm64 }], 'oci'), [amd64, arm64]);
      const state = await storeState();
      const r = await fails(['pull', ...storeArgs(), '--platform', 'linux/s390x', `${reg.host}/test/multi:1`], /linux\/s390x/);
      assert.match(r.stderr, /linux\/amd64/, 'says which platforms there are');
      assert.match(r.stderr, /linux\/arm64/);
      const mp = await mountpoint('platform');
      await fails(['mount', ...storeArgs(), ...runArgs(), '--platform', 'linux/s390x', `${reg.host}/test/multi:1`, mp], /linux\/s390x/);
      assert.ok(!isMounted(mp));
      assert.deepEqual(await storeState(), state);
      // The platform that is there pulls fine.
      assert.equal((await ok(['pull', ...storeArgs(), '-q', '--platform', 'linux/arm64', `${reg.host}/test/multi:1`])).stdout.trim(), arm64.digest);
      // The store now has the arm64 image under that name: mount --platform linux/amd64 must not
      // silently mount it.
      const mp2 = await mountpoint('platform-local');
      await mountImage(`${reg.host}/test/multi:1`, mp2, ['--read-only', '--platform', 'linux/amd64']);
      assert.equal(await readFile(join(mp2, 'arch'), 'utf8'), 'amd64\n');
      await umount(mp2);
    });

    it('a wrong platform for a single-platform image is refused too', async () => {
      const empty = join(work, 'store-platform');
      await fails(['pull', '--root', empty, '--platform', 'linux/s390x', baseRef], /s390x.*amd64|amd64.*s390x/);
      assert.deepEqual((await storeState(empty)).images, []);
    });

    it('a mountpoint in use: refused, the mount there keeps serving, no writable layer left behind', async () => {
      const mp = await mountpoint('in-use');
      const name = await mountImage(baseRef, mp);
      await writeFile(join(mp, 'mine'), 'mine\n');
      const state = await storeState();
      await fails(['mount', ...storeArgs(), ...runArgs(), baseRef, mp], /busy|in use|already mounted|not empty/i);
      await fails(['mount', ...storeArgs(), ...runArgs(), '--read-only', baseRef, mp], /busy|in use|already mounted|not empty/i);
      assert.deepEqual(await storeState(), state, 'no writable layer made for the failed mount is left');
      assert.equal(await readFile(join(mp, 'mine'), 'utf8'), 'mine\n');
      await umount(mp);
      await ok(['rm', ...storeArgs(), name]);
    });

    it('a name already mounted: refused, the first mount keeps serving', async () => {
      const mp = await mountpoint('named-once');
      await mountImage(baseRef, mp, ['--name', 'once']);
      await writeFile(join(mp, 'mine'), 'mine\n');
      const mp2 = await mountpoint('named-twice');
      await fails(['mount', ...storeArgs(), ...runArgs(), '--name', 'once', baseRef, mp2], new RegExp(`once is already mounted at ${mp}`));
      assert.ok(!isMounted(mp2));
      assert.equal(await readFile(join(mp, 'mine'), 'utf8'), 'mine\n');
      // A name that belongs to another image is refused as well.
      await fails(['mount', ...storeArgs(), ...runArgs(), '--name', 'once', `${reg.host}/test/app:2`, mp2], /belongs to image/);
      assert.ok(!isMounted(mp2));
      await umount(mp);
    });

    it('commit of a writable layer whose image was removed: refused, nothing written', async () => {
      const other = await buildTestImage([[dir('etc'), file('etc/orphan', 'o\n')]]);
      await pushTestImage(reg, 'test/orphan', '1', other);
      const ref = `${reg.host}/test/orphan:1`;
      const mp = await mountpoint('orphan');
      await mountImage(ref, mp, ['--name', 'orphan']);
      await writeFile(join(mp, 'etc/change'), 'change\n');
      await umount(mp);
      await fails(['rmi', ...storeArgs(), ref], /orphan/); // refused without --force: a layer uses it
      await ok(['rmi', ...storeArgs(), '--force', ref]);
      await ok(['prune', ...storeArgs()]);
      const state = await storeState();
      await fails(['commit', ...storeArgs(), ...runArgs(), 'orphan', `${reg.host}/test/orphan:2`], /orphan.*no longer in the store/);
      assert.deepEqual(await storeState(), state, 'no image, blob or temp file written');
      assert.equal(await readFile(join(await storeContainerUpper('orphan'), 'etc/change'), 'utf8'), 'change\n', 'the writable layer is intact');
      await fails(['diff', ...storeArgs(), 'orphan'], /orphan.*no longer in the store/);
      await fails(['commit', ...storeArgs(), ...runArgs(), 'nosuchlayer', `${reg.host}/test/orphan:2`], /no writable layer named or mounted at nosuchlayer/);
    });

    describe('push to a registry with token auth', () => {
      const getTokenRegistry = useRegistry({ kind: 'token', users: { alice: 'secret' } });

      it('without credentials: refused, and nothing appears on the registry', async () => {
        const tokenReg = getTokenRegistry();
        const target = `${tokenReg.host}/private/app:1`;
        const r = await fails(['push', ...storeArgs(), baseRef, target], /unauthori[sz]ed|denied|credentials|authenticat|login/i);
        assert.doesNotMatch(r.stdout, /sha256:/, 'no digest printed');
        assert.equal((await getManifest(tokenReg, 'private/app', '1')).status, 404, 'no manifest');
        for (const layer of image.layers) assert.equal((await getBlob(tokenReg, 'private/app', layer.digest)).status, 404, `no blob ${layer.digest}`);
        assert.equal((await getBlob(tokenReg, 'private/app', image.configDigest)).status, 404, 'no config blob');
        // With credentials the same push goes through (so the refusal was about credentials).
        const docker = join(work, 'docker-alice');
        await mkdir(docker, { recursive: true });
        await writeFile(join(docker, 'config.json'), JSON.stringify({ auths: { [tokenReg.host]: { auth: Buffer.from('alice:secret').toString('base64') } } }));
        const pushed = await layerfs(['push', ...storeArgs(), baseRef, target], { DOCKER_CONFIG: docker });
        assert.equal(pushed.code, 0, pushed.stderr);
        assert.equal((await getManifest(tokenReg, 'private/app', '1')).status, 200);
      });
    });
  });

  it('chroot into a mounted busybox image runs its programs', async (t) => {
    if (!onPath('busybox') && !(await exists(BUSYBOX))) {
      t.skip(`${BUSYBOX} is missing: install busybox-static`);
      return;
    }
    const layout = join(work, 'busybox-oci');
    if (await exists(SAMPLE_SCRIPT)) {
      await run(process.execPath, [SAMPLE_SCRIPT, layout]);
    } else {
      const busybox = await readFile(BUSYBOX);
      const tiny = await buildTestImage([
        [dir('bin'), file('bin/busybox', busybox, { mode: 0o755 }), symlink('bin/sh', 'busybox'), symlink('bin/cat', 'busybox'), dir('etc'), dir('tmp', { mode: 0o1777 }), file('etc/motd', 'Welcome (built by the test)\n')],
      ]);
      await writeOciLayout(layout, tiny, 'latest');
    }
    const ref = `oci:${layout}:latest`;
    await ok(['pull', ...storeArgs(), '-q', ref]);
    const mp = await mountpoint('chroot');
    await mountImage(ref, mp, ['--rm']);
    try {
      const motd = await readFile(join(mp, 'etc/motd'), 'utf8');
      const out = await run('chroot', [mp, '/bin/sh', '-c', 'echo ok; cat /etc/motd']);
      assert.equal(out, `ok\n${motd}`);
      assert.match(motd, /Welcome/);
      if (await exists(SAMPLE_SCRIPT)) {
        assert.match(motd, /changed by layer 3/, 'the top layer\'s motd');
        const listing = await run('chroot', [mp, '/bin/sh', '-c', 'cat /var/lib/sample/packages; ls /opt/sample; ls /etc/sample 2>&1 || true']);
        assert.match(listing, /busybox/);
        assert.match(listing, /new\.txt/);
        assert.doesNotMatch(listing, /legacy\.conf/);
      }
      // Writes from inside the chroot land in the writable layer.
      await run('chroot', [mp, '/bin/sh', '-c', 'echo inside > /tmp/written']);
      assert.equal(await readFile(join(mp, 'tmp/written'), 'utf8'), 'inside\n');
    } finally {
      await umount(mp);
    }
  });
});
