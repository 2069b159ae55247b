import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { UserError } from '../../errors.js';
import { StoreError } from '../../store/errors.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';

interface RmArgs extends StoreArgs {
  names: string[];
}

export const rmCommand: CommandModule<object, RmArgs> = {
  command: 'rm <names..>',
  describe: 'Delete writable layers that are not mounted',
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
