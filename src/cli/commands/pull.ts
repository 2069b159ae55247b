import type { ArgumentsCamelCase, Argv } from 'yargs';
import { UserError } from '../../errors.js';
import { hostPlatform, parsePlatform } from '../../registry/platform.js';
import { defaultCacheBudget, parseSize } from '../../store/budget.js';
import { humanSize } from '../format.js';
import { pullFromCommand } from '../pull-from-command.js';
import { type RegistryArgs, withRegistryOptions } from '../registry-option.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface PullArgs extends StoreArgs, RegistryArgs {
  image: string;
  platform?: string;
  quiet: boolean;
  maxConcurrentDownloads: number;
  cacheSize?: string;
}

/** `layerfs pull`: its options and what it does (usage and summary: ./index.ts). */
export const pullCommand: CommandImplementation<PullArgs> = {
  builder: (y: Argv) =>
    withRegistryOptions(
      withStoreOption(
        y
          .positional('image', { type: 'string', demandOption: true, describe: 'e.g. debian:12, ghcr.io/o/app@sha256:…, oci:./layout:1.0' })
          .option('platform', { type: 'string', describe: 'os/arch[/variant] to pick from a multi-platform image (default: this host)' })
          .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'print only the digest' })
          .option('max-concurrent-downloads', { type: 'number', default: 3, describe: 'layers downloaded at once' })
          .option('cache-size', { type: 'string', describe: 'after the pull, evict unused layers beyond SIZE (default: a quarter of the disk)' }),
      ),
    ) as unknown as Argv<PullArgs>,
  handler: async (args: ArgumentsCamelCase<PullArgs>) => {
    if (!Number.isInteger(args.maxConcurrentDownloads) || args.maxConcurrentDownloads < 1) {
      throw new UserError('--max-concurrent-downloads must be a whole number of at least 1', { exitCode: 2 });
    }
    const platform = args.platform === undefined ? hostPlatform() : parsePlatform(args.platform);
    const budget = args.cacheSize === undefined ? undefined : parseSize(args.cacheSize);
    if (args.cacheSize !== undefined && budget === undefined) throw new UserError(`--cache-size: not a size: ${JSON.stringify(args.cacheSize)} (use e.g. 512M, 20G)`, { exitCode: 2 });
    const store = await openStore(args);
    const result = await pullFromCommand(store, args, {
      target: args.image,
      platform,
      strictPlatform: args.platform !== undefined,
      maxConcurrentDownloads: args.maxConcurrentDownloads,
      quiet: args.quiet,
    });
    const evicted = await store.evict(budget ?? (await defaultCacheBudget(store.paths.root)));
    if (!args.quiet) {
      if (evicted.length > 0) process.stderr.write(`evicted ${evicted.length} unused layer(s) to stay within the cache budget\n`);
      const fetched = result.layers.filter((l) => l.outcome === 'downloaded').length;
      process.stderr.write(`${result.names.join(', ')}: ${fetched} of ${result.layers.length} layers downloaded, ${humanSize(await store.imageSize(result.image))} on disk\n`);
    }
    process.stdout.write(`${result.image.digest}\n`);
  },
};
