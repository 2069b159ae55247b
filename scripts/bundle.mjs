// Bundles the programs into dist/bundle/ with esbuild: `layerfs.js` (the CLI), `daemon.cjs`
// (the mount daemon it starts) and `layerfs-overlay.js` (the containers/storage mount program).
//
// Why: Node 20 loads an ES module graph file by file, and the CLI's graph is over a hundred of
// our modules plus yargs' and undici's. That loading was most of the ~0.45 s a `layerfs mount`
// spent before its daemon even started. The CLI is split so that code only some commands need
// (undici, the pull and push code...) is loaded on demand; the daemon and the mount program are
// one file each, since every extra file is another round through the module loader at start-up.
//
// The daemon is CommonJS: it needs no code splitting, and loading it that way takes 20 ms here
// instead of 35. An ES module's `import ... from 'node:fs'` makes Node build a facade of every
// export of the built-in, which runs its lazy getters (node:fs's streams, for one) and goes
// through the ES module loader; require() does neither. Its start is on the path of every mount.
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
  // What src/mount/background.ts spawns from a bundle (tsc's output and the sources have their own).
  define: { LAYERFS_BUNDLED_DAEMON: JSON.stringify('daemon.cjs') },
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

/**
 * `string-width` measures text for yargs' help layout (yargs, cliui and wrap-ansi each import it).
 * Loading it builds Unicode tables (an Intl.Segmenter, a `\p{RGI_Emoji}` regex): about 35 ms of
 * every command's start-up here; and before yargs runs a command it lays out the command's whole
 * help text (kept in case the handler asks for it), another ~40 ms of measuring. So every import
 * of it gets a facade: printable ASCII, which all our help text is, is as wide as it is long
 * (what string-width answers too: test/cli/bundle-output.test.ts); anything else goes to the real
 * module, evaluated on first use.
 */
const stringWidthFacade = {
  name: 'string-width-facade',
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^string-width$/ }, async (args) => {
      if (args.namespace === 'string-width-facade') return undefined;
      const real = await pluginBuild.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, namespace: 'string-width-facade' });
      if (real.errors.length > 0) return { errors: real.errors };
      return { path: real.path, namespace: 'string-width-facade' };
    });
    pluginBuild.onLoad({ filter: /.*/, namespace: 'string-width-facade' }, (args) => ({
      resolveDir: dirname(args.path),
      contents: [
        'const printableAscii = /^[\\x20-\\x7e]*$/;',
        'let real;',
        'export default function stringWidth(text, options) {',
        "  if (typeof text === 'string' && printableAscii.test(text)) return text.length;",
        // require(), not import: esbuild then evaluates the bundled module on the first call.
        `  real ??= require(${JSON.stringify(args.path)}).default;`,
        '  return real(text, options);',
        '}',
      ].join('\n'),
    }));
  },
};

await rm(outdir, { recursive: true, force: true });
await build({ ...common, entryPoints: { layerfs: 'src/cli/main.ts' }, splitting: true, plugins: [stringWidthFacade] });
await build({ ...common, entryPoints: { 'layerfs-overlay': 'src/cli/overlay-program.ts' }, splitting: false });
await build({
  ...common,
  entryPoints: { daemon: 'src/mount/daemon.ts' },
  format: 'cjs',
  outExtension: { '.js': '.cjs' },
  // Our modules locate what they load at run time from import.meta.url (the native addons);
  // in CommonJS that is the bundle file's own URL.
  define: { ...common.define, 'import.meta.url': '__layerfsModuleUrl' },
  // (First, so that the file stays strict code like the ES modules it is built from.)
  banner: { js: "'use strict';\nconst __layerfsModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
});
