import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { parseRepository } from '../../registry/reference.js';
import { registrySource } from '../../source/open.js';
import { type RegistryArgs, withRegistryOptions } from '../registry-option.js';
import { sourceContext } from '../source-context.js';

interface TagsArgs extends RegistryArgs {
  repository: string;
}

export const tagsCommand: CommandModule<object, TagsArgs> = {
  command: 'tags <repository>',
  describe: 'List the tags of a repository on its registry',
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
