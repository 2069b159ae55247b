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

if (startsMountDaemon(process.argv.slice(2))) {
  prestartDaemon();
  // The mount command's module too, alongside the rest of the CLI instead of after yargs has
  // picked the command (~15 ms sooner); its builder imports it again and gets this one, and
  // reports a failure to load it.
  import('./commands/mount.js').catch(() => undefined);
}
const { runCli } = await import('./program.js');
await runCli();
