// The registry commands as a user runs them: `node bin/layerfs.js` (which loads dist/: build with
// `npx tsc -p tsconfig.json` first) with HOME, DOCKER_CONFIG and XDG_CONFIG_HOME in temp dirs.
// pull's output (plain lines, --quiet, a TTY's bars), inspect (local and --remote), tags,
// login/logout writing the Docker config and a pull that uses it, mirrors with fallback, pulls
// killed mid-download and resumed, and the one-line errors of bad input.
import './pull-support.js';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Digest, digestHex } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { Store } from '../../src/store/store.js';
import { LAYERFS_BIN } from '../helpers/mount.js';
import { file } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { type FaultRegistry, startFaultRegistry } from './harness/fault-server.js';
import { buildIndex, buildTestImage, type TestImage } from './harness/images.js';
import { pushIndex, pushTestImage } from './harness/push.js';
import { registrySkip, useRegistry } from './harness/registry-server.js';
import { noise, storeContents } from './pull-support.js';

const skip = registrySkip();
const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A clean environment: nothing of the user's Docker, Podman or layerfs settings leaks in. */
function cleanEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, XDG_CONFIG_HOME: join(home, '.config'), LANG: 'C.UTF-8', ...extra };
}

function start(args: string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [LAYERFS_BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
}

async function finish(child: ChildProcess, input?: string): Promise<Run> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdin!.end(input);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (c, s) => resolve([c, s])));
  return { code, signal, stdout, stderr };
}

async function layerfs(args: string[], env: Record<string, string>, input?: string): Promise<Run> {
  const child = start(args, env);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    return await finish(child, input);
  } finally {
    clearTimeout(timer);
  }
}

/** A failure as the CLI reports it: exit 1, one line `layerfs: ...`, no stack trace, nothing on stdout. */
function assertOneLineError(run: Run, pattern: RegExp): void {
  assert.equal(run.code, 1, `exit code (stderr: ${run.stderr})`);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /^layerfs: [^\n]+\n$/, 'exactly one line');
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  assert.match(run.stderr, pattern);
}

const short = (digest: Digest): string => digest.slice(7, 19);
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('layerfs pull, inspect and tags against a registry', { skip }, () => {
  const reg = useRegistry();
  const temps = new TempDirs();
  let home: string;
  let root: string;
  let env: Record<string, string>;
  let image: TestImage;
  let arm64: TestImage;

  before(async () => {
    home = await temps.make('cli-home');
    root = join(home, 'store');
    env = cleanEnv(home);
    image = await buildTestImage([[file('etc/hello', 'hello\n')], [file('bin/app', 'app\n', { mode: 0o755 })]]);
    arm64 = await buildTestImage([[file('etc/hello', 'arm\n')]], { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    await pushTestImage(reg(), 'library/app', 'v1', image);
    await pushTestImage(reg(), 'library/app', 'v2', image);
    await pushIndex(reg(), 'library/multi', 'latest', buildIndex([{ image }, { image: arm64 }], 'oci'), [image, arm64]);
  });
  after(() => temps.cleanup());

  it('pull: progress as plain lines on stderr, the digest alone on stdout; again: nothing downloaded', async () => {
    const ref = `${reg().host}/library/app:v1`;
    const first = await layerfs(['pull', '--root', root, ref], env);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, `${image.digest}\n`);
    const lines = first.stderr.trimEnd().split('\n');
    assert.equal(lines[0], `resolved ${image.digest}, 2 layers`);
    for (const layer of image.layers) {
      const s = short(layer.digest);
      assert.ok(lines.some((l) => new RegExp(`^${s}: downloading \\d+B$`).test(l)), `${s} starts: ${first.stderr}`);
      assert.ok(lines.includes(`${s}: from registry ${reg().host}`), `${s} says who served it`);
      assert.ok(lines.some((l) => new RegExp(`^${s}: done \\(downloaded in \\d+\\.\\d s, .+/s\\)$`).test(l)), `${s} is done`);
    }
    assert.match(lines.at(-1)!, new RegExp(`^${escape(ref)}: 2 of 2 layers downloaded, \\S+ on disk$`));
    assert.equal(lines.length, 1 + 3 * 2 + 1);

    const second = await layerfs(['pull', '--root', root, ref], env);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, `${image.digest}\n`);
    // Layers are handled concurrently: their lines come in any order.
    assert.deepEqual(second.stderr.trimEnd().split('\n').slice(1, 3).sort(), image.layers.map((l) => `${short(l.digest)}: already in the cache`).sort());
    assert.match(second.stderr, new RegExp(`${escape(ref)}: 0 of 2 layers downloaded`));
  });

  it('pull --quiet prints the digest and nothing else', async () => {
    const run = await layerfs(['pull', '--quiet', '--root', join(home, 'quiet-store'), `${reg().host}/library/app:v2`], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${image.digest}\n`);
    assert.equal(run.stderr, '');
  });

  it('pull on a terminal draws progress bars', { skip: hasScript ? false : 'script(1) is not installed' }, async () => {
    const command = [process.execPath, LAYERFS_BIN, 'pull', '--root', join(home, 'tty-store'), `${reg().host}/library/app:v1`].map((a) => `'${a}'`).join(' ');
    const run = spawnSync('script', ['-qefc', command, '/dev/null'], { env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stdout);
    const screen = run.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    for (const layer of image.layers) assert.match(screen, new RegExp(`${short(layer.digest)} \\[=+\\] downloaded`));
    assert.match(screen, new RegExp(image.digest));
  });

  it('pull --platform with no match: one line listing the platforms there are', async () => {
    const run = await layerfs(['pull', '--root', root, '--platform', 'linux/s390x', `${reg().host}/library/multi`], env);
    assertOneLineError(run, new RegExp(`^layerfs: no image for linux/s390x in ${escape(reg().host)}/library/multi:latest; available: linux/amd64, linux/arm64/v8\n$`));
  });

  it('pull --platform picks from the index', async () => {
    const run = await layerfs(['pull', '--root', root, '--platform', 'linux/arm64', `${reg().host}/library/multi`], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${arm64.digest}\n`);
    assert.match(run.stderr, new RegExp(`^resolved ${arm64.digest} \\(linux/arm64\\), 1 layers\n`));
  });

  it('inspect prints the stored image as JSON; --remote asks the registry', async () => {
    await layerfs(['pull', '--quiet', '--root', root, `${reg().host}/library/app:v1`], env);
    const local = await layerfs(['inspect', '--root', root, `${reg().host}/library/app:v1`], env);
    assert.equal(local.code, 0, local.stderr);
    const shown = JSON.parse(local.stdout) as { names: string[]; digest: string; id: string; mediaType: string; layers: Array<{ digest: string; diffId: string }> };
    assert.ok(shown.names.includes(`${reg().host}/library/app:v1`));
    assert.equal(shown.digest, image.digest);
    assert.equal(shown.id, image.configDigest);
    assert.equal(shown.mediaType, MediaType.ociManifest);
    assert.deepEqual(shown.layers.map((l) => [l.digest, l.diffId]), image.layers.map((l) => [l.digest, l.diffId]));

    const remote = await layerfs(['inspect', '--remote', '--platform', 'linux/arm64', `${reg().host}/library/multi`], env);
    assert.equal(remote.code, 0, remote.stderr);
    const fromRegistry = JSON.parse(remote.stdout) as { name: string; digest: string; index: { mediaType: string; platform: string }; config: { architecture: string }; layers: Array<{ diffId: string }> };
    assert.equal(fromRegistry.name, `${reg().host}/library/multi:latest`);
    assert.equal(fromRegistry.digest, arm64.digest);
    assert.deepEqual(fromRegistry.index.mediaType, MediaType.ociIndex);
    assert.equal(fromRegistry.index.platform, 'linux/arm64');
    assert.equal(fromRegistry.config.architecture, 'arm64');
    assert.deepEqual(fromRegistry.layers.map((l) => l.diffId), arm64.layers.map((l) => l.diffId));

    const missing = await layerfs(['inspect', '--root', root, `${reg().host}/library/never-pulled:v1`], env);
    assertOneLineError(missing, /no such image in the local store: .*never-pulled:v1 \(pull it, or use --remote\)/);
  });

  it('tags lists the tags of a repository', async () => {
    const run = await layerfs(['tags', `${reg().host}/library/app`], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'v1\nv2\n');
  });

  it('bad input, an unknown image, an unreachable registry: one line each, no stack trace', async () => {
    const [invalid, platform, concurrency, tagged, unknown, unreachable, noLayout] = await Promise.all([
      layerfs(['pull', '--root', root, 'UPPER/Case'], env),
      layerfs(['pull', '--root', root, '--platform', 'linux', `${reg().host}/library/app:v1`], env),
      layerfs(['pull', '--root', root, '--max-concurrent-downloads', '0', `${reg().host}/library/app:v1`], env),
      layerfs(['tags', `${reg().host}/library/app:v1`], env),
      layerfs(['pull', '--root', root, `${reg().host}/library/nope:v1`], env),
      // Port 9 (discard) on loopback: nothing listens there. Refusals are retried with backoff first.
      layerfs(['pull', '--root', root, '127.0.0.1:9/library/app:v1'], env),
      layerfs(['pull', '--root', root, `oci:${join(home, 'no-such-layout')}:v1`], env),
    ]);
    assertOneLineError(invalid, /^layerfs: invalid reference "UPPER\/Case": repository name must be lowercase\n$/);
    assertOneLineError(platform, /^layerfs: invalid platform "linux": expected os\/architecture/);
    assert.equal(concurrency.code, 2);
    assert.match(concurrency.stderr, /^layerfs: --max-concurrent-downloads must be a whole number of at least 1\n$/);
    assertOneLineError(tagged, /invalid repository .*: expected a repository name without a tag or digest/);
    assertOneLineError(unknown, new RegExp(`^layerfs: manifest library/nope:v1: not found in library/nope at ${escape(reg().host)}`));
    assertOneLineError(unreachable, /^layerfs: GET http:\/\/127\.0\.0\.1:9\/v2\/library\/app\/manifests\/v1: connection refused\n$/);
    assertOneLineError(noLayout, /no-such-layout/);
  });
});

describe('layerfs login and logout with a Basic-auth registry', { skip }, () => {
  const PASSWORD = 'S3cret-for-login-7d1a';
  const reg = useRegistry({ kind: 'basic', users: { alice: PASSWORD } });
  const temps = new TempDirs();
  let home: string;
  let env: Record<string, string>;
  let image: TestImage;
  const secrets = [PASSWORD, Buffer.from(`alice:${PASSWORD}`).toString('base64')];
  const assertNoSecret = (run: Run): void => {
    for (const secret of secrets) assert.equal(`${run.stdout}${run.stderr}`.includes(secret), false, 'no secret printed');
  };

  before(async () => {
    home = await temps.make('cli-login');
    env = cleanEnv(home);
    image = await buildTestImage([[file('etc/private', 'private\n')]]);
    await pushTestImage(reg(), 'team/app', 'v1', image);
  });
  after(() => temps.cleanup());

  it('login checks the password, writes ~/.docker/config.json (0600), a pull then uses it, logout removes it', async () => {
    const configPath = join(home, '.docker', 'config.json');
    const root = join(home, 'store');
    const ref = `${reg().host}/team/app:v1`;

    const anonymous = await layerfs(['pull', '--root', root, ref], env);
    assertOneLineError(anonymous, new RegExp(`requires a user name and password; run \`layerfs login ${escape(reg().host)}\``));

    const wrong = await layerfs(['login', '--username', 'alice', '--password-stdin', reg().host], env, 'not-it\n');
    assertOneLineError(wrong, new RegExp(`^layerfs: login to ${escape(reg().host)} failed: the registry refused the credentials \\(HTTP 401\\)\n$`));
    await assert.rejects(fsp.stat(configPath), { code: 'ENOENT' });

    const login = await layerfs(['login', '--username', 'alice', '--password-stdin', reg().host], env, `${PASSWORD}\n`);
    assert.equal(login.code, 0, login.stderr);
    assert.equal(login.stdout, 'Login Succeeded\n');
    assertNoSecret(login);
    assert.equal((await fsp.stat(configPath)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await fsp.readFile(configPath, 'utf8')), { auths: { [reg().host]: { auth: secrets[1] } } });

    // With debug logging too, nothing secret is printed.
    const pulled = await layerfs(['pull', '--root', root, ref], { ...env, LAYERFS_LOG: 'debug' });
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal(pulled.stdout, `${image.digest}\n`);
    assertNoSecret(pulled);
    assert.doesNotMatch(pulled.stderr, /Basic [A-Za-z0-9+/=]{8,}/);

    const logout = await layerfs(['logout', reg().host], env);
    assert.equal(logout.code, 0, logout.stderr);
    assert.equal(logout.stdout, `Removing login credentials for ${reg().host}\n`);
    assert.deepEqual(JSON.parse(await fsp.readFile(configPath, 'utf8')), { auths: {} });
    assert.equal((await fsp.stat(configPath)).mode & 0o777, 0o600);
    const again = await layerfs(['logout', reg().host], env);
    assert.equal(again.stdout, `Not logged in to ${reg().host}\n`);

    const refused = await layerfs(['pull', '--root', join(home, 'store2'), ref], env);
    assertOneLineError(refused, /requires a user name and password/);
  });

  it('login keeps the other entries of an existing config, in DOCKER_CONFIG', async () => {
    const dockerConfig = join(home, 'elsewhere');
    await fsp.mkdir(dockerConfig);
    const existing = { auths: { 'other.example': { auth: Buffer.from('bob:x').toString('base64') } }, psFormat: 'table {{.ID}}' };
    await fsp.writeFile(join(dockerConfig, 'config.json'), JSON.stringify(existing), { mode: 0o644 });
    const withConfig = { ...env, DOCKER_CONFIG: dockerConfig };
    const login = await layerfs(['login', '-u', 'alice', '--password-stdin', `http://${reg().host}/`], withConfig, PASSWORD);
    assert.equal(login.code, 0, login.stderr);
    assertNoSecret(login);
    const written = JSON.parse(await fsp.readFile(join(dockerConfig, 'config.json'), 'utf8')) as typeof existing;
    assert.deepEqual(written, { ...existing, auths: { ...existing.auths, [reg().host]: { auth: secrets[1] } } });
    assert.equal((await fsp.stat(join(dockerConfig, 'config.json'))).mode & 0o777, 0o600);
    const pulled = await layerfs(['pull', '--quiet', '--root', join(home, 'store3'), `${reg().host}/team/app:v1`], withConfig);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal(pulled.stdout, `${image.digest}\n`);
  });
});

describe('layerfs pull through mirrors', { skip }, () => {
  const reg = useRegistry();
  const temps = new TempDirs();
  let mirror: FaultRegistry;
  let image: TestImage;
  let home: string;
  let configPath: string;

  before(async () => {
    home = await temps.make('cli-mirrors');
    image = await buildTestImage([[file('etc/mirrored', 'mirrored\n')], [file('usr/share/doc', 'doc\n')]]);
    await pushTestImage(reg(), 'library/app', 'v1', image);
    mirror = await startFaultRegistry({ manifests: {}, blobs: {} });
    // A mirror nobody listens on, then the fault server, then (always last) the registry itself.
    configPath = join(home, 'registries.json');
    await fsp.writeFile(configPath, JSON.stringify({ registries: { [reg().host]: { mirrors: ['http://127.0.0.1:9', mirror.url] } } }));
  });
  after(async () => {
    await mirror.stop();
    await temps.cleanup();
  });

  it('failing mirrors fall back to the next and then to the registry, which the output names', async () => {
    mirror.setFaults([{ kind: 'status', status: 503, on: 'all' }]);
    mirror.requests.splice(0);
    const started = Date.now();
    const run = await layerfs(['pull', '--root', join(home, 'store1'), '--registries-config', configPath, `${reg().host}/library/app:v1`], cleanEnv(home));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${image.digest}\n`);
    for (const layer of image.layers) assert.match(run.stderr, new RegExp(`^${short(layer.digest)}: from registry ${escape(reg().host)}$`, 'm'));
    assert.match(run.stderr, /mirror http:\/\/127\.0\.0\.1:9 failed \(.*connection refused\); not asking it again; trying the next source/);
    assert.match(run.stderr, new RegExp(`mirror ${escape(mirror.url)} failed \\(.*HTTP 503.*\\); not asking it again; trying the next source`));
    // Each mirror is asked once, without retries: after a failure that says it is down (refused,
    // 503), the config and the two layers go straight to the registry.
    assert.equal(mirror.requests.length, 1);
    assert.equal(run.stderr.match(/mirror http:\/\/127\.0\.0\.1:9 failed/g)?.length, 1);
    assert.ok(Date.now() - started < 20_000);
  });

  it('--retry sets how often a failed request is tried again, --stall-timeout how long a silent connection is waited for', async () => {
    const direct = `${new URL(mirror.url).host}/library/app:v1`;
    const store = join(home, 'store-retry');
    mirror.setFaults([{ kind: 'status', status: 503, on: 'all' }]);
    for (const [retries, asked] of [[0, 1], [2, 3]] as const) {
      mirror.requests.splice(0);
      const run = await layerfs(['pull', '--root', store, '--retry', String(retries), direct], cleanEnv(home));
      assertOneLineError(run, /HTTP 503/);
      assert.equal(mirror.requests.length, asked, `--retry ${retries}`);
    }

    mirror.setContent({
      manifests: { 'library/app:v1': { bytes: image.manifest, mediaType: image.manifestMediaType } },
      blobs: Object.fromEntries([[image.configDigest, image.config], ...image.layers.map((l) => [l.digest, l.blob])]),
    });
    mirror.setFaults([{ kind: 'stall', afterBytes: 0, on: 'manifests' }]);
    const started = Date.now();
    const stalled = await layerfs(['pull', '--root', store, '--retry', '0', '--stall-timeout', '1', direct], cleanEnv(home));
    assertOneLineError(stalled, /no data for too long/);
    assert.ok(Date.now() - started < 15_000, 'gave up after the stall timeout, not the default 30 s');
    mirror.setFaults([]);
    mirror.setContent({ manifests: {}, blobs: {} });

    const [negative, fraction, zero, word] = await Promise.all([
      layerfs(['pull', '--root', store, '--retry', '-1', direct], cleanEnv(home)),
      layerfs(['pull', '--root', store, '--retry', '1.5', direct], cleanEnv(home)),
      layerfs(['pull', '--root', store, '--stall-timeout', '0', direct], cleanEnv(home)),
      layerfs(['pull', '--root', store, '--stall-timeout', 'soon', direct], cleanEnv(home)),
    ]);
    for (const run of [negative, fraction]) {
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /^layerfs: --retry must be a whole number from 0 to 100, not -?1(\.5)?\n$/);
    }
    for (const run of [zero, word]) {
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /^layerfs: --stall-timeout must be a number of seconds above 0 and at most 86400, not (0|something that is not a number)\n$/);
    }
  });

  it('a mirror that has the image serves it, and the output says so', async () => {
    mirror.setFaults([]);
    mirror.setContent({
      manifests: { 'library/app:v1': { bytes: image.manifest, mediaType: image.manifestMediaType } },
      blobs: Object.fromEntries([[image.configDigest, image.config], ...image.layers.map((l) => [l.digest, l.blob])]),
    });
    mirror.requests.splice(0);
    const run = await layerfs(['pull', '--root', join(home, 'store2'), '--registries-config', configPath, `${reg().host}/library/app:v1`], cleanEnv(home));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${image.digest}\n`);
    for (const layer of image.layers) assert.match(run.stderr, new RegExp(`^${short(layer.digest)}: from mirror ${escape(mirror.url)}$`, 'm'));
    assert.deepEqual(
      mirror.requests.map((r) => r.path).sort(),
      [`/v2/library/app/manifests/v1`, ...[image.configDigest, ...image.layers.map((l) => l.digest)].map((d) => `/v2/library/app/blobs/${d}`)].sort(),
    );
  });
});

describe('a pull interrupted mid-download resumes on the next run', () => {
  const temps = new TempDirs();
  const LAYER_BYTES = 4 * 1024 * 1024;
  const STALL_AT = 1024 * 1024;
  let fake: FaultRegistry;
  let image: TestImage;
  let layer: TestImage['layers'][number];
  let home: string;

  before(async () => {
    home = await temps.make('cli-resume');
    image = await buildTestImage([[file('data/big.bin', noise(LAYER_BYTES, 11))]], { compression: 'none' });
    layer = image.layers[0]!;
    fake = await startFaultRegistry({
      manifests: { 'library/big:v1': { bytes: image.manifest, mediaType: image.manifestMediaType } },
      blobs: { [image.configDigest]: image.config, [layer.digest]: layer.blob },
    });
  });
  after(async () => {
    await fake.stop();
    await temps.cleanup();
  });

  async function waitForPartial(path: string, size: number): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const now = (await fsp.stat(path).catch(() => undefined))?.size;
      if (now === size) return;
      if (Date.now() > deadline) throw new Error(`the partial download has ${now ?? 'no'} bytes, not ${size}, after 30 s`);
      await sleep(50);
    }
  }

  for (const signal of ['SIGINT', 'SIGKILL'] as const) {
    it(`${signal} mid-blob leaves only the partial download; the next pull resumes it with Range`, async () => {
      const root = join(home, `store-${signal}`);
      const env = cleanEnv(home);
      const ref = `${fake.host}/library/big:v1`;
      // The layer's body stops after 1 MiB and hangs: the process is caught mid-download.
      fake.setFaults([{ kind: 'stall', afterBytes: STALL_AT, on: (r) => r.path.endsWith(layer.digest), times: 1 }]);
      fake.requests.splice(0);
      const child = start(['pull', '--root', root, ref], env);
      const done = finish(child);
      await waitForPartial(join(root, 'downloads', digestHex(layer.digest)), STALL_AT);
      child.kill(signal);
      const killed = await done;
      assert.equal(killed.signal, signal, `ended by ${signal} (${killed.stderr})`);
      assert.equal(killed.stdout, '');

      const store = await Store.open(root);
      assert.deepEqual(await storeContents(store), { blobs: [], layers: [], downloads: { [digestHex(layer.digest)]: STALL_AT }, names: [] }, 'nothing half-visible');

      fake.requests.splice(0);
      const resumed = await layerfs(['pull', '--root', root, ref], env);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal(resumed.stdout, `${image.digest}\n`);
      const layerGets = fake.requests.filter((r) => r.path.endsWith(layer.digest) && r.method === 'GET');
      assert.deepEqual(layerGets.map((r) => r.range), [`bytes=${STALL_AT}-`], 'the first blob request of the next pull asks for the rest');
      assert.match(resumed.stderr, new RegExp(`^${short(layer.digest)}: downloading \\S+, resuming at \\S+$`, 'm'));
      const after = await storeContents(store);
      assert.deepEqual(after.downloads, {});
      assert.deepEqual(after.layers, [layer.diffId]);
      assert.ok((await store.blobs.read(layer.digest)).equals(layer.blob));
    });
  }
});
