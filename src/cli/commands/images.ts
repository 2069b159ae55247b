import type { ArgumentsCamelCase, Argv } from 'yargs';
import { humanAge, humanSize, splitRef, table } from '../format.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface ImagesArgs extends StoreArgs {
  digests: boolean;
  format: 'table' | 'json';
}

/** `layerfs images`: its options and what it does (usage and summary: ./index.ts). */
export const imagesCommand: CommandImplementation<ImagesArgs> = {
  builder: (y: Argv) =>
    withStoreOption(
      y
        .option('digests', { type: 'boolean', default: false, describe: 'show manifest digests' })
        .option('format', { choices: ['table', 'json'] as const, default: 'table' as const }),
    ) as unknown as Argv<ImagesArgs>,
  handler: async (args: ArgumentsCamelCase<ImagesArgs>) => {
    const store = await openStore(args);
    const rows = [];
    for (const image of await store.listImages()) {
      const size = await store.imageSize(image);
      for (const ref of image.refs) {
        const { repository, tag } = splitRef(ref);
        rows.push({ repository, tag, digest: image.digest, id: image.id, created: image.config.created, size });
      }
    }
    rows.sort((a, b) => a.repository.localeCompare(b.repository) || a.tag.localeCompare(b.tag));
    if (args.format === 'json') {
      process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      return;
    }
    const header = ['REPOSITORY', 'TAG', ...(args.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'];
    process.stdout.write(
      table(
        header,
        rows.map((r) => [r.repository, r.tag, ...(args.digests ? [r.digest] : []), r.id.slice(7, 19), humanAge(r.created), humanSize(r.size)]),
      ),
    );
  },
};
