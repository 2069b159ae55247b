/**
 * The `layerfs` program's entry. It stays this small so that a background `layerfs mount` can
 * start its daemon before anything else is loaded: the daemon's start-up then overlaps with this
 * process loading the CLI (src/cli/program.ts) and resolving the image.
 */
import { prestartDaemon } from '../mount/daemon-process.js';

/**
 * Whether this command line will serve a mount from a daemon: `mount` without --foreground. Only
 * a guess from the raw words (the real parsing comes later); a wrong guess costs an idle process.
 */
function startsMountDaemon(argv: readonly string[]): boolean {
  if (argv[0] !== 'mount') return false;
  return !argv.some((word) => /^(-f|--foreground(=.*)?|-h|--help|--version|-[a-z]*f[a-z]*)$/.test(word) && word !== '--foreground=false');
}

if (startsMountDaemon(process.argv.slice(2))) prestartDaemon();
const { runCli } = await import('./program.js');
await runCli();
