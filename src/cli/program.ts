import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UserError } from '../errors.js';
import { setLogLevel } from '../log.js';
import { mountCommand } from './commands/mount.js';
import { umountCommand } from './commands/umount.js';
import { imagesCommand } from './commands/images.js';
import { rmiCommand } from './commands/rmi.js';
import { pruneCommand } from './commands/prune.js';
import { dfCommand } from './commands/df.js';
import { checkCommand } from './commands/check.js';
import { pullCommand } from './commands/pull.js';
import { psCommand } from './commands/ps.js';
import { commitCommand } from './commands/commit.js';
import { diffCommand } from './commands/diff.js';
import { exportCommand, saveCommand } from './commands/export.js';
import { pushCommand } from './commands/push.js';
import { tagCommand } from './commands/tag.js';
import { rmCommand } from './commands/rm.js';
import { inspectCommand } from './commands/inspect.js';
import { tagsCommand } from './commands/tags.js';
import { loginCommand, logoutCommand } from './commands/login.js';
import { describeError } from './error-report.js';
import { createRequire } from 'node:module';

/**
 * The only module that reads argv and the environment, prints for people and exits. Everything a
 * user may get wrong arrives here as a UserError and is printed without a stack trace.
 */
export async function runCli(): Promise<void> {
  try {
    await parseAndRun();
  } catch (err) {
    const report = describeError(err);
    process.stderr.write(`layerfs: ${report.message}\n`);
    if (report.internal && process.env.LAYERFS_LOG === 'debug') process.stderr.write(`${(err as Error).stack ?? ''}\n`);
    process.exitCode = report.exitCode;
  }
}

async function parseAndRun(): Promise<void> {
  if (process.env.LAYERFS_LOG === 'debug' || process.env.LAYERFS_LOG === 'info') setLogLevel(process.env.LAYERFS_LOG);
  await yargs(hideBin(process.argv))
    .scriptName('layerfs')
    .usage('$0 <command> [options]')
    .command(mountCommand)
    .command(umountCommand)
    .command(imagesCommand)
    .command(rmiCommand)
    .command(pruneCommand)
    .command(dfCommand)
    .command(checkCommand)
    .command(pullCommand)
    .command(pushCommand)
    .command(tagCommand)
    .command(psCommand)
    .command(diffCommand)
    .command(commitCommand)
    .command(exportCommand)
    .command(saveCommand)
    .command(rmCommand)
    .command(inspectCommand)
    .command(tagsCommand)
    .command(loginCommand)
    .command(logoutCommand)
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .help()
    // Given, not found: yargs looks for package.json from the running file, which a bundle moves.
    .version(packageVersion())
    .fail((message: string | undefined, err: Error | undefined) => {
      throw err ?? new UserError(`${message ?? 'invalid arguments'}\n(see layerfs --help)`, { exitCode: 2 });
    })
    .parseAsync();
}

/** ../../package.json from src/cli/, dist/cli/ and dist/bundle/ alike. */
function packageVersion(): string {
  return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
}
