import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { humanSize } from '../format.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';

interface PruneArgs extends StoreArgs {
  all: boolean;
}

export const pruneCommand: CommandModule<object, PruneArgs> = {
  command: 'prune',
  describe: 'Remove layers and blobs no image uses (--all: also every image no mount uses)',
  builder: (y: Argv) =>
    withStoreOption(y.option('all', { alias: 'a', type: 'boolean', default: false })) as unknown as Argv<PruneArgs>,
  handler: async (args: ArgumentsCamelCase<PruneArgs>) => {
    const store = await openStore(args);
    const result = await store.prune({ all: args.all });
    for (const ref of result.deletedImages) process.stdout.write(`Untagged: ${ref}\n`);
    for (const layer of result.deletedLayers) process.stdout.write(`Deleted layer: ${layer}\n`);
    process.stdout.write(`Total reclaimed space: ${humanSize(result.freed)}\n`);
  },
};
