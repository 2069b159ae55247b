// Builds our N-API addon (native-bindings/ -> build/Release/layerfs_native.node)
// with node-gyp. Run from scripts/build-native.mjs during `npm install`, or by hand:
//   node scripts/native/build-addon.mjs
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const addonDir = join(root, 'native-bindings');
const output = join(addonDir, 'build', 'Release', 'layerfs_native.node');

function fail(message) {
  console.error(`layerfs: building the native addon failed: ${message}`);
  process.exit(1);
}

// node-gyp: our devDependency first, then a resolvable install, then the copy
// bundled with npm (npm exports its path as npm_config_node_gyp to scripts).
function findNodeGyp() {
  const local = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(local)) return local;
  try {
    return createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    // fall through
  }
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  return undefined;
}

// Use local Node headers instead of downloading them (we may be offline).
// npm passes its `nodedir` config as npm_config_nodedir; when run by hand,
// use the prefix of the running node if it ships headers (/usr for Debian).
function findNodeDir() {
  const fromNpm = process.env.npm_config_nodedir;
  if (fromNpm) return fromNpm;
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  return undefined;
}

if (!existsSync(join(addonDir, 'binding.gyp'))) fail(`missing ${join(addonDir, 'binding.gyp')}`);

const nodeGyp = findNodeGyp();
if (!nodeGyp) fail('node-gyp not found (install devDependencies or use npm, which bundles it)');

const args = [nodeGyp, 'configure', 'build'];
const nodeDir = findNodeDir();
if (nodeDir) args.push(`--nodedir=${nodeDir}`);

console.log(`layerfs: building native addon (node-gyp ${args.slice(1).join(' ')})`);
const result = spawnSync(process.execPath, args, { cwd: addonDir, stdio: 'inherit' });
if (result.error) fail(result.error.message);
if (result.status !== 0) {
  fail(`node-gyp exited with ${result.status ?? `signal ${result.signal}`} (see output above; needs a C compiler, make and python3)`);
}
if (!existsSync(output)) fail(`node-gyp succeeded but ${output} is missing`);
console.log(`layerfs: built ${output}`);
