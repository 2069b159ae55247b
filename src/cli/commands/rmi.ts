import type { ArgumentsCamelCase, Argv } from 'yargs';
import { UserError } from '../../errors.js';
import { StoreError } from '../../store/errors.js';
import { canonicalName } from '../image-lookup.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface RmiArgs extends StoreArgs {
  images: string[];
  force: boolean;
}

/** `layerfs rmi`: its options and what it does (usage and summary: ./index.ts). */
export const rmiCommand: CommandImplementation<RmiArgs> = {
  builder: (y: Argv) =>
    withStoreOption(
      y
        .positional('images', { type: 'string', array: true, demandOption: true })
        .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'remove even if a running mount uses it' }),
    ) as unknown as Argv<RmiArgs>,
  handler: async (args: ArgumentsCamelCase<RmiArgs>) => {
    const store = await openStore(args);
    const failures: string[] = [];
    for (const name of args.images) {
      try {
        const known = (await store.findImage(name)) !== undefined;
        const { untagged, deletedLayers } = await store.removeImage(known ? name : (canonicalName(name) ?? name), { force: args.force });
        for (const ref of untagged) process.stdout.write(`Untagged: ${ref}\n`);
        for (const layer of deletedLayers) process.stdout.write(`Deleted: ${layer}\n`);
      } catch (err) {
        if (!(err instanceof StoreError)) throw err;
        failures.push(err.message);
      }
    }
    if (failures.length > 0) throw new UserError(failures.join('\n'));
  },
};
