#!/usr/bin/env node
// Builds a small, reproducible, three-layer OCI image layout around this machine's static
// busybox (Debian package busybox-static), usable as a root filesystem:
//   chroot ROOTFS /bin/sh -c 'cat /etc/motd; ls /'
//
//   node scripts/make-sample-image.mjs [DIR]        (default sample/busybox-oci; tag "latest")
//
//   layer 1 (base)  : the usual top-level directories, /bin/busybox with a symlink to it for
//                     every applet (`busybox --list-full`, as the busybox package installs them),
//                     /etc/passwd, /etc/group, /etc/os-release
//   layer 2 (extras): /etc/motd, /var/lib/sample/packages (name and version per line),
//                     /etc/sample/legacy.conf (deleted by layer 3), /opt/sample/ (made opaque by
//                     layer 3)
//   layer 3 (update): a new /etc/motd, the whiteout etc/sample/.wh.legacy.conf, the opaque
//                     marker opt/sample/.wh..wh..opq with opt/sample/new.txt
//
// Reproducible: every entry has uid/gid 0 and the same mtime (SOURCE_DATE_EPOCH when set, else
// 2026-01-01T00:00:00Z), entries are in sorted order, and gzip headers carry no name and no time.
// Two runs give byte-identical layouts as long as the inputs are the same: the busybox binary
// (its package version) and Node's bundled zlib (the compressed bytes, hence the layer digests,
// can differ between zlib versions, i.e. between Node releases; the diffIDs cannot).
//
// The layout is built in a temporary directory beside DIR and renamed into place, so DIR is
// either the previous complete layout or the new one. An existing DIR is replaced only if it is
// an OCI layout (has an `oci-layout` file) or empty.
// BUSYBOX=PATH uses another static busybox binary instead of /bin/busybox.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { constants as zc, gzipSync } from 'node:zlib';
import tar from 'tar-stream';

const DEFAULT_OUT = 'sample/busybox-oci';
const IMAGE_NAME = 'layerfs-sample';
const TAG = 'latest';
const DEFAULT_EPOCH = Date.UTC(2026, 0, 1) / 1000; // 2026-01-01T00:00:00Z
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const MT_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MT_INDEX = 'application/vnd.oci.image.index.v1+json';
const MT_CONFIG = 'application/vnd.oci.image.config.v1+json';
const MT_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

class Refusal extends Error {}

// --- inputs -------------------------------------------------------------------------------------

function sourceDate() {
  const raw = process.env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return new Date(DEFAULT_EPOCH * 1000);
  if (!/^\d+$/.test(raw)) throw new Refusal(`SOURCE_DATE_EPOCH must be a number of seconds, not "${raw}"`);
  return new Date(Number(raw) * 1000);
}

/** OCI architecture (GOARCH spelling) of this host. */
function ociArchitecture() {
  const map = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' };
  const arch = map[process.arch];
  if (arch === undefined) throw new Refusal(`no OCI architecture known for Node's process.arch "${process.arch}"`);
  return arch;
}

/** True when the ELF file asks for a program interpreter (is dynamically linked). */
function hasElfInterpreter(path) {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(64);
    readSync(fd, head, 0, 64, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46) throw new Refusal(`${path} is not an ELF executable`);
    const is64 = head[4] === 2;
    const le = head[5] === 1;
    const u16 = (b, o) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b, o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const phoff = is64 ? Number(le ? head.readBigUInt64LE(32) : head.readBigUInt64BE(32)) : u32(head, 28);
    const phentsize = u16(head, is64 ? 54 : 42);
    const phnum = u16(head, is64 ? 56 : 44);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) if (u32(table, i * phentsize) === 3 /* PT_INTERP */) return true;
    return false;
  } finally {
    closeSync(fd);
  }
}

function readBusybox(path) {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new Refusal(`${path} is missing: install busybox-static: scripts/setup-system.sh`);
  }
  if (!st.isFile()) throw new Refusal(`${path} is not a regular file: install busybox-static: scripts/setup-system.sh`);
  if (hasElfInterpreter(path)) {
    throw new Refusal(`${path} is dynamically linked (Debian's "busybox" package?); the image needs the static one: install busybox-static: scripts/setup-system.sh`);
  }
  const run = (args) => execFileSync(path, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  // Paths such as usr/bin/awk. Left out: bin/busybox itself, and applets outside a directory
  // (linuxrc, for initrds), which have no place in a container's root.
  const applets = run(['--list-full'])
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.includes('/') && line !== 'bin/busybox' && !line.startsWith('/') && !line.split('/').includes('..'));
  if (applets.length === 0 || !applets.some((a) => a === 'bin/sh')) throw new Refusal(`${path} --list-full lists no bin/sh`);
  // "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary." -> "1.35.0 (Debian 1:1.35.0-4+deb12u1+b1)"
  const banner = run([]).split('\n')[0] ?? '';
  const version = /^BusyBox v(.*?) multi-call binary/.exec(banner)?.[1] ?? 'unknown';
  const debian = /\(Debian ([^)]+)\)/.exec(version)?.[1];
  const packageLine = debian === undefined ? `busybox ${version.split(' ')[0]}` : `busybox-static ${debian}`;
  return { data: readFileSync(path), applets, version, packageLine };
}

// --- layers -------------------------------------------------------------------------------------

/** Entries: { path, type: 'dir'|'file'|'symlink', mode, data?, target? }; parents are added. */
function withParents(entries) {
  const byPath = new Map(entries.map((e) => [e.path, e]));
  for (const e of entries) {
    for (let p = dirname(e.path); p !== '.' && p !== '/'; p = dirname(p)) {
      if (!byPath.has(p)) byPath.set(p, { path: p, type: 'dir', mode: 0o755 });
    }
  }
  // Plain code-unit order: a directory (a prefix) always sorts before what is inside it.
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function tarOf(entries, mtime) {
  const pack = tar.pack();
  const chunks = [];
  const collected = (async () => {
    for await (const chunk of pack) chunks.push(chunk);
  })();
  for (const e of withParents(entries)) {
    const header = { name: e.path, mode: e.mode, mtime, uid: 0, gid: 0, uname: 'root', gname: 'root' };
    if (e.type === 'dir') pack.entry({ ...header, type: 'directory' });
    else if (e.type === 'symlink') pack.entry({ ...header, type: 'symlink', linkname: e.target });
    else pack.entry({ ...header, type: 'file' }, e.data);
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

function baseLayer(busybox, archName) {
  const dirs = [
    ['bin', 0o755], ['dev', 0o755], ['etc', 0o755], ['proc', 0o555], ['root', 0o700], ['sbin', 0o755],
    ['sys', 0o555], ['tmp', 0o1777], ['usr', 0o755], ['usr/bin', 0o755], ['usr/sbin', 0o755], ['var', 0o755],
  ];
  const entries = dirs.map(([path, mode]) => ({ path, type: 'dir', mode }));
  entries.push({ path: 'bin/busybox', type: 'file', mode: 0o755, data: busybox.data });
  for (const applet of busybox.applets) entries.push({ path: applet, type: 'symlink', mode: 0o777, target: '/bin/busybox' });
  const text = (path, content, mode = 0o644) => entries.push({ path, type: 'file', mode, data: Buffer.from(content) });
  text('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  text('etc/group', 'root:x:0:\nnogroup:x:65534:\n');
  text(
    'etc/os-release',
    [
      `NAME="layerfs sample image"`,
      `ID=${IMAGE_NAME}`,
      `VERSION_ID=1`,
      `PRETTY_NAME="layerfs sample image 1 (busybox ${busybox.version}, ${archName})"`,
      '',
    ].join('\n'),
  );
  return entries;
}

function extrasLayer(busybox) {
  const text = (path, content) => ({ path, type: 'file', mode: 0o644, data: Buffer.from(content) });
  return [
    text('etc/motd', 'Welcome to the layerfs sample image (motd of layer 2).\n'),
    text('var/lib/sample/packages', `${busybox.packageLine}\nsample-base 1\nsample-extras 2\n`),
    text('etc/sample/keep.conf', 'kept=yes\n'),
    text('etc/sample/legacy.conf', 'legacy=yes  # deleted by layer 3 (whiteout)\n'),
    text('opt/sample/old-1.txt', 'old file 1 (hidden by the opaque directory of layer 3)\n'),
    text('opt/sample/sub/old-2.txt', 'old file 2 (hidden by the opaque directory of layer 3)\n'),
  ];
}

function updateLayer() {
  const text = (path, content) => ({ path, type: 'file', mode: 0o644, data: Buffer.from(content) });
  return [
    text('etc/motd', 'Welcome to the layerfs sample image (motd changed by layer 3).\n'),
    text('etc/sample/.wh.legacy.conf', ''),
    text('opt/sample/.wh..wh..opq', ''),
    text('opt/sample/new.txt', 'new file of layer 3 in the opaque directory\n'),
  ];
}

// --- the layout ---------------------------------------------------------------------------------

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

function writeBlob(layout, buf) {
  const hex = sha256(buf);
  writeFileSync(join(layout, 'blobs', 'sha256', hex), buf, { mode: 0o644 });
  return { digest: `sha256:${hex}`, size: buf.length };
}

/** JSON with a fixed key order (insertion order of literal objects), no trailing newline. */
const json = (value) => Buffer.from(JSON.stringify(value));

async function buildLayout(layout, busybox, created, architecture) {
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  const stamp = created.toISOString().replace(/\.000Z$/, 'Z');
  const specs = [
    { entries: baseLayer(busybox, architecture), by: `layerfs make-sample-image: base: directories, busybox ${busybox.version} with ${busybox.applets.length} applet links, passwd, group, os-release` },
    { entries: extrasLayer(busybox), by: 'layerfs make-sample-image: extras: motd, package list, etc/sample/legacy.conf, opt/sample/' },
    { entries: updateLayer(), by: 'layerfs make-sample-image: update: new motd, whiteout of etc/sample/legacy.conf, opaque opt/sample/' },
  ];
  const layers = [];
  const diffIds = [];
  for (const spec of specs) {
    const raw = await tarOf(spec.entries, created);
    diffIds.push(`sha256:${sha256(raw)}`);
    // Node's gzip header has no file name and a zero mtime; level and strategy are fixed here so
    // the bytes depend only on the zlib Node bundles.
    const gz = gzipSync(raw, { level: 9, memLevel: 8, windowBits: 15, strategy: zc.Z_DEFAULT_STRATEGY });
    layers.push({ mediaType: MT_LAYER, ...writeBlob(layout, gz) });
  }
  const config = {
    created: stamp,
    architecture,
    os: 'linux',
    config: {
      Env: [PATH_ENV],
      Cmd: ['/bin/sh'],
      WorkingDir: '/',
      Labels: { 'org.opencontainers.image.title': IMAGE_NAME, 'org.opencontainers.image.description': 'layerfs sample image: busybox in three layers with a whiteout and an opaque directory' },
    },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: specs.map((s) => ({ created: stamp, created_by: s.by })),
  };
  const configDesc = { mediaType: MT_CONFIG, ...writeBlob(layout, json(config)) };
  const manifest = {
    schemaVersion: 2,
    mediaType: MT_MANIFEST,
    config: configDesc,
    layers,
    annotations: { 'org.opencontainers.image.created': stamp, 'org.opencontainers.image.title': IMAGE_NAME },
  };
  const manifestDesc = { mediaType: MT_MANIFEST, ...writeBlob(layout, json(manifest)) };
  const index = {
    schemaVersion: 2,
    mediaType: MT_INDEX,
    manifests: [{ ...manifestDesc, platform: { architecture, os: 'linux' }, annotations: { 'org.opencontainers.image.ref.name': TAG } }],
  };
  writeFileSync(join(layout, 'oci-layout'), json({ imageLayoutVersion: '1.0.0' }), { mode: 0o644 });
  writeFileSync(join(layout, 'index.json'), json(index), { mode: 0o644 });
  return { manifestDigest: manifestDesc.digest, layers: layers.length };
}

/** Whether `target` exists; refuses one that is neither absent, empty, nor an OCI layout. */
function checkTarget(target) {
  let names;
  try {
    names = readdirSync(target);
  } catch (err) {
    if (err.code === 'ENOENT') return false;
    if (err.code === 'ENOTDIR') throw new Refusal(`${target} exists and is not a directory`);
    throw err;
  }
  if (names.length > 0 && !names.includes('oci-layout')) {
    throw new Refusal(`${target} exists and is not an OCI image layout (no oci-layout file): not replacing it`);
  }
  return true;
}

/** Puts the finished `tmp` at `target`, replacing an earlier layout there. */
function install(tmp, target) {
  let old;
  if (checkTarget(target)) {
    // A directory cannot be renamed over a non-empty one: move the old layout aside first.
    old = mkdtempSync(join(dirname(target), `.${basename(target)}.old-`));
    renameSync(target, join(old, 'layout'));
  }
  renameSync(tmp, target);
  if (old !== undefined) rmSync(old, { recursive: true, force: true });
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length > 1 || args[0] === '-h' || args[0] === '--help') {
    console.error('usage: node scripts/make-sample-image.mjs [DIR]   (default sample/busybox-oci)');
    process.exit(args.length > 1 ? 2 : 0);
  }
  const target = resolve(args[0] ?? DEFAULT_OUT);
  const busybox = readBusybox(process.env.BUSYBOX || '/bin/busybox');
  const created = sourceDate();
  const architecture = ociArchitecture();

  checkTarget(target);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = mkdtempSync(join(dirname(target), `.${basename(target)}.tmp-`));
  chmodSync(tmp, 0o755); // mkdtemp makes it 0700
  try {
    const { manifestDigest, layers } = await buildLayout(tmp, busybox, created, architecture);
    install(tmp, target);
    console.log(`${target}: OCI image layout, tag ${TAG}, ${layers} layers, manifest ${manifestDigest}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`make-sample-image: ${err instanceof Refusal ? err.message : (err?.message ?? err)}`);
  process.exit(1);
});
