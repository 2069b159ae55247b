import type { ArgumentsCamelCase, Argv } from 'yargs';
import { computeChanges } from '../../image/changes.js';
import { layerStack } from '../../image/layers.js';
import { findContainer, imageOf } from '../container-lookup.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface DiffArgs extends StoreArgs {
  container: string;
  format: 'text' | 'json';
}

/** `layerfs diff`: its options and what it does (usage and summary: ./index.ts). */
export const diffCommand: CommandImplementation<DiffArgs> = {
  builder: (y: Argv) =>
    withStoreOption(
      y
        .positional('container', { type: 'string', demandOption: true })
        .option('format', { choices: ['text', 'json'] as const, default: 'text' as const }),
    ) as unknown as Argv<DiffArgs>,
  handler: async (args: ArgumentsCamelCase<DiffArgs>) => {
    const store = await openStore(args);
    const record = await findContainer(store, args.container);
    const lowers = await layerStack(store, await imageOf(store, record));
    const changes = await computeChanges(lowers, record.upper);
    if (args.format === 'json') process.stdout.write(JSON.stringify(changes, null, 2) + '\n');
    else process.stdout.write(changes.map((c) => `${c.kind} ${c.path}\n`).join(''));
  },
};
