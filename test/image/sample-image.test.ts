// scripts/make-sample-image.mjs: two runs give byte-identical layouts, a missing busybox is one
// clear line, and the image works as a root filesystem when unpacked by a real tool (umoci) —
// `chroot ROOTFS /bin/sh` runs, and layer 3's whiteout and opaque directory take effect.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { TempDirs } from '../helpers/tmp.js';

const exec = promisify(execFile);
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = join(REPO, 'scripts', 'make-sample-image.mjs');
const BUSYBOX = '/bin/busybox';
const FIXED_TIME = Date.UTC(2026, 0, 1);

function which(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function busyboxMissing(): string | false {
  try {
    accessSync(BUSYBOX, constants.X_OK);
    return false;
  } catch {
    return `${BUSYBOX} is missing: install busybox-static (scripts/setup-system.sh)`;
  }
}

function unpackSkip(): string | false {
  const missing = busyboxMissing();
  if (missing) return missing;
  if (which('umoci') === undefined) return 'umoci is missing: apt-get install umoci (CI installs it)';
  if (process.getuid?.() !== 0) return 'umoci unpack and chroot need root';
  return false;
}

async function makeImage(dir: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const { stdout } = await exec(process.execPath, [SCRIPT, dir], { env: { ...process.env, ...env }, timeout: 60_000 });
  return stdout;
}

/** sha256 of every file of a layout, by relative path. */
async function layoutHashes(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(join(dir, rel), { withFileTypes: true })) {
      const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(path);
      else out.set(path, createHash('sha256').update(await readFile(join(dir, path))).digest('hex'));
    }
  };
  await walk('');
  return out;
}

interface Index {
  manifests: Array<{ digest: string; mediaType: string; annotations?: Record<string, string> }>;
}
interface Manifest {
  mediaType: string;
  config: { digest: string };
  layers: Array<{ digest: string; mediaType: string }>;
}

const blob = (layout: string, digest: string): string => join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
const readJson = async <T>(path: string): Promise<T> => JSON.parse(await readFile(path, 'utf8')) as T;

describe('make-sample-image', { skip: busyboxMissing() }, () => {
  const temps = new TempDirs();
  let first = '';
  let second = '';

  before(async () => {
    const dir = await temps.make('sample-image');
    first = join(dir, 'one', 'busybox-oci');
    second = join(dir, 'two', 'busybox-oci');
    await makeImage(first);
    await makeImage(second);
  });
  after(() => temps.cleanup());

  it('is reproducible: two runs give the same manifest digest and identical files', async () => {
    const a = await readJson<Index>(join(first, 'index.json'));
    const b = await readJson<Index>(join(second, 'index.json'));
    assert.equal(a.manifests.length, 1);
    assert.match(a.manifests[0]!.digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(a.manifests[0]!.digest, b.manifests[0]!.digest);
    assert.deepEqual(await layoutHashes(first), await layoutHashes(second));
  });

  it('writes an OCI layout: tag latest, three gzip layers, config with Cmd, history and the fixed time', async () => {
    assert.deepEqual(await readJson(join(first, 'oci-layout')), { imageLayoutVersion: '1.0.0' });
    const index = await readJson<Index>(join(first, 'index.json'));
    const desc = index.manifests[0]!;
    assert.equal(desc.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(desc.annotations?.['org.opencontainers.image.ref.name'], 'latest');
    const manifest = await readJson<Manifest>(blob(first, desc.digest));
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(manifest.layers.length, 3);
    for (const layer of manifest.layers) assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
    const config = await readJson<{ created: string; os: string; architecture: string; config: { Cmd: string[]; Env: string[] }; history: unknown[]; rootfs: { diff_ids: string[] } }>(
      blob(first, manifest.config.digest),
    );
    assert.equal(config.created, '2026-01-01T00:00:00Z');
    assert.equal(config.os, 'linux');
    assert.equal(config.architecture, process.arch === 'x64' ? 'amd64' : config.architecture);
    assert.deepEqual(config.config.Cmd, ['/bin/sh']);
    assert.ok(config.config.Env.some((e) => e.startsWith('PATH=')));
    assert.equal(config.history.length, 3);
    assert.equal(config.rootfs.diff_ids.length, 3);
    // gzip headers without a time: bytes 4-7 (MTIME) are zero, and no FNAME flag.
    for (const layer of manifest.layers) {
      const head = (await readFile(blob(first, layer.digest))).subarray(0, 10);
      assert.equal(head.readUInt32LE(4), 0, 'gzip MTIME is zero');
      assert.equal(head[3]! & 0x08, 0, 'gzip header has no file name');
    }
    // Layer 3 holds the whiteout and the opaque marker, in sorted order.
    const { stdout } = await exec('tar', ['-tzf', blob(first, manifest.layers[2]!.digest)]);
    assert.deepEqual(stdout.trim().split('\n'), ['etc', 'etc/motd', 'etc/sample', 'etc/sample/.wh.legacy.conf', 'opt', 'opt/sample', 'opt/sample/.wh..wh..opq', 'opt/sample/new.txt']);
  });

  it('SOURCE_DATE_EPOCH changes the image time (and so the digest)', async () => {
    const dir = join(await temps.make('sample-image-epoch'), 'img');
    await makeImage(dir, { SOURCE_DATE_EPOCH: '1700000000' });
    const index = await readJson<Index>(join(dir, 'index.json'));
    const manifest = await readJson<Manifest>(blob(dir, index.manifests[0]!.digest));
    const config = await readJson<{ created: string }>(blob(dir, manifest.config.digest));
    assert.equal(config.created, '2023-11-14T22:13:20Z');
    assert.notEqual(index.manifests[0]!.digest, (await readJson<Index>(join(first, 'index.json'))).manifests[0]!.digest);
  });

  it('refuses with one clear line when busybox is missing, leaving nothing behind', async () => {
    const parent = await temps.make('sample-image-missing');
    const result = await exec(process.execPath, [SCRIPT, join(parent, 'img')], { env: { ...process.env, BUSYBOX: join(parent, 'no-busybox') } }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^make-sample-image: .*no-busybox is missing: install busybox-static: scripts\/setup-system\.sh\n$/);
    assert.deepEqual(await readdir(parent), []);
  });

  it('refuses to replace a directory that is not an OCI layout', async () => {
    const parent = await temps.make('sample-image-target');
    await mkdir(join(parent, 'img'));
    await writeFile(join(parent, 'img', 'precious'), 'keep me\n');
    await assert.rejects(makeImage(join(parent, 'img')), (err: { stderr?: string }) => /not an OCI image layout/.test(err.stderr ?? ''));
    assert.deepEqual(await readdir(join(parent, 'img')), ['precious']);
  });

  describe('unpacked by umoci and run with chroot', { skip: unpackSkip() }, () => {
    let rootfs = '';
    const sh = (script: string): string => execFileSync('chroot', [rootfs, '/bin/sh', '-c', script], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, timeout: 30_000 });

    before(async () => {
      const bundle = join(await temps.make('sample-image-unpack'), 'bundle');
      await exec('umoci', ['unpack', '--image', `${first}:latest`, bundle], { timeout: 120_000 });
      rootfs = join(bundle, 'rootfs');
    });

    it('/bin/sh -c runs inside it', () => {
      assert.equal(sh('echo ok'), 'ok\n');
      assert.equal(sh('ls / | tr "\\n" " "'), 'bin dev etc opt proc root sbin sys tmp usr var ');
      assert.match(sh('awk "BEGIN { print 6 * 7 }"'), /^42\n$/); // a usr/bin applet through its symlink
    });

    it('layer 3 wins: the changed motd, the whiteout and the opaque directory', async () => {
      assert.equal(sh('cat /etc/motd'), 'Welcome to the layerfs sample image (motd changed by layer 3).\n');
      assert.equal(sh('ls -A /etc/sample'), 'keep.conf\n', 'legacy.conf is whited out, its sibling stays');
      assert.equal(sh('ls -A /opt/sample'), 'new.txt\n', 'the opaque directory hides everything of layer 2');
      assert.match(sh('cat /var/lib/sample/packages'), /^busybox(-static)? \S+\nsample-base 1\n/);
      assert.match(sh('cat /etc/os-release'), /^NAME="layerfs sample image"$/m);
    });

    it('has the modes, owners and times the layers say', async () => {
      assert.equal((await stat(join(rootfs, 'tmp'))).mode & 0o7777, 0o1777);
      assert.equal((await stat(join(rootfs, 'root'))).mode & 0o7777, 0o700);
      const busybox = await stat(join(rootfs, 'bin', 'busybox'));
      assert.equal(busybox.mode & 0o7777, 0o755);
      assert.equal(busybox.uid, 0);
      assert.equal(busybox.mtimeMs, FIXED_TIME);
      assert.equal(sh('readlink /bin/sh'), '/bin/busybox\n');
    });
  });
});
