import type { ArgumentsCamelCase, Argv } from 'yargs';
import { UserError } from '../../errors.js';
import { pushImage } from '../../image/push.js';
import { formatReference, parseReference } from '../../registry/reference.js';
import { registrySource } from '../../source/open.js';
import { findLocalImage } from '../image-lookup.js';
import { pullProgress } from '../pull-progress.js';
import { type RegistryArgs, withRegistryOptions } from '../registry-option.js';
import { sourceContext } from '../source-context.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface PushArgs extends StoreArgs, RegistryArgs {
  image: string;
  destination?: string;
  quiet: boolean;
}

/** `layerfs push`: its options and what it does (usage and summary: ./index.ts). */
export const pushCommand: CommandImplementation<PushArgs> = {
  builder: (y: Argv) =>
    withRegistryOptions(
      withStoreOption(
        y
          .positional('image', { type: 'string', demandOption: true })
          .positional('destination', { type: 'string', describe: 'registry reference to push to (default: the image\'s name)' })
          .option('quiet', { alias: 'q', type: 'boolean', default: false }),
      ),
    ) as unknown as Argv<PushArgs>,
  handler: async (args: ArgumentsCamelCase<PushArgs>) => {
    const store = await openStore(args);
    const image = await findLocalImage(store, args.image);
    if (image === undefined) throw new UserError(`no such image in the local store: ${args.image}`);
    const target = parseReference(args.destination ?? (image.refs.includes(args.image) ? args.image : (image.refs[0] ?? args.image)));
    const reference = target.digest ?? target.tag ?? 'latest';
    if (target.digest !== undefined && target.digest !== image.digest) {
      throw new UserError(`${formatReference(target)} names a digest that is not this image's (${image.digest})`, { exitCode: 2 });
    }
    // Sibling repositories on the same registry that our other images came from.
    const mountFrom = [
      ...new Set(
        (await store.listImages())
          .flatMap((i) => i.refs)
          .map((ref) => {
            try {
              return parseReference(ref);
            } catch {
              return undefined;
            }
          })
          .filter((r) => r !== undefined && r.registry === target.registry && r.repository !== target.repository)
          .map((r) => r!.repository),
      ),
    ];
    const context = await sourceContext(args);
    const progress = pullProgress(process.stderr, args.quiet);
    try {
      const client = registrySource(target, context).upstream;
      await pushImage(store, image, client, {
        reference,
        mountFrom,
        onEvent: (event) => {
          if (event.type === 'blob-start') progress.onEvent({ type: 'layer-start', digest: event.digest, size: event.size, action: 'upload' });
          else if (event.type === 'blob-progress') progress.onEvent({ type: 'layer-progress', digest: event.digest, bytes: event.bytes });
          else if (event.type === 'blob-done') progress.onEvent({ type: 'layer-done', digest: event.digest, outcome: event.outcome });
        },
      });
      progress.stop();
      if (!args.quiet) process.stderr.write(`manifest ${reference}: pushed\n`);
    } finally {
      progress.stop();
      await context.http.close();
    }
    process.stdout.write(`${formatReference({ ...target, digest: image.digest, tag: target.digest === undefined ? target.tag : undefined })}\n`);
  },
};
