import type { ArgumentsCamelCase, Argv } from 'yargs';
import { UserError } from '../../errors.js';
import { parseReference, storeName } from '../../registry/reference.js';
import { findLocalImage } from '../image-lookup.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface TagArgs extends StoreArgs {
  source: string;
  target: string;
}

/** `layerfs tag`: its options and what it does (usage and summary: ./index.ts). */
export const tagCommand: CommandImplementation<TagArgs> = {
  builder: (y: Argv) =>
    withStoreOption(y.positional('source', { type: 'string', demandOption: true }).positional('target', { type: 'string', demandOption: true })) as unknown as Argv<TagArgs>,
  handler: async (args: ArgumentsCamelCase<TagArgs>) => {
    const store = await openStore(args);
    const image = await findLocalImage(store, args.source);
    if (image === undefined) throw new UserError(`no such image in the local store: ${args.source}`);
    const target = parseReference(args.target);
    if (target.digest !== undefined) throw new UserError('a tag names an image by tag, not by digest', { exitCode: 2 });
    await store.images.put(storeName(target), { mediaType: image.manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json', digest: image.digest, size: (await store.blobs.size(image.digest)) ?? 0 });
  },
};
