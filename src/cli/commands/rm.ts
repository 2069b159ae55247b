import type { ArgumentsCamelCase, Argv } from 'yargs';
import { UserError } from '../../errors.js';
import { StoreError } from '../../store/errors.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface RmArgs extends StoreArgs {
  names: string[];
}

/** `layerfs rm`: its options and what it does (usage and summary: ./index.ts). */
export const rmCommand: CommandImplementation<RmArgs> = {
  builder: (y: Argv) => withStoreOption(y.positional('names', { type: 'string', array: true, demandOption: true })) as unknown as Argv<RmArgs>,
  handler: async (args: ArgumentsCamelCase<RmArgs>) => {
    const store = await openStore(args);
    const failures: string[] = [];
    for (const name of args.names) {
      try {
        await store.containers.remove(name);
        process.stdout.write(`${name}\n`);
      } catch (err) {
        if (!(err instanceof StoreError)) throw err;
        failures.push(err.code === 'ERR_STORE_IN_USE' ? `${err.message}; unmount it first` : err.message);
      }
    }
    if (failures.length > 0) throw new UserError(failures.join('\n'));
  },
};
