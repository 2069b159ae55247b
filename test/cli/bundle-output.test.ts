// The bundled CLI (bin/ -> dist/bundle/, what users run) against the same CLI run from its
// TypeScript sources with the node_modules as they are: help texts, usage errors and exit codes
// must be the same byte for byte. The bundle changes how things are loaded (commands on demand,
// a facade for string-width: scripts/bundle.mjs), never what the CLI says.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { mapLimit } from '../../src/concurrency.js';
import { LAYERFS_BIN } from '../helpers/mount.js';

const exec = promisify(execFile);
const SOURCE_MAIN = join(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.ts');

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(entry: string[], args: string[]): Promise<Outcome> {
  // A fixed locale: yargs picks its messages' language from it.
  const env = { ...process.env, LC_ALL: 'C', LAYERFS_ROOT: '/nonexistent/layerfs-store' };
  try {
    const { stdout, stderr } = await exec(process.execPath, [...entry, ...args], { env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const COMMANDS = ['mount', 'umount', 'images', 'rmi', 'prune', 'df', 'check', 'pull', 'push', 'tag', 'ps', 'diff', 'commit', 'export', 'save', 'rm', 'inspect', 'tags', 'login', 'logout'];

const CASES: string[][] = [
  ['--help'],
  ['--version'],
  [],
  ['no-such-command'],
  ['mount'],
  ['mount', '--no-such-option', 'img', '/mnt'],
  ['mount', '--cache-timeout', 'soon', 'img', '/mnt'],
  ['mount', '--read-only', '--name', 'x', 'img', '/mnt'],
  ['tag', 'only-one'],
  ['unmount', '--help'],
  ['unmount'],
  ['images', '--format', 'xml'],
  ['pull'],
  ...COMMANDS.map((command) => [command, '--help']),
];

describe('the bundled CLI says what the sources say', () => {
  it('help, version and usage errors: same output and exit code', async () => {
    // A few at a time: each runs two Node programs, and the machine may be busy with other things.
    const results = await mapLimit(CASES, 4, async (args) => ({ args, bundled: await run([LAYERFS_BIN], args), sources: await run(['--import', 'tsx', SOURCE_MAIN], args) }));
    for (const { args, bundled, sources } of results) {
      assert.deepEqual(bundled, sources, `layerfs ${args.join(' ')}`);
    }
    const help = results.find((r) => r.args.join(' ') === 'mount --help')!.bundled;
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--cache-timeout/);
  });

  it('string-width: printable ASCII is as wide as it is long (what the bundle\'s facade assumes)', async () => {
    // Every copy the help layout uses: yargs' own, cliui's, and wrap-ansi's (through cliui).
    const fromYargs = createRequire(createRequire(import.meta.url).resolve('yargs/package.json'));
    const cliui = fromYargs.resolve('cliui');
    const copies = new Set([fromYargs.resolve('string-width'), createRequire(cliui).resolve('string-width'), createRequire(createRequire(cliui).resolve('wrap-ansi')).resolve('string-width')]);
    const samples = [''];
    for (let code = 0x20; code <= 0x7e; code++) samples.push(String.fromCharCode(code), `${String.fromCharCode(code)}x`, `  ${String.fromCharCode(code)}${String.fromCharCode(code)}`);
    samples.push('--cache-timeout  seconds the kernel may cache names and attributes  [number] [default: 86400]');
    for (const path of copies) {
      const { default: stringWidth } = (await import(path)) as { default: (text: string) => number };
      for (const text of samples) assert.equal(stringWidth(text), text.length, `${path}: ${JSON.stringify(text)}`);
    }
  });
});
