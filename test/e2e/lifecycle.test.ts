// The life of a mount as users see it through the CLI: background start, SIGTERM/SIGINT,
// a daemon killed with SIGKILL (stale mount) cleared by `layerfs umount`, and every mount error
// giving a clear message, a non-zero exit and no mount left behind.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { LAYERFS_BIN } from '../helpers/mount.js';
import { TempDirs, isMounted } from '../helpers/tmp.js';
import { alive, waitFor } from '../helpers/process.js';

const exec = promisify(execFile);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function layerfs(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [LAYERFS_BIN, ...args], {
      env: { ...process.env, ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Pids of mount daemons (dist/bundle/daemon.cjs) running now, waiting or serving. */
function daemonPids(): Set<number> {
  const pids = new Set<number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.some((arg) => arg.endsWith('/daemon.cjs'))) pids.add(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Waits until no daemon is running that was not running in `before`. */
async function noNewDaemons(before: Set<number>): Promise<void> {
  await waitFor(() => [...daemonPids()].every((pid) => before.has(pid)), 'the mount daemon started for a failed command to exit', 10_000);
}

describe('mount lifecycle through the CLI', () => {
  const temps = new TempDirs();
  let root = '';
  let lower = '';
  let runDir = '';

  before(async () => {
    root = await temps.make('lifecycle');
    lower = join(root, 'lower');
    runDir = join(root, 'run');
    await mkdir(lower);
    await writeFile(join(lower, 'hello.txt'), 'hello\n');
  });
  after(() => temps.cleanup());

  async function freshMountpoint(name: string): Promise<string> {
    const mp = join(root, name);
    await mkdir(mp);
    return mp;
  }

  async function daemonPid(): Promise<number> {
    const files = await readdir(join(runDir, 'mounts'));
    assert.equal(files.length, 1, 'one mount state file');
    return (JSON.parse(await readFile(join(runDir, 'mounts', files[0]!), 'utf8')) as { pid: number }).pid;
  }

  it('mounts in the background, serves, and unmounts cleanly on SIGTERM', async () => {
    const mp = await freshMountpoint('sigterm');
    const upper = join(root, 'upper-sigterm');
    await mkdir(upper);
    const r = await layerfs(['mount', '--run-dir', runDir, '--lower', lower, '--upper', upper, mp]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(isMounted(mp), 'mounted when the command returns');
    assert.equal(await readFile(join(mp, 'hello.txt'), 'utf8'), 'hello\n');
    await writeFile(join(mp, 'new.txt'), 'written\n');
    const pid = await daemonPid();
    // Also what makes the "no daemon left behind" tests below mean something: they find daemons
    // by this same test.
    assert.ok(daemonPids().has(pid), `the serving process ${pid} is a mount daemon (daemon.cjs)`);
    process.kill(pid, 'SIGTERM');
    await waitFor(() => !isMounted(mp) && !alive(pid), 'the daemon to unmount and exit');
    assert.equal(await readFile(join(upper, 'new.txt'), 'utf8'), 'written\n', 'writes reached the upper');
    assert.deepEqual(await readdir(join(runDir, 'mounts')), [], 'state file removed');
  });

  it('a SIGKILLed daemon leaves a stale mount that `layerfs umount` clears', async () => {
    const mp = await freshMountpoint('sigkill');
    const r = await layerfs(['mount', '--run-dir', runDir, '--lower', lower, mp]);
    assert.equal(r.code, 0, r.stderr);
    const pid = await daemonPid();
    process.kill(pid, 'SIGKILL');
    await waitFor(() => !alive(pid), 'the daemon to die');
    await assert.rejects(stat(mp), { code: 'ENOTCONN' }, 'the mount is stale');
    const again = await layerfs(['mount', '--run-dir', runDir, '--lower', lower, mp]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /stale mount/);
    const u = await layerfs(['umount', '--run-dir', runDir, mp]);
    assert.equal(u.code, 0, u.stderr);
    assert.match(u.stderr, /cleared stale mount/);
    assert.ok(!isMounted(mp));
    assert.ok((await stat(mp)).isDirectory());
  });

  it('`layerfs umount` stops a live mount and its daemon', async () => {
    const mp = await freshMountpoint('umount');
    assert.equal((await layerfs(['mount', '--run-dir', runDir, '--lower', lower, mp])).code, 0);
    const pid = await daemonPid();
    const u = await layerfs(['umount', '--run-dir', runDir, mp]);
    assert.equal(u.code, 0, u.stderr);
    assert.ok(!isMounted(mp));
    await waitFor(() => !alive(pid), 'the daemon to exit');
  });

  it('an unmount from outside (umount(8)) ends the daemon', async () => {
    const mp = await freshMountpoint('external');
    assert.equal((await layerfs(['mount', '--run-dir', runDir, '--lower', lower, mp])).code, 0);
    const pid = await daemonPid();
    await exec('umount', [mp]);
    await waitFor(() => !alive(pid), 'the daemon to notice and exit');
  });

  it('--foreground serves until SIGINT and then unmounts', async () => {
    const mp = await freshMountpoint('foreground');
    const child = spawn(process.execPath, [LAYERFS_BIN, 'mount', '--foreground', '--run-dir', runDir, '--lower', lower, mp], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor(() => isMounted(mp), 'the foreground mount');
    child.kill('SIGINT');
    assert.equal(await exited, 0);
    assert.ok(!isMounted(mp));
  });

  it('--busy-poll 0 (no polling) is accepted and the mount serves', async () => {
    const mp = await freshMountpoint('busy-poll-off');
    assert.equal((await layerfs(['mount', '--run-dir', runDir, '--busy-poll', '0', '--lower', lower, mp])).code, 0);
    try {
      assert.deepEqual((await readdir(mp)).sort(), (await readdir(lower)).sort());
    } finally {
      assert.equal((await layerfs(['umount', '--run-dir', runDir, mp])).code, 0);
    }
    assert.ok(!isMounted(mp));
  });

  describe('mount errors: clear message, non-zero exit, nothing mounted', () => {
    const expectFailure = async (args: string[], pattern: RegExp, mp?: string, env?: NodeJS.ProcessEnv) => {
      const r = await layerfs(args, env);
      assert.notEqual(r.code, 0, `expected failure, got success: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      if (mp !== undefined) assert.ok(!isMounted(mp), 'nothing mounted');
    };

    it('a missing lower directory', async () => {
      const mp = await freshMountpoint('err-lower');
      await expectFailure(['mount', '--run-dir', runDir, '--lower', join(root, 'nope'), mp], /lower directory .*nope does not exist/, mp);
    });
    it('a missing upper directory', async () => {
      const mp = await freshMountpoint('err-upper');
      await expectFailure(['mount', '--run-dir', runDir, '--lower', lower, '--upper', join(root, 'nope'), mp], /upper directory .* does not exist/, mp);
    });
    it('a missing mountpoint', async () => {
      await expectFailure(['mount', '--run-dir', runDir, '--lower', lower, join(root, 'no-mp')], /mountpoint .* does not exist/);
    });
    it('a mountpoint that is not empty', async () => {
      const mp = await freshMountpoint('err-nonempty');
      await writeFile(join(mp, 'x'), 'x');
      await expectFailure(['mount', '--run-dir', runDir, '--lower', lower, mp], /not empty/, undefined);
    });
    it('a busy mountpoint', async () => {
      const mp = await freshMountpoint('err-busy');
      assert.equal((await layerfs(['mount', '--run-dir', runDir, '--lower', lower, mp])).code, 0);
      try {
        await expectFailure(['mount', '--run-dir', runDir, '--lower', lower, mp], /busy/);
      } finally {
        await layerfs(['umount', '--run-dir', runDir, mp]);
      }
    });
    it('a layer inside the mountpoint', async () => {
      const mp = await freshMountpoint('err-overlap');
      await expectFailure(['mount', '--run-dir', runDir, '--lower', lower, root], /overlap|not empty/);
      assert.ok(!isMounted(mp));
    });
    it('an argument error found after the daemon was started leaves no daemon behind', async () => {
      const mp = await freshMountpoint('err-late-args');
      const before = daemonPids();
      // `mount` without --foreground starts its daemon before the arguments are parsed.
      await expectFailure(['mount', '--run-dir', runDir, '--lower', lower, mp, '--bogus-option'], /bogus-option/, mp);
      await noNewDaemons(before);
    });
    it('an unknown image leaves no daemon behind', async () => {
      const mp = await freshMountpoint('err-unknown-image');
      const before = daemonPids();
      await expectFailure(['mount', '--run-dir', runDir, '--root', join(root, 'empty-store'), 'oci:' + join(root, 'no-such-layout'), mp], /no-such-layout/, mp);
      await noNewDaemons(before);
    });
    it('a failure inside the daemon is reported by the command, and the daemon exits', async () => {
      const before = daemonPids();
      await expectFailure(['mount', '--run-dir', runDir, '--lower', join(root, 'nope'), await freshMountpoint('err-daemon')], /lower directory .*nope does not exist/);
      await noNewDaemons(before);
    });
    it('a --busy-poll that is not a whole number of microseconds up to a second', async () => {
      const before = daemonPids();
      for (const value of ['soon', '-1', '1.5', '2000000']) {
        const mp = await freshMountpoint(`err-busy-poll-${value}`);
        const r = await layerfs(['mount', '--run-dir', runDir, '--busy-poll', value, '--lower', lower, mp]);
        assert.equal(r.code, 2, `--busy-poll ${value}: ${r.stderr}`);
        assert.equal(r.stderr, 'layerfs: --busy-poll must be a whole number of microseconds from 0 to 1000000\n');
        assert.ok(!isMounted(mp));
      }
      await noNewDaemons(before);
    });
    it('missing arguments', async () => {
      await expectFailure(['mount', join(root, 'x')], /lower/);
    });
    it('unmounting something that is not mounted', async () => {
      await expectFailure(['umount', '--run-dir', runDir, root], /is not mounted/);
    });
    it('without root privileges', async () => {
      const mp = await freshMountpoint('err-nonroot');
      const r = await exec('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, LAYERFS_BIN,
        'mount', '--run-dir', join(root, 'run-nobody'), '--foreground', '--lower', lower, mp]).catch((e: Result) => e);
      assert.notEqual((r as { code?: number }).code ?? 0, 0);
      assert.match((r as { stderr: string }).stderr, /needs root/);
      assert.ok(!isMounted(mp));
    });
    it('/dev/fuse unavailable', async () => {
      const mp = await freshMountpoint('err-devfuse');
      const fake = join(root, 'not-fuse');
      await writeFile(fake, '');
      // In a private mount namespace, something that is not the FUSE device sits at /dev/fuse.
      const script = `mount --bind ${fake} /dev/fuse && exec ${process.execPath} ${LAYERFS_BIN} mount --foreground --run-dir ${runDir} --lower ${lower} ${mp}`;
      const r = await exec('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script]).catch((e: Result) => e);
      assert.notEqual((r as { code?: number }).code ?? 0, 0);
      assert.match((r as { stderr: string }).stderr, /\/dev\/fuse/);
    });
  });
});
