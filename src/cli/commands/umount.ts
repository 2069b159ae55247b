import type { ArgumentsCamelCase, Argv } from 'yargs';
import { resolve } from 'node:path';
import { RunDir, defaultRunDir } from '../../mount/run-dir.js';
import { unmount } from '../../mount/unmount.js';
import type { CommandImplementation } from '../lazy-command.js';

interface UmountArgs {
  mountpoint: string;
  lazy: boolean;
  runDir?: string;
}

/** `layerfs umount`: its options and what it does (usage and summary: ./index.ts). */
export const umountCommand: CommandImplementation<UmountArgs> = {
  builder: (y: Argv) =>
    y
      .positional('mountpoint', { type: 'string', demandOption: true })
      .option('lazy', { alias: 'l', type: 'boolean', default: false, describe: 'detach even if busy' })
      .option('run-dir', { type: 'string', describe: 'where mount state lives (default /run/layerfs)' }) as unknown as Argv<UmountArgs>,
  handler: async (args: ArgumentsCamelCase<UmountArgs>) => {
    const runDir = new RunDir(args.runDir ?? defaultRunDir(process.env, process.getuid?.() ?? 0));
    const how = await unmount(resolve(args.mountpoint), { runDir, lazy: args.lazy });
    if (how === 'stale') process.stderr.write(`layerfs: cleared stale mount ${resolve(args.mountpoint)}\n`);
  },
};
