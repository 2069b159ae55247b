// Builds zstd-napi's binding (the zstd decoder of Node 20, see src/extract/decompress.ts) when it is
// missing. npm 11 runs dependency install scripts only when approved, and zstd-napi's own script
// (prebuild-install, which needs github.com, or node-gyp) may not have run. Its sources bundle
// zstd, so a C compiler, make and python3 are all it needs.
//
// Not fatal: without it, layerfs works but refuses zstd layers on Node < 22.15 (whose zlib has no
// zstd) with a message pointing here. Run by scripts/build-native.mjs, or by hand:
//   node scripts/native/build-zstd.mjs
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(root, 'package.json'));

function loads() {
  try {
    require('zstd-napi/binding');
    return true;
  } catch {
    return false;
  }
}

function warn(message) {
  console.warn(`layerfs: zstd-napi not built (${message}); zstd layers need Node >= 22.15 until it is`);
  process.exit(0);
}

if (loads()) process.exit(0);

let packageDir;
try {
  packageDir = dirname(require.resolve('zstd-napi/package.json'));
} catch {
  warn('zstd-napi is not installed');
}

// node-gyp: ours (devDependency), else the copy npm bundles and names in npm_config_node_gyp.
const candidates = [join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), process.env.npm_config_node_gyp];
const nodeGyp = candidates.find((path) => path !== undefined && existsSync(path));
if (nodeGyp === undefined) warn('node-gyp not found');

const args = [nodeGyp, 'rebuild'];
// Local headers instead of a download (we may be offline): npm's nodedir, or this node's prefix.
const prefix = resolve(dirname(process.execPath), '..');
const nodeDir = process.env.npm_config_nodedir ?? (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
if (nodeDir !== undefined) args.push(`--nodedir=${nodeDir}`);

console.log(`layerfs: building zstd-napi (node-gyp ${args.slice(1).join(' ')})`);
const result = spawnSync(process.execPath, args, { cwd: packageDir, stdio: 'inherit' });
if (result.status !== 0) warn(`node-gyp exited with ${result.status ?? result.signal}`);
if (!loads()) warn('the build finished but the binding does not load');
