// Proves each fix of patches/fuse-native+2.2.6.patch on real FUSE mounts.
//
// A process serving a FUSE mount must never access that mount itself, so every mount is
// served by a child process (fixtures/memfs-server.mjs, an in-memory filesystem on the
// patched fuse-native); this process only does filesystem calls and asks the child, over
// IPC, what its handlers received. Every wait is bounded; all mounts are removed in
// `after` hooks, also on failure.
//
// Run: node --import tsx --test test/fuse/fuse-native-patch.test.ts   (needs root + /dev/fuse)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { constants as fsc, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import { release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash, randomBytes } from 'node:crypto';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const fixture = join(here, 'fixtures', 'memfs-server.mjs');
const fuseNativeDir = join(root, 'node_modules', 'fuse-native');
const requireFromRoot = createRequire(join(root, 'package.json'));

const UTIME_NOW = 2 ** 30 - 1;
const UTIME_OMIT = 2 ** 30 - 2;
const HI_INO = 0x1_0000_0005;
const STEP_TIMEOUT = 15_000;

// ------------------------------------------------------------------------------ helpers

function kernelHasPassthrough(): boolean {
  const [major = 0, minor = 0] = release().split('.').map(Number);
  return major > 6 || (major === 6 && minor >= 9);
}

function patternByte(i: number): number {
  return (i * 131 + (i >>> 9) * 7 + 13) & 0xff; // same as the fixture
}
function pattern(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = patternByte(i);
  return b;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  pid: number | undefined;
}

/** Runs a command (no shell) with a hard timeout; never rejects on a non-zero exit. */
function run(cmd: string, args: string[], opts: { cwd?: string; timeout?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      cmd,
      args,
      { cwd: opts.cwd, timeout: opts.timeout ?? STEP_TIMEOUT, env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' }, encoding: 'utf8', maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err && (err as NodeJS.ErrnoException & { killed?: boolean }).killed) {
          return reject(new Error(`${cmd} ${args.join(' ')} killed after timeout`));
        }
        if (err && typeof (err as { code?: unknown }).code === 'string') return reject(err);
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolvePromise({ code, stdout, stderr, pid: child.pid });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

async function runOk(cmd: string, args: string[], opts: { cwd?: string; timeout?: number } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

function python(code: string, ...args: string[]): Promise<string> {
  return runOk('python3', ['-c', code, ...args]);
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

function isMounted(mnt: string): boolean {
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((line) => unescapeMount(line.split(' ')[1] ?? '') === mnt);
}

function forceUnmount(mnt: string): Promise<void> {
  if (!isMounted(mnt)) return Promise.resolve();
  return new Promise((res) => {
    execFile('umount', ['-l', mnt], { timeout: 10_000 }, () => {
      if (!isMounted(mnt)) return res();
      execFile('fusermount3', ['-uz', mnt], { timeout: 10_000 }, () => res());
    });
  });
}

type LogEntry = Record<string, unknown> & { op: string };

interface Server {
  mnt: string;
  child: ChildProcess;
  log(): Promise<LogEntry[]>;
  clearLog(): Promise<void>;
  request(cmd: string, extra?: Record<string, unknown>): Promise<unknown>;
  sessionEnded: Promise<void>;
  stop(): Promise<void>;
}

interface MountFailure {
  mountError: { message: string; code?: string; errno?: number };
}

const tmpRoot = mkdtempSync(join(tmpdir(), 'layerfs-fuse-native-'));
const servers: Server[] = [];
const mountpoints: string[] = [];

function newMountpoint(name: string): string {
  const mnt = join(tmpRoot, name);
  mkdirSync(mnt, { recursive: true });
  mountpoints.push(mnt);
  return mnt;
}

/** Forks the fixture and waits until it has mounted (or reports a mount error). */
/** extra.backing: memfs path -> host file served with passthrough (see the fixture). */
async function startServer(
  name: string,
  opts: Record<string, unknown>,
  extra: { mnt?: string; backing?: Record<string, string>; bigDir?: { path: string; count: number }; hardlinked?: boolean; renewOnWrite?: string } = {},
): Promise<Server | MountFailure> {
  const mnt = extra.mnt ?? newMountpoint(name);
  if (extra.mnt) mountpoints.push(mnt);
  const child = fork(fixture, [mnt, JSON.stringify({ opts, backing: extra.backing, bigDir: extra.bigDir, hardlinked: extra.hardlinked, renewOnWrite: extra.renewOnWrite })], {
    cwd: tmpRoot,
    execArgv: [],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let nextId = 0;
  const pending = new Map<number, (data: unknown) => void>();
  let endSession!: () => void;
  const sessionEnded = new Promise<void>((r) => (endSession = r));
  const started = new Promise<Server | MountFailure>((resolveStart, rejectStart) => {
    child.on('message', (msg: { type: string; id?: number; data?: unknown; message?: string; code?: string; errno?: number }) => {
      if (msg.type === 'reply' && msg.id !== undefined) {
        pending.get(msg.id)?.(msg.data);
        pending.delete(msg.id);
      } else if (msg.type === 'ready') {
        resolveStart(server);
      } else if (msg.type === 'mountError') {
        resolveStart({ mountError: { message: msg.message ?? '', code: msg.code, errno: msg.errno } });
      } else if (msg.type === 'sessionEnd') {
        endSession();
      }
    });
    child.on('exit', (code, signal) => {
      rejectStart(new Error(`server ${name} exited early (${code ?? signal}): ${stderr}`));
      endSession();
    });
  });
  const request = (cmd: string, more: Record<string, unknown> = {}) =>
    withTimeout(
      new Promise<unknown>((r) => {
        const id = ++nextId;
        pending.set(id, r);
        child.send({ cmd, id, ...more });
      }),
      STEP_TIMEOUT,
      `server request ${cmd}`,
    );
  const server: Server = {
    mnt,
    child,
    request,
    log: async () => (await request('log')) as LogEntry[],
    clearLog: async () => void (await request('clearLog')),
    sessionEnded,
    stop: () => stopServer(server),
  };
  servers.push(server);
  return withTimeout(started, STEP_TIMEOUT, `mount of ${name}`);
}

async function mountOrFail(name: string, opts: Record<string, unknown>, backing?: Record<string, string>): Promise<Server> {
  const s = await startServer(name, opts, { backing });
  if ('mountError' in s) throw new Error(`mount failed: ${s.mountError.message}`);
  assert.ok(isMounted(s.mnt), `${s.mnt} should be mounted`);
  return s;
}

async function stopServer(s: Server): Promise<void> {
  const { child, mnt } = s;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    await withTimeout(exited, 5_000, 'server exit').catch(() => {
      child.kill('SIGKILL');
    });
  }
  await forceUnmount(mnt);
}

after(async () => {
  for (const s of servers) await stopServer(s).catch(() => undefined);
  for (const m of mountpoints) await forceUnmount(m).catch(() => undefined);
  const left = mountpoints.filter(isMounted);
  if (left.length === 0) rmSync(tmpRoot, { recursive: true, force: true });
  assert.deepEqual(left, [], 'mounts left behind');
});

const lastOf = (log: LogEntry[], op: string, path?: string) =>
  [...log].reverse().find((e) => e.op === op && (path === undefined || e.path === path));

// ------------------------------------------------------------------------------ build

describe('build and installation', () => {
  test('the binding links Debian\'s libfuse.so.2, not the bundled library', async () => {
    const addon = join(fuseNativeDir, 'build', 'Release', 'fuse.node');
    assert.ok(existsSync(addon), `${addon} exists`);
    const ldd = await runOk('ldd', [addon]);
    assert.match(ldd, /libfuse\.so\.2 => \/(usr\/)?lib\/x86_64-linux-gnu\/libfuse\.so\.2/);
    assert.doesNotMatch(ldd, /fuse-shared-library|node_modules/);
    assert.ok(!existsSync(join(fuseNativeDir, 'build', 'Release', 'libfuse.so')), 'bundled libfuse.so not copied');
    const gyp = readFileSync(join(fuseNativeDir, 'binding.gyp'), 'utf8');
    assert.match(gyp, /pkg-config --libs fuse/);
    assert.doesNotMatch(gyp, /require\('fuse-shared-library/);
  });

  test('patch script is idempotent (second run applies nothing and does not rebuild)', async () => {
    const script = join(root, 'scripts', 'native', 'patch-fuse-native.mjs');
    const out = await runOk(process.execPath, [script], { timeout: 300_000 });
    assert.match(out, /patch already applied/);
    assert.match(out, /up to date/);
    const check = await run(process.execPath, [script, '--check']);
    assert.equal(check.code, 0, check.stdout + check.stderr);
  });

  test('the patched patch file applies with patch -p1 to pristine sources', async () => {
    const orig = join(fuseNativeDir, '.layerfs-orig');
    const dir = join(tmpRoot, 'pristine');
    mkdirSync(dir);
    for (const f of ['binding.gyp', 'fuse-native.c', 'index.js']) {
      await fsp.copyFile(join(orig, f), join(dir, f));
    }
    const patchFile = join(root, 'patches', 'fuse-native+2.2.6.patch');
    await runOk('patch', ['-p1', '--quiet', '-i', patchFile], { cwd: dir });
    for (const f of ['binding.gyp', 'fuse-native.c', 'index.js']) {
      assert.equal(readFileSync(join(dir, f), 'utf8'), readFileSync(join(fuseNativeDir, f), 'utf8'), f);
    }
  });
});

// ------------------------------------------------------------------------------ JS-only

describe('options and stat encoding (no mount)', () => {
  const Fuse = requireFromRoot('fuse-native');

  test('opts.options are appended verbatim; 0 values are kept; userId is one entry; umask is octal', () => {
    const f = new Fuse(join(tmpRoot, 'never-mounted'), {}, {
      options: ['big_writes', 'max_write=131072'],
      useIno: true,
      hardRemove: true,
      attrTimeout: 0,
      entryTimeout: 0,
      negativeTimeout: 0,
      uid: 0,
      gid: 0,
      userId: 0,
      umask: 0o022,
    });
    const opts: string[] = f._fuseOptions().split(',');
    for (const o of ['big_writes', 'max_write=131072', 'use_ino', 'hard_remove', 'attr_timeout=0', 'entry_timeout=0',
      'negative_timeout=0', 'uid=0', 'gid=0', 'user_id=0', 'umask=022']) {
      assert.ok(opts.includes(o), `${o} in ${opts.join(',')}`);
    }
    assert.ok(!opts.includes('user_id='), 'no dangling user_id= entry');
  });

  test('options containing "," are rejected with an Error', () => {
    assert.throws(() => new Fuse(join(tmpRoot, 'never'), {}, { options: ['ro,allow_other'] }), /contains ','/);
    assert.throws(() => new Fuse(join(tmpRoot, 'never'), {}, { fsname: 'a,b' }), /contains ','/);
    assert.throws(() => new Fuse(join(tmpRoot, 'never'), {}, { options: 'ro' }), /array/);
  });

  test('fuse-shared-library is not loaded and configuration helpers are no-ops', async () => {
    const configured = await new Promise((r) => Fuse.isConfigured((_: unknown, yes: boolean) => r(yes)));
    assert.equal(configured, true);
    await new Promise((r) => Fuse.configure(r));
    assert.ok(!Object.keys(requireFromRoot.cache).some((k) => k.includes('fuse-shared-library')));
  });

  test('constants are the <sys/stat.h> values', () => {
    assert.equal(Fuse.UTIME_NOW, UTIME_NOW);
    assert.equal(Fuse.UTIME_OMIT, UTIME_OMIT);
    assert.equal(typeof Fuse.OPEN_KEEP_CACHE, 'number');
    assert.equal(typeof Fuse.OPEN_DIRECT_IO, 'number');
    assert.notEqual(Fuse.OPEN_KEEP_CACHE & Fuse.OPEN_DIRECT_IO, Fuse.OPEN_KEEP_CACHE);
  });

  test('PATCH_VERSION 8: index.js and the binding agree (stale builds are refused)', () => {
    assert.equal(Fuse.PATCH_VERSION, 8);
    const binding = requireFromRoot(join(fuseNativeDir, 'build', 'Release', 'fuse.node'));
    assert.equal(binding.layerfs_patch_version, 8);
    assert.equal(typeof binding.fuse_native_invalidate_kernel_listings, 'function');
    assert.equal(typeof binding.fuse_native_invalidate_links, 'function');
    assert.equal(typeof binding.fuse_native_renew_node, 'function');
    assert.equal(typeof binding.fuse_native_invalidate_listings, 'function');
    assert.equal(typeof binding.fuse_native_backing_open, 'function');
    assert.equal(typeof binding.fuse_native_backing_close, 'function');
  });

  test('invalidateKernelListings: a callback that is not a function throws; unmounted gives ENOTCONN in the callback', async () => {
    const f = new Fuse(join(tmpRoot, 'never-mounted-inval'), {});
    assert.throws(() => f.invalidateKernelListings('not a function'), TypeError);
    f.invalidateKernelListings(); // no callback: fine
    const err = await new Promise<NodeJS.ErrnoException | null>((r) => f.invalidateKernelListings(r));
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'ENOTCONN');
    assert.equal(err.errno, -107);
  });

  test('encodeStat: 64-bit ino/size, signed seconds, nanoseconds, bigint stats', () => {
    const a: Uint32Array = Fuse.encodeStat({ mode: 0o100644, ino: HI_INO, size: 2 ** 40 + 3, mtime: { sec: -2, nsec: 5 } });
    assert.deepEqual([a[9], a[10]], [5, 1]);
    assert.deepEqual([a[3], a[4]], [3, 256]);
    assert.deepEqual([a[20], a[21], a[22]], [0xfffffffe, 0xffffffff, 5]);
    const b: Uint32Array = Fuse.encodeStat({ mode: 0o100644n as never, ino: 0xffff_ffff_ffff_fff0n, mtimeNs: -1n });
    assert.deepEqual([b[9], b[10]], [0xfffffff0, 0xffffffff]);
    assert.deepEqual([b[20], b[21], b[22]], [0xffffffff, 0xffffffff, 999_999_999]);
    const c: Uint32Array = Fuse.encodeStat({ mode: 0o100644, mtime: new Date(1500), nlink: undefined });
    assert.deepEqual([c[20], c[21], c[22], c[7]], [1, 0, 500_000_000, 1]);
  });
});

// ------------------------------------------------------------------------------ main mount

describe('mounted memfs: use_ino, big_writes, max_write, attr/entry timeout 0, timeout off', () => {
  let s: Server;
  let m: string;
  before(async () => {
    s = await mountOrFail('main', {
      useIno: true,
      attrTimeout: 0,
      entryTimeout: 0,
      options: ['big_writes', 'max_write=131072'],
    });
    m = s.mnt;
  });
  after(() => s?.stop());

  test('#1 utimens receives distinct atime/mtime with nanoseconds', async () => {
    await s.clearLog();
    const p = join(m, 'hello');
    await python('import os,sys; os.utime(sys.argv[1], ns=(1234567890123456789, 1300000000987654321))', p);
    const e = lastOf(await s.log(), 'utimens', '/hello');
    assert.ok(e, 'utimens called');
    assert.deepEqual(e.atime, { sec: 1234567890, nsec: 123456789 });
    assert.deepEqual(e.mtime, { sec: 1300000000, nsec: 987654321 });
    const shown = await runOk('stat', ['-c', '%x|%y', p]);
    assert.equal(shown.trim(), '2009-02-13 23:31:30.123456789 +0000|2011-03-13 07:06:40.987654321 +0000');
  });

  test('#1 touch -m passes atime UTIME_OMIT / mtime UTIME_NOW; touch -a the reverse; -d keeps ns', async () => {
    const p = join(m, 'hello');
    await s.clearLog();
    await runOk('touch', ['-m', p]);
    type Times = { atime: { nsec: number }; mtime: { nsec: number } };
    let e = lastOf(await s.log(), 'utimens', '/hello') as unknown as Times;
    assert.equal(e.atime.nsec, UTIME_OMIT);
    assert.equal(e.mtime.nsec, UTIME_NOW);
    await s.clearLog();
    await runOk('touch', ['-a', p]);
    e = lastOf(await s.log(), 'utimens', '/hello') as unknown as Times;
    assert.equal(e.atime.nsec, UTIME_NOW);
    assert.equal(e.mtime.nsec, UTIME_OMIT);
    await s.clearLog();
    await runOk('touch', ['-m', '-d', '2017-07-14 02:40:00.000000042', p]);
    const f = lastOf(await s.log(), 'utimens', '/hello');
    assert.deepEqual(f?.mtime, { sec: 1500000000, nsec: 42 });
    assert.equal((f?.atime as { nsec: number }).nsec, UTIME_OMIT);
  });

  test('#2 stat shows a 64-bit inode, 64-bit size and nanosecond mtime (number, bigint and Date stats)', async () => {
    const out = await runOk('stat', ['-c', '%n|%i|%s|%y',
      join(m, 'hi-ino'), join(m, 'huge'), join(m, 'bigint-stat'), join(m, 'date-stat')]);
    const rows = out.trim().split('\n').map((l) => l.split('|').slice(1));
    assert.deepEqual(rows[0], [String(HI_INO), '5', '2023-11-14 22:13:20.123456789 +0000']);
    assert.deepEqual(rows[1]?.slice(1, 2), [String(5 * 2 ** 30)]);
    assert.deepEqual(rows[2], ['4294967303', '3', '2023-11-14 22:13:20.987654321 +0000']);
    assert.deepEqual(rows[3]?.slice(2), ['2023-11-14 22:13:20.456000000 +0000']);
    const st = await fsp.stat(join(m, 'hi-ino'), { bigint: true });
    assert.equal(st.ino, BigInt(HI_INO));
    assert.equal(st.mtimeNs, 1700000000123456789n);
  });

  test('#2/#12 readdir passes the 64-bit d_ino and the d_type from mode', async () => {
    const out = await python(
      'import os,sys,json; print(json.dumps({e.name: [e.inode(), e.is_dir(follow_symlinks=False), e.is_symlink()] for e in os.scandir(sys.argv[1])}))',
      m,
    );
    const entries = JSON.parse(out) as Record<string, [number, boolean, boolean]>;
    assert.deepEqual(entries['hi-ino'], [HI_INO, false, false]);
    assert.deepEqual(entries['bigint-stat'], [0x1_0000_0007, false, false]);
    assert.equal(entries['dir']?.[1], true);
    assert.equal(entries['link']?.[2], true);
  });

  test('#3 options: big_writes + max_write=131072 give write requests > 4096 bytes', async () => {
    await s.clearLog();
    await runOk('dd', ['if=/dev/zero', `of=${join(m, 'bigwrite')}`, 'bs=1M', 'count=1']);
    const writes = (await s.log()).filter((e) => e.op === 'write' && e.path === '/bigwrite');
    const max = Math.max(...writes.map((e) => e.len as number));
    assert.ok(max > 4096, `max write ${max}`);
    assert.equal(max, 131072);
    assert.equal(writes.reduce((n, e) => n + (e.len as number), 0), 1 << 20);
  });

  test('#3 attr_timeout=0 / entry_timeout=0 are passed (not dropped): every stat reaches getattr', async () => {
    await s.clearLog();
    for (let i = 0; i < 3; i++) await runOk('stat', [join(m, 'hello')]);
    const n = (await s.log()).filter((e) => e.op === 'getattr' && e.path === '/hello').length;
    assert.ok(n >= 3, `getattr calls: ${n}`);
  });

  test('#4 fgetattr gets the fd; a handle of 0 is stored and passed back (ftruncate, read, release)', async () => {
    await s.clearLog();
    const fh = await fsp.open(join(m, 'zero-fh'), 'r+');
    try {
      const buf = Buffer.alloc(64);
      const { bytesRead } = await fh.read(buf, 0, 64, 0);
      assert.equal(buf.subarray(0, bytesRead).toString(), 'fh zero\n');
      await fh.truncate(3);
    } finally {
      await fh.close();
    }
    // The kernel sends RELEASE after close() has returned.
    const log = await withTimeout(waitForLog(s, (l) => lastOf(l, 'release', '/zero-fh') !== undefined), STEP_TIMEOUT, 'release of /zero-fh');
    assert.equal(lastOf(log, 'open', '/zero-fh') !== undefined, true);
    assert.equal(lastOf(log, 'read', '/zero-fh')?.fd, 0);
    assert.deepEqual(lastOf(log, 'ftruncate', '/zero-fh'), { op: 'ftruncate', path: '/zero-fh', fd: 0, size: 3 });
    assert.equal(lastOf(log, 'fgetattr', '/zero-fh')?.fd, 0);
    assert.equal(lastOf(log, 'release', '/zero-fh')?.fd, 0);
  });

  test('#5 create receives the open flags; caller context is available', async () => {
    await s.clearLog();
    const fh = await fsp.open(join(m, 'created'), fsc.O_CREAT | fsc.O_WRONLY | fsc.O_APPEND | fsc.O_EXCL, 0o640);
    await fh.close();
    const e = lastOf(await s.log(), 'create', '/created');
    assert.ok(e, 'create called');
    const flags = e.flags as number;
    assert.equal(flags & 3 /* O_ACCMODE */, fsc.O_WRONLY);
    assert.equal(flags & fsc.O_APPEND, fsc.O_APPEND);
    assert.equal((e.mode as number) & 0o7777, 0o640);
    assert.equal((e.mode as number) & fsc.S_IFMT, fsc.S_IFREG);
    // fgetattr after create (libfuse looks the new file up through its handle)
    assert.ok((await s.log()).some((x) => x.op === 'fgetattr' && x.path === '/created'));

    await s.clearLog();
    const r = await run('touch', [join(m, 'ctx-file')]);
    assert.equal(r.code, 0, r.stderr);
    const c = lastOf(await s.log(), 'create', '/ctx-file')?.ctx as { uid: number; gid: number; pid: number };
    assert.deepEqual({ uid: c.uid, gid: c.gid, pid: c.pid }, { uid: 0, gid: 0, pid: r.pid });
  });

  test('#6 OPEN_KEEP_CACHE keeps the page cache across opens; without it every open re-reads', async () => {
    const reads = async (path: string) => (await s.log()).filter((e) => e.op === 'read' && e.path === path).length;
    await s.clearLog();
    const expected = pattern(64 * 1024);
    assert.ok((await fsp.readFile(join(m, 'kc'))).equals(expected));
    const kc1 = await reads('/kc');
    assert.ok((await fsp.readFile(join(m, 'kc'))).equals(expected));
    const kc2 = await reads('/kc');
    assert.ok(kc1 > 0);
    assert.equal(kc2, kc1, 'second read served from the page cache');

    assert.ok((await fsp.readFile(join(m, 'nokc'))).equals(expected));
    const n1 = await reads('/nokc');
    assert.ok((await fsp.readFile(join(m, 'nokc'))).equals(expected));
    const n2 = await reads('/nokc');
    assert.ok(n2 > n1, `without keep_cache the second open reads again (${n1} -> ${n2})`);
  });

  test('#6 OPEN_DIRECT_IO: reads bypass the page cache and ignore the (0) file size', async () => {
    assert.equal((await runOk('stat', ['-c', '%s', join(m, 'dio')])).trim(), '0');
    assert.equal((await fsp.readFile(join(m, 'dio'))).toString(), 'direct io data\n');
  });

  test('#7 xattrs: binary values round-trip, size query returns the length, small buffers get ERANGE', async () => {
    const p = join(m, 'xattr');
    await s.clearLog();
    await runOk('setfattr', ['-n', 'user.bin', '-v', '0x00ff7f80ff00', p]);
    const set = lastOf(await s.log(), 'setxattr', '/xattr');
    assert.deepEqual({ value: set?.value, isBuffer: set?.isBuffer }, { value: '00ff7f80ff00', isBuffer: true });
    const got = await runOk('getfattr', ['--absolute-names', '-e', 'hex', '-n', 'user.bin', p]);
    assert.match(got, /^user\.bin=0x00ff7f80ff00$/m);
    const big = randomBytes(3000);
    await python('import os,sys; os.setxattr(sys.argv[1], "user.big", bytes.fromhex(sys.argv[2]))', p, big.toString('hex'));
    const bigBack = await python('import os,sys; print(os.getxattr(sys.argv[1], "user.big").hex())', p);
    assert.equal(bigBack.trim(), big.toString('hex'));

    const probe = `
import ctypes, ctypes.util, json, os, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
p = sys.argv[1].encode()
def get(name, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = libc.getxattr(p, name, buf if size else None, ctypes.c_size_t(size))
    return [n, ctypes.get_errno() if n < 0 else 0, buf.raw[:n].hex() if n > 0 and size else ""]
def lst(size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = libc.listxattr(p, buf if size else None, ctypes.c_size_t(size))
    return [n, ctypes.get_errno() if n < 0 else 0, buf.raw[:n].hex() if n > 0 and size else ""]
print(json.dumps({"query": get(b"user.bin", 0), "small": get(b"user.bin", 3), "exact": get(b"user.bin", 6),
  "lquery": lst(0), "lsmall": lst(3), "lfull": lst(256)}))
`;
    const r = JSON.parse(await python(probe, p)) as Record<string, [number, number, string]>;
    assert.deepEqual(r.query, [6, 0, '']);
    assert.deepEqual(r.small?.slice(0, 2), [-1, 34]); // ERANGE
    assert.deepEqual(r.exact, [6, 0, '00ff7f80ff00']);
    const names = Buffer.from('user.bin\0user.big\0');
    assert.deepEqual(r.lquery, [names.length, 0, '']);
    assert.deepEqual(r.lsmall?.slice(0, 2), [-1, 34]);
    assert.deepEqual(r.lfull, [names.length, 0, names.toString('hex')]);
  });

  test('#8 statfs fields are 64-bit', async () => {
    const out = await runOk('stat', ['-f', '-c', '%s %S %b %f %a %c %d', m]);
    assert.equal(out.trim(), `4096 4096 ${2 ** 33 + 7} ${2 ** 32 + 1} ${2 ** 32 + 2} ${2 ** 32 + 3} ${2 ** 32 + 4}`);
  });

  test('#9 with the timeout disabled (default) a 2 s handler succeeds', async () => {
    const t0 = Date.now();
    const out = await runOk('stat', ['-c', '%s', join(m, 'slow')], { timeout: 10_000 });
    assert.equal(out.trim(), '5');
    assert.ok(Date.now() - t0 >= 1900, 'handler really took ~2 s');
  });

  test('#10 4 MiB read and write through the mount are byte-exact', async () => {
    const data = await withTimeout(fsp.readFile(join(m, 'big')), STEP_TIMEOUT, 'read /big');
    assert.equal(data.length, 4 * 1024 * 1024);
    assert.ok(data.equals(pattern(4 * 1024 * 1024)), 'content of /big');
    const out = randomBytes(4 * 1024 * 1024);
    await withTimeout(fsp.writeFile(join(m, 'written'), out), STEP_TIMEOUT, 'write');
    const stored = Buffer.from((await s.request('content', { path: '/written' })) as string, 'base64');
    assert.ok(stored.equals(out), 'server received the exact bytes');
    const back = await run('sha256sum', [join(m, 'written')]);
    assert.equal(back.stdout.split(' ')[0], createHash('sha256').update(out).digest('hex'));
  });

  test('a synchronously throwing handler answers EIO and the server keeps serving', async () => {
    await s.clearLog();
    const r = await run('stat', [join(m, 'throws')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Input\/output error/);
    assert.ok((await s.log()).some((e) => e.op === 'handlerError' && e.name === 'getattr'));
    assert.equal((await runOk('cat', [join(m, 'hello')])).length > 0, true);
  });

  test('libfuse 2.9 without hard_remove: unlinking an open file renames it to .fuse_hidden*, unlinks on release', async () => {
    await s.clearLog();
    const fh = await fsp.open(join(m, 'victim'), 'r');
    await fsp.unlink(join(m, 'victim'));
    let log = await s.log();
    const rename = lastOf(log, 'rename');
    assert.equal(rename?.src, '/victim');
    assert.match(String(rename?.dest), /^\/\.fuse_hidden[0-9a-f]+$/);
    assert.equal(lastOf(log, 'unlink'), undefined, 'no unlink while open');
    const buf = Buffer.alloc(8192);
    await fh.read(buf, 0, 8192, 0);
    assert.ok(buf.equals(pattern(8192)));
    assert.equal(lastOf(await s.log(), 'read')?.path, rename?.dest, 'reads use the hidden path');
    await fh.close();
    log = await withTimeout(waitForLog(s, (l) => l.some((e) => e.op === 'unlink')), STEP_TIMEOUT, 'unlink of hidden');
    assert.equal(lastOf(log, 'unlink')?.path, rename?.dest);
  });
});

async function waitForLog(s: Server, ok: (log: LogEntry[]) => boolean): Promise<LogEntry[]> {
  for (;;) {
    const log = await s.log();
    if (ok(log)) return log;
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ------------------------------------------------------------------------------ other mounts

describe('mount without options', () => {
  let s: Server;
  before(async () => {
    s = await mountOrFail('plain', {});
  });
  after(() => s?.stop());

  test('#3 control: without big_writes writes arrive in 4096-byte requests; without use_ino st_ino is libfuse\'s', async () => {
    await s.clearLog();
    await runOk('dd', ['if=/dev/zero', `of=${join(s.mnt, 'w')}`, 'bs=1M', 'count=1']);
    const writes = (await s.log()).filter((e) => e.op === 'write');
    assert.equal(Math.max(...writes.map((e) => e.len as number)), 4096);
    const ino = (await runOk('stat', ['-c', '%i', join(s.mnt, 'hi-ino')])).trim();
    assert.notEqual(ino, String(HI_INO));
  });
});

describe('timeout: 500', () => {
  let s: Server;
  before(async () => {
    s = await mountOrFail('timeout', { timeout: 500 });
  });
  after(() => s?.stop());

  test('#9 the per-op timeout mechanism answers ETIMEDOUT', async () => {
    const t0 = Date.now();
    const r = await run('stat', [join(s.mnt, 'slow')], { timeout: 10_000 });
    const took = Date.now() - t0;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Connection timed out/);
    assert.ok(took < 1900, `answered before the handler finished (${took} ms)`);
    // the late callback is ignored; the filesystem keeps working
    await new Promise((res) => setTimeout(res, 1800));
    assert.equal((await runOk('cat', [join(s.mnt, 'hello')])).toString(), 'hello world\n');
  });
});

describe('hard_remove + nullpathOk', () => {
  let s: Server;
  before(async () => {
    s = await mountOrFail('nullpath', { hardRemove: true, nullpathOk: true });
  });
  after(() => s?.stop());

  test('#11 handle ops on an unlinked open file get a null path (no crash) and still work', async () => {
    await s.clearLog();
    const fh = await fsp.open(join(s.mnt, 'victim'), 'r');
    try {
      await fsp.unlink(join(s.mnt, 'victim'));
      const log = await s.log();
      assert.equal(lastOf(log, 'unlink')?.path, '/victim', 'hard_remove unlinks immediately');
      assert.equal(lastOf(log, 'rename'), undefined, 'no .fuse_hidden rename');
      const buf = Buffer.alloc(8192);
      const { bytesRead } = await fh.read(buf, 0, 8192, 0);
      assert.equal(bytesRead, 8192);
      assert.ok(buf.equals(pattern(8192)));
    } finally {
      await fh.close();
    }
    const log = await withTimeout(waitForLog(s, (l) => l.some((e) => e.op === 'release')), STEP_TIMEOUT, 'release');
    const read = lastOf(log, 'read');
    assert.ok(read, 'read reached the server');
    assert.equal(read.path, null);
    assert.equal(lastOf(log, 'release')?.path, null);
  });
});

describe('teardown with a .fuse_hidden file left over', () => {
  test('#11 fuse_destroy unlinks leftover hidden files through the handler (NULL fuse context) without crashing', async () => {
    const s = await mountOrFail('teardown', {});
    const fh = await fsp.open(join(s.mnt, 'victim'), 'r');
    try {
      await fsp.unlink(join(s.mnt, 'victim'));
      const hidden = lastOf(await s.log(), 'rename')?.dest;
      assert.match(String(hidden), /^\/\.fuse_hidden/);
      // umount -f aborts the connection (then fails: busy); the session ends with the
      // file still open, so libfuse's fuse_destroy() unlinks the hidden file itself, with a
      // zeroed fuse context (upstream fuse-native dereferenced NULL there).
      const r = await run('umount', ['-f', s.mnt]);
      assert.notEqual(r.code, 0, 'busy');
      await withTimeout(s.sessionEnded, STEP_TIMEOUT, 'session end after abort');
      const log = await s.log();
      assert.equal(lastOf(log, 'unlink')?.path, hidden);
      assert.equal(lastOf(log, 'release'), undefined, 'no release after the abort');
      assert.equal(s.child.exitCode, null, 'server still alive');
    } finally {
      await fh.close().catch(() => undefined);
      await s.stop();
    }
  });
});

describe('unmount', () => {
  test('#13 unmount works with only fusermount3 on PATH and never goes through a shell', async () => {
    const weird = join(tmpRoot, `weird $(touch pwned) ;'" name`);
    mkdirSync(weird);
    const s = await startServer('weird', {}, { mnt: weird });
    if ('mountError' in s) throw new Error(s.mountError.message);
    try {
      assert.ok(isMounted(weird));
      const bin = join(tmpRoot, 'bin-fusermount3-only');
      mkdirSync(bin);
      symlinkSync('/usr/bin/fusermount3', join(bin, 'fusermount3'));
      const res = (await s.request('unmount', { env: { PATH: bin } })) as { ok?: boolean; error?: string };
      assert.deepEqual(res, { ok: true });
      assert.ok(!isMounted(weird), 'unmounted');
      await withTimeout(s.sessionEnded, STEP_TIMEOUT, 'session end');
      assert.ok(!existsSync(join(tmpRoot, 'pwned')), 'no shell expansion');
    } finally {
      await s.stop();
    }
  });

  test('#13 an external unmount ends the session (onSessionEnd) and the server can exit', async () => {
    const s = await mountOrFail('external', {});
    try {
      await runOk('fusermount3', ['-uz', s.mnt]);
      await withTimeout(s.sessionEnded, STEP_TIMEOUT, 'session end after external unmount');
      assert.ok(!isMounted(s.mnt));
    } finally {
      await s.stop();
    }
  });
});

describe('mount errors', () => {
  test('#14 an option libfuse rejects gives an Error with a message, and no mount is left', async () => {
    const r = await startServer('bad-option', { options: ['definitely_not_an_option'] });
    assert.ok('mountError' in r, 'mount must fail');
    assert.match(r.mountError.message, /fuse_(new|mount) failed .*definitely_not_an_option/);
    assert.match(String(r.mountError.code), /^EFUSE/);
    assert.ok(!isMounted(join(tmpRoot, 'bad-option')));
  });

  test('#14 an invalid option value fails in fuse_mount with a proper Error', async () => {
    const r = await startServer('bad-value', { options: ['max_read=notanumber'] });
    assert.ok('mountError' in r, 'mount must fail');
    assert.match(r.mountError.message, /fuse_mount failed for .*bad-value/);
    assert.equal(r.mountError.code, 'EFUSEMOUNT');
    assert.ok(!isMounted(join(tmpRoot, 'bad-value')));
  });

  test('#14 a missing mountpoint is reported', async () => {
    const missing = join(tmpRoot, 'does', 'not', 'exist');
    const r = await startServer('missing', {}, { mnt: missing });
    assert.ok('mountError' in r);
    assert.match(r.mountError.message, /Mountpoint does not exist/);
  });
});

// ------------------------------------------------------------------------------ trackLinks

describe('trackLinks: the other names of a hardlinked file marked stale by inode number (attr timeout 3600)', () => {
  const names = ['hl-top', 'hl/a', 'hl/b'];
  const nlinks = async (s: Server) => Promise.all([...names, 'hello'].map(async (n) => (await fsp.stat(join(s.mnt, n))).nlink));
  const getattrs = async (s: Server) => (await s.log()).filter((e) => e.op === 'getattr').map((e) => e.path as string).sort();
  const invalidate = async (s: Server, ino: number) => (await s.request('invalidateLinks', { ino })) as { marked?: number; code?: string };
  const serveLinked = async (name: string, opts: Record<string, unknown>) => {
    const s = await startServer(name, { useIno: true, ...opts }, { hardlinked: true });
    if ('mountError' in s) throw new Error(s.mountError.message);
    return s;
  };
  const tracked = { trackLinks: true, entryTimeout: 3600, attrTimeout: 3600 };

  test('every kernel inode last shown with the number and several links is marked, and only those', async () => {
    const s = await serveLinked('links', tracked);
    try {
      assert.deepEqual(await nlinks(s), [2, 2, 2, 1], 'each name is a kernel inode of its own, showing 2 links');
      assert.deepEqual(await s.request('setattr', { path: '/hl-top', nlink: 3 }), { ok: true });
      assert.deepEqual(await nlinks(s), [2, 2, 2, 1], 'cached until told');
      await s.clearLog();
      assert.deepEqual(await invalidate(s, 12345), { marked: 0 }, 'a number no kernel inode shows');
      assert.deepEqual(await invalidate(s, 777), { marked: 3 });
      assert.deepEqual(await nlinks(s), [3, 3, 3, 1]);
      assert.deepEqual(await getattrs(s), ['/hl-top', '/hl/a', '/hl/b'], 'asked again for the three names alone');
      // One link left: those inodes are still kept (shown with several links before), so the
      // drop to one shows too; a later change could only come from link(), whose source is
      // marked by the binding from the LINK request.
      await s.request('setattr', { path: '/hl-top', nlink: 1 });
      assert.deepEqual(await invalidate(s, 777), { marked: 3 });
      assert.deepEqual(await nlinks(s), [1, 1, 1, 1]);
    } finally {
      await s.stop();
    }
  });

  test('after the kernel forgets the inodes nothing is marked; looked up again, they are marked again', async () => {
    const s = await serveLinked('links-forget', tracked);
    try {
      assert.deepEqual(await nlinks(s), [2, 2, 2, 1]);
      await fsp.writeFile('/proc/sys/vm/drop_caches', '2'); // dentries and inodes: FORGETs follow
      const forgets = async () => {
        const c = (await s.request('requestCounts')) as Record<string, number>;
        return (c.forget ?? 0) + (c.batch_forget ?? 0);
      };
      for (let i = 0; i < 100 && (await forgets()) === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok((await forgets()) > 0, 'the kernel sent FORGETs');
      assert.deepEqual(await invalidate(s, 777), { marked: 0 }, 'nothing left to mark');
      await s.request('setattr', { path: '/hl-top', nlink: 4 });
      assert.deepEqual(await nlinks(s), [4, 4, 4, 1], 'looked up afresh');
      await s.request('setattr', { path: '/hl-top', nlink: 5 });
      assert.deepEqual(await invalidate(s, 777), { marked: 3 });
      assert.deepEqual(await nlinks(s), [5, 5, 5, 1]);
    } finally {
      await s.stop();
    }
  });

  test('without trackLinks it is ENOSYS; unmounted, ENOTCONN; a bad number is a TypeError', async () => {
    const s = await serveLinked('links-off', { cacheListings: true });
    try {
      assert.deepEqual(await nlinks(s), [2, 2, 2, 1]);
      assert.deepEqual(await invalidate(s, 777), { code: 'ENOSYS', name: 'Error' });
    } finally {
      await s.stop();
    }
    const Fuse = requireFromRoot('fuse-native');
    const f = new Fuse(join(tmpRoot, 'never-mounted'), {}, { trackLinks: true });
    for (const bad of [0, -1, 1.5, Number.MAX_SAFE_INTEGER + 2, '777', undefined]) {
      assert.throws(() => f.invalidateLinks(bad as number), TypeError, `ino ${String(bad)}`);
    }
    assert.throws(() => f.invalidateLinks(777), (err: NodeJS.ErrnoException) => err.code === 'ENOTCONN');
  });
});

// ------------------------------------------------------------------------------ renewNode

describe('renewNode: a second kernel inode for a name, reached by a retried open', () => {
  type Logged = { op: string; path?: string; flags?: number; node?: number; renewed?: boolean; code?: string };

  test('an open answered ESTALE after renewNode is retried on a new kernel inode; the old descriptor keeps the old one', async () => {
    const s = await startServer('renew', { trackLinks: true, useIno: true, entryTimeout: 3600, attrTimeout: 3600 }, { renewOnWrite: '/hello' });
    if ('mountError' in s) throw new Error(s.mountError.message);
    try {
      const path = join(s.mnt, 'hello');
      const old = await fsp.open(path, 'r');
      try {
        const writer = await fsp.open(path, 'r+');
        await writer.close();
        await old.read(Buffer.alloc(4), 0, 4, 0);
        const log = (await s.log()) as Logged[];
        const opens = log.filter((e) => e.op === 'open' && e.path === '/hello');
        assert.equal(opens.length, 3, JSON.stringify(opens));
        const node = opens[0]!.node!;
        assert.ok(node > 1, `a libfuse node id: ${node}`);
        assert.deepEqual(opens.map((e) => [e.node, e.renewed]), [[node, false], [node, false], [node, true]], 'read open, refused write open, retried write open');
        const read = log.filter((e) => e.op === 'read' && e.path === '/hello').at(-1);
        assert.deepEqual([read?.node, read?.renewed], [node, false], 'the old descriptor reads through the old kernel inode');
        assert.equal((await fsp.readFile(path)).toString(), 'hello world\n');
        const later = ((await s.log()) as Logged[]).filter((e) => e.op === 'open' && e.path === '/hello').at(-1);
        assert.equal(later?.renewed, true, 'a new open finds the new kernel inode');
        const c = (await s.request('requestCounts')) as Record<string, number>;
        assert.ok((c.lookup ?? 0) >= 2, `the path was looked up again: ${JSON.stringify(c)}`);

        assert.deepEqual(await s.request('renewNode', { node }), { code: 'EALREADY', name: 'Error' });
        assert.deepEqual(await s.request('renewNode', { node: 1 }), { code: 'EINVAL', name: 'Error' }, 'the root');
      } finally {
        await old.close();
      }
      // Both kernel inodes evicted: their FORGETs reach libfuse's one node, which keeps serving.
      await fsp.writeFile('/proc/sys/vm/drop_caches', '2');
      await delay(100);
      assert.equal((await fsp.readFile(path)).toString(), 'hello world\n');
      assert.equal(s.child.exitCode, null, 'server alive');
    } finally {
      await s.stop();
    }
  });

  test('unmounted it is ENOTCONN; a bad node id is a TypeError', () => {
    const Fuse = requireFromRoot('fuse-native');
    const f = new Fuse(join(tmpRoot, 'never-mounted-renew'), {});
    for (const bad of [0, -1, 1.5, '7', undefined]) assert.throws(() => f.renewNode(bad as number), TypeError, `node ${String(bad)}`);
    assert.throws(() => f.renewNode(7), (err: NodeJS.ErrnoException) => err.code === 'ENOTCONN');
  });
});

type ListingsReply = { ok?: true; error?: string; code?: string; errno?: number; isError?: boolean };

describe('cacheListings: readdirs answered by the binding until invalidateListings()', () => {
  const readdirs = async (s: Server, path: string) => (await s.log()).filter((e) => e.op === 'readdir' && e.path === path).length;
  const inodes = async (dir: string) => {
    // The inode numbers readdir gave (d_ino), read without a stat (Node's Dirent has none).
    const out = await runOk('python3', ['-c', 'import os, sys\nfor e in os.scandir(sys.argv[1]): print(e.inode(), e.name)', dir]);
    return new Map(out.trim().split('\n').map((line) => line.trim().split(/\s+/)).map(([ino, name]) => [name!, Number(ino)]));
  };

  test('the second listing of a directory does not reach the handler, and is the same', async () => {
    const s = await mountOrFail('listings', { cacheListings: true, useIno: true });
    try {
      const first = await fsp.readdir(s.mnt);
      const firstInodes = await inodes(s.mnt);
      await s.clearLog();
      for (let i = 0; i < 3; i++) assert.deepEqual(await fsp.readdir(s.mnt), first);
      assert.deepEqual(await inodes(s.mnt), firstInodes, 'names and inode numbers as the handler gave them');
      assert.equal(firstInodes.get('hi-ino'), HI_INO, '64-bit inode numbers kept');
      assert.equal(await readdirs(s, '/'), 0, 'served by the binding');
    } finally {
      await s.stop();
    }
  });

  test('a change shows only after invalidateListings(), and then the handler is asked again', async () => {
    const s = await mountOrFail('listings-inval', { cacheListings: true });
    try {
      const before = await fsp.readdir(s.mnt);
      assert.ok(!before.includes('added'));
      assert.deepEqual(await s.request('addFile', { path: '/added', text: 'x' }), { ok: true });
      assert.deepEqual(await fsp.readdir(s.mnt), before, 'the kept listing, until told');
      await s.clearLog();
      assert.deepEqual(await s.request('invalidateListings'), { ok: true });
      assert.ok((await fsp.readdir(s.mnt)).includes('added'), 'listed after invalidateListings()');
      assert.equal(await readdirs(s, '/'), 1, 'asked the handler once');
      await fsp.readdir(s.mnt);
      assert.equal(await readdirs(s, '/'), 1, 'and kept the new listing');
    } finally {
      await s.stop();
    }
  });

  test("a directory's attributes are kept too (until invalidateListings()), a file's never", async () => {
    // Timeouts 0: the kernel asks for attributes on every stat, so what answers is the binding.
    const s = await mountOrFail('listings-attrs', { cacheListings: true, attrTimeout: 0, entryTimeout: 0 });
    try {
      const getattrs = async (path: string) => (await s.log()).filter((e) => e.op === 'getattr' && e.path === path).length;
      const mode = async (p: string) => (await fsp.stat(join(s.mnt, p))).mode & 0o7777;
      const before = await mode('d');
      await s.clearLog();
      assert.equal(await mode('d'), before);
      assert.equal(await mode('d'), before);
      assert.equal(await getattrs('/d'), 0, 'the directory: answered by the binding');
      await fsp.stat(join(s.mnt, 'hello'));
      const once = await getattrs('/hello');
      await fsp.stat(join(s.mnt, 'hello'));
      assert.ok(once >= 1 && (await getattrs('/hello')) >= 2 * once, 'a file: asked on every stat');

      assert.deepEqual(await s.request('setattr', { path: '/d', mode: 0o700 }), { ok: true });
      assert.equal(await mode('d'), before, 'kept until told');
      await s.request('invalidateListings');
      assert.equal(await mode('d'), 0o700, 'asked again after invalidateListings()');
    } finally {
      await s.stop();
    }
  });

  test('without the option every readdir reaches the handler', async () => {
    const s = await mountOrFail('listings-off', {});
    try {
      await fsp.readdir(s.mnt);
      await s.clearLog();
      await fsp.readdir(s.mnt);
      await fsp.readdir(s.mnt);
      assert.equal(await readdirs(s, '/'), 2);
    } finally {
      await s.stop();
    }
  });
});

describe('keptListings: directories opened without a request, listings kept by the kernel', () => {
  const counts = async (s: Server) => (await s.request('requestCounts')) as Record<string, number>;
  const readdirs = async (s: Server, path: string) => (await s.log()).filter((e) => e.op === 'readdir' && e.path === path).length;
  const many = { path: '/many', count: 5000 };
  const manyNames = Array.from({ length: many.count }, (_, i) => `f${String(i).padStart(5, '0')}`);

  test('one OPENDIR (answered ENOSYS by the binding), no RELEASEDIR, and each listing asked for once', async () => {
    const s = await mountOrFail('kept', { keptListings: true, useIno: true });
    try {
      const first = (await fsp.readdir(s.mnt)).sort();
      const dirFirst = await fsp.readdir(join(s.mnt, 'dir'));
      const asked = await readdirs(s, '/');
      assert.ok(asked >= 1, 'the handler gave the listing');
      for (let i = 0; i < 3; i++) {
        assert.deepEqual((await fsp.readdir(s.mnt)).sort(), first);
        assert.deepEqual(await fsp.readdir(join(s.mnt, 'dir')), dirFirst);
      }
      assert.ok(first.includes('hello') && first.includes('dir'), first.join(' '));
      assert.equal(await readdirs(s, '/'), asked, 'the kernel kept the listing');
      const c = await counts(s);
      assert.equal(c.opendir, 1, `one OPENDIR: ${JSON.stringify(c)}`);
      assert.equal(c.releasedir ?? 0, 0, `no RELEASEDIR: ${JSON.stringify(c)}`);
      assert.ok((c.readdir ?? 0) >= 2, `READDIRs counted: ${JSON.stringify(c)}`);
    } finally {
      await s.stop();
    }
  });

  test('5,000 names come through many READDIR requests, each once and in the order the handler gave', async () => {
    const s = await startServer('kept-many', { keptListings: true }, { bigDir: many });
    if ('mountError' in s) throw new Error(s.mountError.message);
    try {
      const dir = join(s.mnt, 'many');
      // Small getdents buffers (os.scandir reads 32 KiB at a time): one READDIR per buffer.
      const listed = (await python('import os, sys\nfor e in os.scandir(sys.argv[1]): print(e.name)', dir)).trim().split('\n');
      assert.equal(listed.length, many.count);
      assert.deepEqual(listed, manyNames);
      assert.ok(((await counts(s)).readdir ?? 0) > 3, 'the listing took several READDIR requests');
      // Read again from the kernel's copy, and part-way then from the start (rewinddir).
      const again = await python(
        'import os, sys\nd = os.scandir(sys.argv[1])\nhead = [next(d).name for _ in range(10)]\nd.close()\nprint(len(head), len(os.listdir(sys.argv[1])), len(set(os.listdir(sys.argv[1]))))',
        dir,
      );
      assert.equal(again.trim(), `10 ${many.count} ${many.count}`);
    } finally {
      await s.stop();
    }
  });

  test('a listing changed behind the kernel\'s back shows after invalidateKernelListings(); a change made through the mount shows at once', async () => {
    const s = await mountOrFail('kept-inval', { keptListings: true });
    try {
      const before = await fsp.readdir(s.mnt);
      assert.deepEqual(await s.request('addFile', { path: '/added', text: 'x' }), { ok: true });
      assert.deepEqual(await fsp.readdir(s.mnt), before, 'kept until told');
      assert.deepEqual(await s.request('invalidateKernelListings'), { ok: true });
      assert.ok((await fsp.readdir(s.mnt)).includes('added'), 'listed after invalidateKernelListings()');

      const dirBefore = await fsp.readdir(join(s.mnt, 'dir'));
      await fsp.writeFile(join(s.mnt, 'dir', 'made'), 'y');
      assert.deepEqual((await fsp.readdir(join(s.mnt, 'dir'))).sort(), [...dirBefore, 'made'].sort());
      await fsp.unlink(join(s.mnt, 'dir', 'made'));
      assert.deepEqual(await fsp.readdir(join(s.mnt, 'dir')), dirBefore);
    } finally {
      await s.stop();
    }
  });

  test('fsync and ioctl on a directory opened without a request are answered; the server stays up', async () => {
    const s = await mountOrFail('kept-dir-ops', { keptListings: true });
    try {
      const out = await python(
        [
          'import os, sys, fcntl, errno',
          'fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)',
          'os.fsync(fd)',
          'try:',
          '    fcntl.ioctl(fd, 0x80086601, bytearray(8))  # FS_IOC_GETFLAGS',
          '    print("ioctl ok")',
          'except OSError as e:',
          '    print(errno.errorcode[e.errno])',
          'print(len(os.listdir(fd)) > 0)',
          'os.close(fd)',
        ].join('\n'),
        s.mnt,
      );
      // ENOSYS from the binding, which the kernel passes on as ENOTTY (no such ioctl here).
      assert.equal(out, 'ENOTTY\nTrue\n');
      const c = await counts(s);
      assert.equal(c.fsyncdir, 1, JSON.stringify(c));
      assert.equal(c.ioctl, 1, JSON.stringify(c));
      assert.ok((await fsp.readdir(s.mnt)).includes('hello'), 'still serving');
    } finally {
      await s.stop();
    }
  });

  test('a mount without a wrapped channel counts nothing', async () => {
    const s = await mountOrFail('kept-none', {});
    try {
      await fsp.readdir(s.mnt);
      assert.deepEqual(await counts(s), {});
    } finally {
      await s.stop();
    }
  });
});

describe('passthrough: the kernel reads the backing file an open names', { skip: kernelHasPassthrough() ? false : 'needs Linux 6.9+' }, () => {
  const hostFile = join(tmpRoot, 'backing-host-file');
  const hostData = pattern(3 * 1024 * 1024 + 17);
  const backing = { '/pt': hostFile };
  const opsOf = async (s: Server, op: string) => (await s.log()).filter((e) => e.op === op && (e.path === '/pt' || op.startsWith('openBacking')));

  test('an open answered with OPEN_PASSTHROUGH reads the host file; no read reaches the handler', async () => {
    writeFileSync(hostFile, hostData);
    const s = await mountOrFail('passthrough', { passthrough: true }, backing);
    try {
      const got = await fsp.readFile(join(s.mnt, 'pt'));
      // Known once INIT is answered, which the mount callback does not wait for: after a first use.
      assert.equal(await s.request('passthroughActive'), true);
      assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(hostData).digest('hex'));
      assert.equal((await opsOf(s, 'read')).length, 0, 'no read request');
      // Mapped too: the mapping is of the host file.
      const mapped = await python('import mmap, sys\nf = open(sys.argv[1], "rb")\nm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\nprint(m[:64].hex(), m.size())', join(s.mnt, 'pt'));
      assert.equal(mapped.trim(), `${hostData.subarray(0, 64).toString('hex')} ${(await fsp.stat(join(s.mnt, 'pt'))).size}`);
      assert.equal((await opsOf(s, 'read')).length, 0, 'no read request for the mapping');
    } finally {
      await s.stop();
    }
  });

  test('concurrent opens share one backing id; after the last release the next open registers anew', async () => {
    writeFileSync(hostFile, hostData);
    const s = await mountOrFail('passthrough-shared', { passthrough: true }, backing);
    try {
      const handles = await Promise.all([fsp.open(join(s.mnt, 'pt')), fsp.open(join(s.mnt, 'pt')), fsp.open(join(s.mnt, 'pt'))]);
      for (const h of handles) assert.equal((await h.read(Buffer.alloc(4), 0, 4, 0)).bytesRead, 4);
      await Promise.all(handles.map((h) => h.close()));
      assert.equal((await opsOf(s, 'openBacking')).length, 1, 'one registration for three opens');
      await waitForLog(s, (log) => log.filter((e) => e.op === 'release' && e.path === '/pt').length === 3);
      assert.equal((await fsp.readFile(join(s.mnt, 'pt'))).length, hostData.length);
      assert.equal((await opsOf(s, 'openBacking')).length, 2, 'registered again after the id was closed');
      assert.deepEqual(await opsOf(s, 'openBackingError'), []);
    } finally {
      await s.stop();
    }
  });

  test('without the option the kernel has no passthrough: openBacking fails with EPERM and reads go to the handler', async () => {
    writeFileSync(hostFile, hostData);
    const s = await mountOrFail('passthrough-off', {}, backing);
    try {
      assert.equal((await fsp.readFile(join(s.mnt, 'pt'), 'utf8')), 'served by the handler\n');
      assert.equal(await s.request('passthroughActive'), false);
      assert.deepEqual((await opsOf(s, 'openBackingError')).map((e) => e.code), ['EPERM']);
      assert.ok((await opsOf(s, 'read')).length > 0);
    } finally {
      await s.stop();
    }
  });
});

describe('invalidateKernelListings around mount and teardown (its own thread)', () => {
  const invalidate = async (s: Server) => (await s.request('invalidateKernelListings')) as ListingsReply;

  test('before mount and after unmount: an ENOTCONN Error in the callback, no crash', async () => {
    const s = await mountOrFail('inval-unmount', { keptListings: true, invalBeforeMount: true });
    try {
      const before = lastOf(await s.log(), 'invalBeforeMount');
      assert.deepEqual(before, { op: 'invalBeforeMount', code: 'ENOTCONN', errno: -107, isError: true });

      await fsp.readdir(s.mnt);
      assert.equal((await invalidate(s)).ok, true, 'works while mounted');
      assert.deepEqual(await s.request('unmount'), { ok: true });
      const right = await invalidate(s);
      assert.equal(right.code, 'ENOTCONN', JSON.stringify(right));
      assert.equal(right.errno, -107);
      assert.equal(right.isError, true);
      assert.match(String(right.error), /invalidateKernelListings\(""\) failed: ENOTCONN/);

      await withTimeout(s.sessionEnded, STEP_TIMEOUT, 'session end');
      const later = await invalidate(s);
      assert.equal(later.code, 'ENOTCONN', JSON.stringify(later));
      assert.ok(Array.isArray(await s.log()), 'server still answers');
      assert.equal(s.child.exitCode, null, 'server alive');
      assert.ok(!isMounted(s.mnt));
    } finally {
      await s.stop();
    }
  });

  test('an invalidation made while a request waits for its answer, then the connection aborted: it completes, and the session still ends', async () => {
    const s = await mountOrFail('inval-abort', { keptListings: true, entryTimeout: 3600, attrTimeout: 3600 });
    try {
      await fsp.readdir(s.mnt);
      await fsp.readdir(join(s.mnt, 'dir'));
      const statDone = fsp.stat(join(s.mnt, 'slow')).then(() => 'ok', (err: NodeJS.ErrnoException) => err.code);
      await withTimeout((async () => {
        while (!(await s.log()).some((e) => e.op === 'getattr' && e.path === '/slow')) await delay(20);
      })(), STEP_TIMEOUT, 'lookup of /slow in flight');
      const pending = invalidate(s);
      // umount -f aborts the connection (then fails: the pending lookup keeps it busy)
      await run('umount', ['-f', s.mnt]);
      assert.notEqual(await withTimeout(statDone, STEP_TIMEOUT, 'stat after abort'), 'ok', 'the lookup was aborted');
      const r = await withTimeout(pending, STEP_TIMEOUT, 'invalidation after abort');
      assert.ok(r.ok === true || typeof r.code === 'string', JSON.stringify(r));
      await withTimeout(s.sessionEnded, STEP_TIMEOUT, 'session end after abort');
      const after = await invalidate(s);
      assert.equal(after.code, 'ENOTCONN', JSON.stringify(after));
      assert.equal(s.child.exitCode, null, 'server alive');
    } finally {
      await s.stop();
    }
  });
});
