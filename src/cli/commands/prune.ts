import type { ArgumentsCamelCase, Argv } from 'yargs';
import { UserError } from '../../errors.js';
import { parseSize } from '../../store/budget.js';
import { humanSize } from '../format.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface PruneArgs extends StoreArgs {
  all: boolean;
  cacheSize?: string;
}

/** `layerfs prune`: its options and what it does (usage and summary: ./index.ts). */
export const pruneCommand: CommandImplementation<PruneArgs> = {
  builder: (y: Argv) =>
    withStoreOption(
      y
        .option('all', { alias: 'a', type: 'boolean', default: false })
        .option('cache-size', {
          type: 'string',
          describe: 'also evict least recently used layers of named images until layers fit in SIZE (e.g. 20G); default budget: a quarter of the disk',
        }),
    ) as unknown as Argv<PruneArgs>,
  handler: async (args: ArgumentsCamelCase<PruneArgs>) => {
    const store = await openStore(args);
    const result = await store.prune({ all: args.all });
    for (const ref of result.deletedImages) process.stdout.write(`Untagged: ${ref}\n`);
    for (const layer of result.deletedLayers) process.stdout.write(`Deleted layer: ${layer}\n`);
    if (args.cacheSize !== undefined) {
      const budget = parseSize(args.cacheSize);
      if (budget === undefined) throw new UserError(`--cache-size: not a size: ${JSON.stringify(args.cacheSize)} (use e.g. 512M, 20G)`);
      const before = new Map((await store.layers.list()).map((l) => [l.diffId, l.size]));
      // Layers of named images can be evicted: they are extracted again from their blobs.
      for (const layer of await store.evict(budget, { includeNamed: true })) {
        result.freed += before.get(layer) ?? 0;
        process.stdout.write(`Evicted layer: ${layer}\n`);
      }
    }
    process.stdout.write(`Total reclaimed space: ${humanSize(result.freed)}\n`);
  },
};
