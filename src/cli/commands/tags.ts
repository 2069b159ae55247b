import type { ArgumentsCamelCase, Argv } from 'yargs';
import { parseRepository } from '../../registry/reference.js';
import { registrySource } from '../../source/open.js';
import { type RegistryArgs, withRegistryOptions } from '../registry-option.js';
import { sourceContext } from '../source-context.js';
import type { CommandImplementation } from '../lazy-command.js';

interface TagsArgs extends RegistryArgs {
  repository: string;
}

/** `layerfs tags`: its options and what it does (usage and summary: ./index.ts). */
export const tagsCommand: CommandImplementation<TagsArgs> = {
  builder: (y: Argv) =>
    withRegistryOptions(y.positional('repository', { type: 'string', demandOption: true, describe: 'e.g. debian, ghcr.io/org/app' })) as unknown as Argv<TagsArgs>,
  handler: async (args: ArgumentsCamelCase<TagsArgs>) => {
    const repo = parseRepository(args.repository);
    const context = await sourceContext(args);
    try {
      const tags = await registrySource(repo, context).upstream.listTags();
      process.stdout.write(tags.map((t) => `${t}\n`).join(''));
    } finally {
      await context.http.close();
    }
  },
};
