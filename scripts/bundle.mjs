// Bundles the programs into dist/bundle/ with esbuild: `layerfs.js` (the CLI), `daemon.js`
// (the mount daemon it starts) and `layerfs-overlay.js` (the containers/storage mount program).
//
// Why: Node 20 loads an ES module graph file by file, and the CLI's graph is over a hundred of
// our modules plus yargs' and undici's. That loading was most of the ~0.45 s a `layerfs mount`
// spent before its daemon even started. The CLI is split so that code only some commands need
// (undici, the pull and push code...) is loaded on demand; the daemon and the mount program are
// one file each, since every extra file is another round through the module loader at start-up.
//
// Native addons and the CommonJS packages we load through createRequire (fuse-native,
// zstd-napi, tar-stream, cli-progress) stay in node_modules and are resolved at run time;
// dist/bundle/ is two levels below the package root like dist/<dir>/, so the addon's relative
// path (src/native/index.ts) holds in both layouts.
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bundle');

const common = {
  absWorkingDir: root,
  outdir,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  // Bundled CommonJS (undici, yargs' helpers) calls require() for Node's built-ins; an ES module
  // has none, so each output file gets one.
  banner: { js: "import { createRequire as __layerfsCreateRequire } from 'node:module'; const require = __layerfsCreateRequire(import.meta.url);" },
  logLevel: 'warning',
};

await rm(outdir, { recursive: true, force: true });
await build({ ...common, entryPoints: { layerfs: 'src/cli/main.ts' }, splitting: true });
await build({ ...common, entryPoints: { daemon: 'src/mount/daemon.ts', 'layerfs-overlay': 'src/cli/overlay-program.ts' }, splitting: false });
