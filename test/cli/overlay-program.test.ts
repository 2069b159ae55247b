// The command line of `layerfs-overlay`, containers/storage's mount program: what fuse-overlayfs
// accepts (several -o, escapes, unknown options ignored, id mappings refused, lowerdir alone or
// `ro` read-only). Parsing only; the mounts themselves are in test/e2e/mount-program.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../../src/errors.js';
import { type OverlayMountRequest, parseCommandLine, splitLowerdir, splitOptionList, unescapeOption } from '../../src/cli/overlay-program.js';

function request(argv: string[]): OverlayMountRequest {
  const parsed = parseCommandLine(argv);
  assert.equal(parsed.kind, 'mount');
  return (parsed as { request: OverlayMountRequest }).request;
}

function refused(argv: string[], pattern: RegExp, exitCode = 2): void {
  assert.throws(
    () => parseCommandLine(argv),
    (err: unknown) => err instanceof UserError && pattern.test(err.message) && err.exitCode === exitCode,
    `${argv.join(' ')} should be refused with ${pattern}`,
  );
}

describe('layerfs-overlay command line', () => {
  it('takes the options containers/storage passes: lowerdir, upperdir, workdir, empty items, volatile', () => {
    const r = request(['-o', 'lowerdir=/g/l/A:/g/l/B:/g/l/C,upperdir=/g/id/diff,workdir=/g/id/work,,volatile', '/g/id/merged']);
    assert.deepEqual(r.lowers, ['/g/l/A', '/g/l/B', '/g/l/C']);
    assert.equal(r.upper, '/g/id/diff');
    assert.equal(r.workdir, '/g/id/work');
    assert.equal(r.mountpoint, '/g/id/merged');
    assert.equal(r.readOnly, false);
    assert.equal(r.foreground, false);
    assert.deepEqual(r.ignored, ['volatile']);
  });

  it('options may come in several -o, also as -oOPTS; the last value wins', () => {
    const r = request(['-o', 'lowerdir=/x', '-oupperdir=/u1', '-f', '-o', 'workdir=/w,upperdir=/u2,xattr_permissions=2', '-o', 'lowerdir=/a:/b', 'mnt']);
    assert.deepEqual(r.lowers, ['/a', '/b']);
    assert.equal(r.upper, '/u2');
    assert.equal(r.workdir, '/w');
    assert.equal(r.foreground, true);
    assert.deepEqual(r.ignored, ['xattr_permissions=2']);
  });

  it('lowerdir alone mounts read-only; a workdir without an upper is ignored', () => {
    const r = request(['-o', 'lowerdir=/g/p/diff:/g/l/B', '/g/p/merged']);
    assert.deepEqual(r.lowers, ['/g/p/diff', '/g/l/B']);
    assert.equal(r.upper, undefined);
    const w = request(['-o', 'lowerdir=/a,workdir=/w', 'mnt']);
    assert.equal(w.workdir, undefined);
    assert.equal(w.ignored.length, 1);
  });

  it('`ro` mounts read-only; with an upper, the upper becomes the top lower', () => {
    const r = request(['-o', 'lowerdir=/g/p/diff:/g/l/B,ro', 'mnt']);
    assert.equal(r.readOnly, true);
    assert.deepEqual(r.lowers, ['/g/p/diff', '/g/l/B']);
    const u = request(['-o', 'ro,lowerdir=/l,upperdir=/u,workdir=/w', 'mnt']);
    assert.deepEqual(u.lowers, ['/u', '/l']);
    assert.equal(u.upper, undefined);
    assert.equal(u.workdir, undefined);
    assert.equal(request(['-o', 'ro,rw,lowerdir=/l,upperdir=/u,workdir=/w', 'mnt']).upper, '/u', 'a later rw wins');
  });

  it('backslash escapes: \\, and \\: in paths, \\\\ for a backslash, \\ooo octal', () => {
    const r = request(['-o', 'lowerdir=/a\\:b:/c\\,d\\\\e:/f\\072g,upperdir=/u\\,x,workdir=/w\\:y', 'm']);
    assert.deepEqual(r.lowers, ['/a:b', '/c,d\\e', '/f:g']);
    assert.equal(r.upper, '/u,x');
    assert.equal(r.workdir, '/w:y');
    assert.deepEqual(splitOptionList('a\\,b,c'), ['a\\,b', 'c']);
    assert.deepEqual(splitLowerdir('x\\:y:z'), ['x:y', 'z']);
    assert.equal(unescapeOption('\\\\\\,\\q\\101'), '\\,qA');
  });

  it('a double-quoted part never splits (SELinux context="…,…")', () => {
    const r = request(['-o', 'lowerdir=/l,context="system_u:object_r:container_file_t:s0:c1,c2",upperdir=/u,workdir=/w', 'm']);
    assert.deepEqual(r.ignored, ['context="system_u:object_r:container_file_t:s0:c1,c2"']);
    assert.equal(r.upper, '/u');
  });

  it('timeout= sets the kernel cache time; debug and -d turn on debug output', () => {
    assert.equal(request(['-o', 'lowerdir=/l', 'm']).cacheTimeout, 86400);
    assert.equal(request(['-o', 'lowerdir=/l,timeout=2.5', 'm']).cacheTimeout, 2.5);
    refused(['-o', 'lowerdir=/l,timeout=soon', 'm'], /timeout=soon/);
    assert.equal(request(['-o', 'lowerdir=/l,debug', 'm']).debug, true);
    assert.equal(request(['-d', '-o', 'lowerdir=/l', 'm']).debug, true);
    assert.equal(request(['--debug', '-o', 'lowerdir=/l', 'm']).debug, true);
  });

  it('id mappings and squashing are refused, never ignored', () => {
    for (const option of ['uidmapping=0:1000:1:1:100000:65536', 'gidmapping=0:1000:1', 'squash_to_root', 'squash_to_uid=1000', 'squash_to_gid=1000']) {
      refused(['-o', `lowerdir=/l,upperdir=/u,workdir=/w,${option}`, 'm'], /is not supported: layerfs does not map or squash user and group ids/);
    }
  });

  it('bad command lines say what is wrong', () => {
    refused(['m'], /option lowerdir is required/);
    refused(['-o', 'upperdir=/u,workdir=/w', 'm'], /option lowerdir is required/);
    refused(['-o', 'lowerdir=', 'm'], /lowerdir needs a value/);
    refused(['-o', 'lowerdir=/a::/b', 'm'], /empty entry/);
    refused(['-o', 'lowerdir=/l,upperdir=/u', 'm'], /upperdir needs workdir/);
    refused(['-o', 'lowerdir=/l'], /name the mountpoint/);
    refused(['-o', 'lowerdir=/l', 'a', 'b'], /one mountpoint only/);
    refused(['-o'], /-o needs a list of options/);
    refused(['--frobnicate', '-o', 'lowerdir=/l', 'm'], /unknown argument --frobnicate/);
  });

  it('-h and -V', () => {
    assert.equal(parseCommandLine(['-h']).kind, 'help');
    assert.equal(parseCommandLine(['--help', '-o', 'x']).kind, 'help');
    assert.equal(parseCommandLine(['-V']).kind, 'version');
  });
});
