import type { ArgumentsCamelCase, Argv } from 'yargs';
import { humanSize, table } from '../format.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface DfArgs extends StoreArgs {
  format: 'table' | 'json';
}

/** `layerfs df`: its options and what it does (usage and summary: ./index.ts). */
export const dfCommand: CommandImplementation<DfArgs> = {
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
