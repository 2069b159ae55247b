#!/usr/bin/env node
// Applies patches/fuse-native+2.2.6.patch to node_modules/fuse-native and rebuilds its
// native binding from source against the system libfuse 2.9 (pkg-config fuse).
//
// Idempotent: a stamp file (node_modules/fuse-native/.layerfs-patch.json) records the
// sha256 of the applied patch; pristine copies of the patched files are kept in
// node_modules/fuse-native/.layerfs-orig/ so a changed patch can be re-applied. The
// build is skipped when build/Release/fuse.node was built from the same patch.
//
// Usage: node scripts/native/patch-fuse-native.mjs [--check] [--force] [--no-build]
//   --check     only report; exit 0 when patched and built, 1 otherwise
//   --force     rebuild even if the build looks up to date
//   --no-build  apply the patch only
//
// The unified diff is applied by the small applier below (exact context match, hunks may
// shift), so neither `patch` nor the patch-package dependency is needed at install time.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PKG_VERSION = '2.2.6';
const PATCH_MARKER = 'layerfs-patch:';
const EXPECTED_PATCH_VERSION = 8; // must match LAYERFS_PATCH_VERSION in the patched C file

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const patchFile = join(root, 'patches', `fuse-native+${PKG_VERSION}.patch`);
const args = new Set(process.argv.slice(2));

class PatchError extends Error {}

function fail(message) {
  console.error(`layerfs: patch-fuse-native: ${message}`);
  process.exit(1);
}

function log(message) {
  console.log(`layerfs: patch-fuse-native: ${message}`);
}

function sha256(text) {
  return createHash('sha256').update(text).digest('hex');
}

function findPackageDir() {
  const require = createRequire(join(root, 'package.json'));
  let pkgJson;
  try {
    pkgJson = require.resolve('fuse-native/package.json');
  } catch {
    fail(`fuse-native is not installed (expected under ${join(root, 'node_modules')}); run npm install`);
  }
  const dir = dirname(pkgJson);
  const { version } = JSON.parse(readFileSync(pkgJson, 'utf8'));
  if (version !== PKG_VERSION) {
    fail(`fuse-native ${version} is installed but ${patchFile} is for ${PKG_VERSION}`);
  }
  return dir;
}

// ---------------------------------------------------------------- unified diff applier

function parsePatch(text) {
  const lines = text.split('\n');
  const files = [];
  let file = null;
  let hunk = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('--- ') && i + 1 < lines.length && lines[i + 1].startsWith('+++ ')) {
      const target = lines[i + 1].slice(4).split('\t')[0].trim();
      const stripped = target.replace(/^[^/]+\//, ''); // -p1
      if (!stripped || stripped.includes('..')) throw new PatchError(`bad target path ${target}`);
      file = { path: stripped, hunks: [] };
      files.push(file);
      hunk = null;
      i++;
      continue;
    }
    const m = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(line);
    if (m) {
      if (!file) throw new PatchError(`hunk before file header at patch line ${i + 1}`);
      hunk = {
        oldStart: Number(m[1]),
        oldCount: m[2] === undefined ? 1 : Number(m[2]),
        newCount: m[4] === undefined ? 1 : Number(m[4]),
        lines: [],
        header: line,
      };
      file.hunks.push(hunk);
      continue;
    }
    if (!hunk) continue; // preamble / diff command lines
    if (line.startsWith('\\')) continue; // "\ No newline at end of file" (files here end with \n)
    const tag = line[0];
    if (tag === ' ' || tag === '-' || tag === '+') {
      hunk.lines.push([tag, line.slice(1)]);
    } else if (line === '') {
      // a trailing empty line of the patch text, or an empty context line emitted without
      // its leading space by some tools
      const olds = hunk.lines.filter(([t]) => t !== '+').length;
      const news = hunk.lines.filter(([t]) => t !== '-').length;
      if (olds < hunk.oldCount || news < hunk.newCount) hunk.lines.push([' ', '']);
    } else {
      hunk = null;
    }
  }
  for (const f of files) {
    for (const h of f.hunks) {
      const olds = h.lines.filter(([t]) => t !== '+').length;
      const news = h.lines.filter(([t]) => t !== '-').length;
      if (olds !== h.oldCount || news !== h.newCount) {
        throw new PatchError(`${f.path}: malformed hunk ${h.header} (${olds}/${news} lines)`);
      }
    }
  }
  return files;
}

function matchesAt(lines, at, expected) {
  if (at < 0 || at + expected.length > lines.length) return false;
  for (let k = 0; k < expected.length; k++) if (lines[at + k] !== expected[k]) return false;
  return true;
}

function applyFile(original, filePatch) {
  const endsWithNewline = original.endsWith('\n');
  const lines = (endsWithNewline ? original.slice(0, -1) : original).split('\n');
  let offset = 0;
  for (const h of filePatch.hunks) {
    const oldLines = h.lines.filter(([t]) => t !== '+').map(([, s]) => s);
    const newLines = h.lines.filter(([t]) => t !== '-').map(([, s]) => s);
    const expected = h.oldCount === 0 ? h.oldStart + offset : h.oldStart - 1 + offset;
    let at = -1;
    for (let d = 0; d <= lines.length; d++) {
      if (matchesAt(lines, expected - d, oldLines)) { at = expected - d; break; }
      if (d && matchesAt(lines, expected + d, oldLines)) { at = expected + d; break; }
    }
    if (at < 0) throw new PatchError(`${filePatch.path}: hunk ${h.header} does not apply`);
    lines.splice(at, oldLines.length, ...newLines);
    offset = at - (h.oldStart - 1) + newLines.length - oldLines.length;
  }
  return lines.join('\n') + (endsWithNewline ? '\n' : '');
}

// ---------------------------------------------------------------- state

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

function applyPatch(pkgDir, patchText, patchSha) {
  const stampFile = join(pkgDir, '.layerfs-patch.json');
  const origDir = join(pkgDir, '.layerfs-orig');
  const files = parsePatch(patchText);
  if (files.length === 0) fail(`${patchFile} contains no file diffs`);

  const current = new Map(files.map((f) => [f.path, readFileSync(join(pkgDir, f.path), 'utf8')]));
  const marked = files.filter((f) => current.get(f.path).includes(PATCH_MARKER));
  const stamp = readJson(stampFile);

  if (marked.length === files.length && stamp && stamp.patchSha256 === patchSha) {
    return { changed: false };
  }
  if (args.has('--check')) {
    return { changed: true, checkOnly: true };
  }

  // Start from pristine sources: the current files if unpatched, else the saved originals.
  const pristine = new Map();
  for (const f of files) {
    if (!current.get(f.path).includes(PATCH_MARKER)) {
      pristine.set(f.path, current.get(f.path));
      continue;
    }
    const saved = join(origDir, f.path);
    if (!existsSync(saved)) {
      fail(`${f.path} in ${pkgDir} carries an older/unknown layerfs patch and no pristine copy exists; ` +
        'reinstall fuse-native (rm -rf node_modules/fuse-native && npm install)');
    }
    pristine.set(f.path, readFileSync(saved, 'utf8'));
  }

  // Compute every result before writing anything.
  const results = new Map();
  for (const f of files) {
    try {
      results.set(f.path, applyFile(pristine.get(f.path), f));
    } catch (err) {
      if (err instanceof PatchError) fail(`cannot apply ${patchFile}: ${err.message}`);
      throw err;
    }
    if (!results.get(f.path).includes(PATCH_MARKER)) fail(`patched ${f.path} lacks the "${PATCH_MARKER}" marker`);
  }

  for (const f of files) {
    const saved = join(origDir, f.path);
    if (!existsSync(saved)) {
      mkdirSync(dirname(saved), { recursive: true });
      writeFileSync(saved, pristine.get(f.path));
    }
  }
  for (const f of files) writeFileSync(join(pkgDir, f.path), results.get(f.path));
  writeFileSync(stampFile, JSON.stringify({ patchSha256: patchSha, files: files.map((f) => f.path) }, null, 2) + '\n');
  return { changed: true };
}

// ---------------------------------------------------------------- build

function run(cmd, argv, opts = {}) {
  return spawnSync(cmd, argv, { encoding: 'utf8', ...opts });
}

function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  try {
    candidates.push(createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not a (dev) dependency here
  }
  const prefix = resolve(dirname(process.execPath), '..');
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  for (const c of candidates) if (c && existsSync(c)) return [process.execPath, [c]];
  const which = run('sh', ['-c', 'command -v node-gyp']);
  if (which.status === 0 && which.stdout.trim()) return [which.stdout.trim(), []];
  fail('node-gyp not found (install it with npm i -g node-gyp, or run this from npm install)');
}

// Use the headers of the running node when they are installed next to it (Debian/NodeSource
// packages, official tarballs): avoids node-gyp downloading headers.
function localNodedir() {
  if (process.env.npm_config_nodedir) return null; // node-gyp reads it itself
  const prefix = resolve(dirname(process.execPath), '..');
  const inc = join(prefix, 'include', 'node');
  if (existsSync(join(inc, 'node_api.h')) && existsSync(join(inc, 'common.gypi'))) return prefix;
  return null;
}

function buildInfo(patchSha) {
  const mod = run('pkg-config', ['--modversion', 'fuse']);
  return { patchSha256: patchSha, node: process.version, libfuse: mod.status === 0 ? mod.stdout.trim() : null };
}

function buildIsCurrent(pkgDir, info) {
  const addon = join(pkgDir, 'build', 'Release', 'fuse.node');
  const stamp = readJson(join(pkgDir, 'build', 'layerfs-build.json'));
  return existsSync(addon) && stamp !== null && JSON.stringify(stamp) === JSON.stringify(info);
}

function build(pkgDir, info) {
  const pc = run('pkg-config', ['--cflags', '--libs', 'fuse']);
  if (pc.error || pc.status !== 0) {
    fail('libfuse 2.9 development files not found via pkg-config ("pkg-config --cflags --libs fuse" failed); ' +
      'on Debian: apt-get install libfuse-dev pkg-config (see scripts/setup-system.sh)');
  }
  const [gypCmd, gypPre] = findNodeGyp();
  const gypArgs = [...gypPre, 'rebuild'];
  const nodedir = localNodedir();
  if (nodedir) gypArgs.push(`--nodedir=${nodedir}`);
  log(`building native binding: ${[gypCmd, ...gypArgs].join(' ')}`);
  const res = spawnSync(gypCmd, gypArgs, { cwd: pkgDir, stdio: 'inherit' });
  if (res.error) fail(`could not run node-gyp: ${res.error.message}`);
  if (res.status !== 0) fail(`node-gyp rebuild failed in ${pkgDir} (exit ${res.status ?? res.signal})`);

  const addon = join(pkgDir, 'build', 'Release', 'fuse.node');
  if (!existsSync(addon)) fail(`node-gyp succeeded but ${addon} is missing`);
  verifyAddon(pkgDir);
  writeFileSync(join(pkgDir, 'build', 'layerfs-build.json'), JSON.stringify(info));
}

function verifyAddon(pkgDir) {
  const addon = join(pkgDir, 'build', 'Release', 'fuse.node');
  let binding;
  try {
    binding = createRequire(join(pkgDir, 'index.js'))(addon);
  } catch (err) {
    fail(`built ${addon} does not load: ${err.message}`);
  }
  if (binding.layerfs_patch_version !== EXPECTED_PATCH_VERSION) {
    fail(`built ${addon} reports patch version ${binding.layerfs_patch_version}, expected ${EXPECTED_PATCH_VERSION}`);
  }
  const ldd = run('ldd', [addon]);
  if (ldd.status === 0 && !/libfuse\.so\.2 => \//.test(ldd.stdout)) {
    fail(`built ${addon} does not link the system libfuse.so.2:\n${ldd.stdout}`);
  }
}

// ---------------------------------------------------------------- main

function main() {
  if (process.platform !== 'linux') fail(`only Linux is supported (platform ${process.platform})`);
  if (!existsSync(patchFile)) fail(`patch file ${patchFile} is missing`);
  const pkgDir = findPackageDir();
  const patchText = readFileSync(patchFile, 'utf8');
  const patchSha = sha256(patchText);

  const { changed, checkOnly } = applyPatch(pkgDir, patchText, patchSha);
  const info = buildInfo(patchSha);
  if (args.has('--check')) {
    const built = buildIsCurrent(pkgDir, info);
    log(`patch ${checkOnly ? 'NOT applied' : 'applied'}; build ${built ? 'up to date' : 'missing or stale'}`);
    process.exit(!checkOnly && built ? 0 : 1);
  }
  log(changed ? `applied ${patchFile}` : 'patch already applied');
  if (args.has('--no-build')) return;
  if (!changed && !args.has('--force') && buildIsCurrent(pkgDir, info)) {
    log('native binding is up to date (build/Release/fuse.node)');
    return;
  }
  build(pkgDir, info);
  log('native binding built: build/Release/fuse.node (links the system libfuse.so.2)');
}

main();
