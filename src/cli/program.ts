import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UserError } from '../errors.js';
import { setLogLevel } from '../log.js';
import { withCommands } from './commands/index.js';
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
  await withCommands(yargs(hideBin(process.argv)).scriptName('layerfs').usage('$0 <command> [options]'))
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
