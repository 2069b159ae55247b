import type { ArgumentsCamelCase, Argv } from 'yargs';
import { commitContainer } from '../../image/commit.js';
import { whileFrozen } from '../../mount/control.js';
import { RunDir, defaultRunDir } from '../../mount/run-dir.js';
import { parseReference, storeName } from '../../registry/reference.js';
import { UserError } from '../../errors.js';
import { StoreError } from '../../store/errors.js';
import { findContainer } from '../container-lookup.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface CommitArgs extends StoreArgs {
  container: string;
  repository: string;
  message?: string;
  author?: string;
  runDir?: string;
}

/** `layerfs commit`: its options and what it does (usage and summary: ./index.ts). */
export const commitCommand: CommandImplementation<CommitArgs> = {
  builder: (y: Argv) =>
    withStoreOption(
      y
        .positional('container', { type: 'string', demandOption: true, describe: 'writable layer name or mountpoint' })
        .positional('repository', { type: 'string', demandOption: true, describe: 'name of the new image, REPO[:TAG]' })
        .option('message', { alias: 'm', type: 'string', describe: 'commit message (in the image history)' })
        .option('author', { alias: 'a', type: 'string', describe: 'author (e.g. "Jane <jane@example.com>")' })
        .option('run-dir', { type: 'string', describe: 'where mount state lives (default /run/layerfs)' }),
    ) as unknown as Argv<CommitArgs>,
  handler: async (args: ArgumentsCamelCase<CommitArgs>) => {
    const store = await openStore(args);
    const record = await findContainer(store, args.container);
    const target = parseReference(args.repository);
    if (target.digest !== undefined) throw new UserError('name the new image by repository and tag, not by digest', { exitCode: 2 });
    const runDir = new RunDir(args.runDir ?? defaultRunDir(process.env, process.getuid?.() ?? 0));
    const image = await commitContainer(store, record, {
      names: [storeName(target)],
      message: args.message,
      author: args.author,
      // A mounted layer is read while its mount holds every change: all of a change or none of it.
      whileConsistent: async (fn) => {
        let unlock: (() => Promise<void>) | undefined;
        try {
          unlock = await store.containers.lock(record.name); // not mounted: keep it so meanwhile
        } catch (err) {
          if (!(err instanceof StoreError && err.code === 'ERR_STORE_IN_USE')) throw err;
          const current = await store.containers.get(record.name);
          if (current?.mountpoint === undefined) throw err;
          return whileFrozen(runDir.controlPath(current.mountpoint), fn);
        }
        try {
          return await fn();
        } finally {
          await unlock();
        }
      },
    });
    process.stdout.write(`${image.digest}\n`);
  },
};
