import type { ArgumentsCamelCase, Argv } from 'yargs';
import { UserError } from '../../errors.js';
import { checkStore } from '../../image/check.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface CheckArgs extends StoreArgs {
  repair: boolean;
  content: boolean;
}

/** `layerfs check`: its options and what it does (usage and summary: ./index.ts). */
export const checkCommand: CommandImplementation<CheckArgs> = {
  builder: (y: Argv) =>
    withStoreOption(
      y
        .option('repair', { type: 'boolean', default: false, describe: 'drop damaged blobs and layers (they are fetched or extracted again when needed)' })
        .option('content', { type: 'boolean', default: false, describe: 'also hash every file of every layer' }),
    ) as unknown as Argv<CheckArgs>,
  handler: async (args: ArgumentsCamelCase<CheckArgs>) => {
    const store = await openStore(args);
    const report = await checkStore(store, { repair: args.repair, content: args.content });
    for (const p of report.problems) {
      process.stdout.write(`${p.repaired ? 'dropped' : 'damaged'} ${p.kind} ${p.digest}: ${p.message}\n`);
    }
    process.stdout.write(`checked ${report.blobs} blobs and ${report.layers} layers: ${report.problems.length === 0 ? 'all good' : `${report.problems.length} damaged`}\n`);
    const unrepaired = report.problems.filter((p) => !p.repaired).length;
    if (unrepaired > 0) throw new UserError(`${unrepaired} damaged entr${unrepaired === 1 ? 'y' : 'ies'}${args.repair ? ' could not be dropped' : '; run layerfs check --repair'}`);
  },
};
