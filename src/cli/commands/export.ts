import type { ArgumentsCamelCase, Argv } from 'yargs';
import { UserError } from '../../errors.js';
import { exportRootfs } from '../../image/export.js';
import { saveImage } from '../../image/save.js';
import { layerStack } from '../../image/layers.js';
import { findContainer, imageOf } from '../container-lookup.js';
import { findLocalImage } from '../image-lookup.js';
import { writeOutput } from '../output-file.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface ExportArgs extends StoreArgs {
  source: string;
  file: string;
}

/** `layerfs export`: its options and what it does (usage and summary: ./index.ts). */
export const exportCommand: CommandImplementation<ExportArgs> = {
  builder: (y: Argv) =>
    withStoreOption(y.positional('source', { type: 'string', demandOption: true }).positional('file', { type: 'string', demandOption: true })) as unknown as Argv<ExportArgs>,
  handler: async (args: ArgumentsCamelCase<ExportArgs>) => {
    const store = await openStore(args);
    let image = await findLocalImage(store, args.source);
    let upper: string | undefined;
    if (image === undefined) {
      const record = await findContainer(store, args.source).catch(() => {
        throw new UserError(`no image or writable layer named ${args.source} in the local store`);
      });
      image = await imageOf(store, record);
      upper = record.upper;
    }
    // Leased first, so no eviction removes a layer while it is being read.
    const lease = await store.leases.create({ diffIds: image.layers.map((l) => l.diffId), image: image.digest, purpose: `export ${args.source}` });
    try {
      const lowers = await layerStack(store, image);
      await writeOutput(args.file, (out) => exportRootfs(lowers, upper, out));
    } finally {
      await lease.release();
    }
  },
};

interface SaveArgs extends StoreArgs {
  image: string;
  file: string;
  format: 'oci-archive' | 'docker-archive';
}

/** `layerfs save`: its options and what it does (usage and summary: ./index.ts). */
export const saveCommand: CommandImplementation<SaveArgs> = {
  builder: (y: Argv) =>
    withStoreOption(
      y
        .positional('image', { type: 'string', demandOption: true })
        .positional('file', { type: 'string', demandOption: true })
        .option('format', { choices: ['oci-archive', 'docker-archive'] as const, default: 'oci-archive' as const }),
    ) as unknown as Argv<SaveArgs>,
  handler: async (args: ArgumentsCamelCase<SaveArgs>) => {
    const store = await openStore(args);
    const image = await findLocalImage(store, args.image);
    if (image === undefined) throw new UserError(`no such image in the local store: ${args.image}`);
    const names = image.refs.includes(args.image) ? [args.image] : image.refs;
    await writeOutput(args.file, (out) => saveImage(store, image, names, args.format, out));
  },
};
