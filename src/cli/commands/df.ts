import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { humanSize, table } from '../format.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';

interface DfArgs extends StoreArgs {
  format: 'table' | 'json';
}

export const dfCommand: CommandModule<object, DfArgs> = {
  command: 'df',
  describe: 'Show store disk usage: shared layers counted once, and what prune would reclaim',
  builder: (y: Argv) =>
    withStoreOption(y.option('format', { choices: ['table', 'json'] as const, default: 'table' as const })) as unknown as Argv<DfArgs>,
  handler: async (args: ArgumentsCamelCase<DfArgs>) => {
    const store = await openStore(args);
    const df = await store.diskUsage();
    if (args.format === 'json') {
      process.stdout.write(JSON.stringify({ root: store.paths.root, ...df }, null, 2) + '\n');
      return;
    }
    process.stdout.write(
      table(
        ['TYPE', 'TOTAL', 'SIZE', 'SHARED', 'RECLAIMABLE'],
        [
          ['Images', String(df.images), humanSize(df.unsharedTotal), humanSize(df.sharedSize), ''],
          ['Layers', String(df.layers), humanSize(df.layersSize), humanSize(df.sharedSize), humanSize(df.reclaimable)],
          ['Blobs', '', humanSize(df.blobsSize), '', ''],
        ],
      ),
    );
    const saved = df.unsharedTotal - df.layersSize;
    if (saved > 0) process.stdout.write(`Sharing saves ${humanSize(saved)}: images would take ${humanSize(df.unsharedTotal)} unshared.\n`);
  },
};
