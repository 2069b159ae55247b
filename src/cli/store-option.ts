import type { Argv } from 'yargs';
import { homedir } from 'node:os';
import { Store } from '../store/store.js';
import { defaultStoreRoot } from '../store/paths.js';

export interface StoreArgs {
  root?: string;
}

/** The `--root` option every store command shares (env LAYERFS_ROOT overrides the default). */
export function withStoreOption<T>(y: Argv<T>): Argv<T & StoreArgs> {
  return y.option('root', {
    type: 'string',
    describe: 'store directory (default /var/lib/layerfs as root, $XDG_DATA_HOME/layerfs otherwise; env LAYERFS_ROOT)',
  }) as Argv<T & StoreArgs>;
}

export function openStore(args: StoreArgs): Promise<Store> {
  return Store.open(args.root ?? defaultStoreRoot(process.env, process.getuid?.() ?? 0, homedir()));
}
