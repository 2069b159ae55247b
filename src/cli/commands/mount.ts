import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { resolve } from 'node:path';
import { setLogLevel } from '../../log.js';
import { notifyParent, startDaemon } from '../../mount/background.js';
import { RunDir, defaultRunDir } from '../../mount/run-dir.js';
import { serveUnion } from '../../mount/serve.js';
import { UserError } from '../../errors.js';

interface MountArgs {
  mountpoint: string;
  lower: string;
  upper?: string;
  workdir?: string;
  foreground: boolean;
  debug: boolean;
  cacheTimeout: number;
  runDir?: string;
}

export const mountCommand: CommandModule<object, MountArgs> = {
  command: 'mount <mountpoint>',
  describe: 'Mount a union of layer directories (copy-up writes to --upper; read-only without it)',
  builder: (y: Argv) =>
    y
      .positional('mountpoint', { type: 'string', demandOption: true, describe: 'an empty directory to mount on' })
      .option('lower', { type: 'string', demandOption: true, describe: 'lower directories, top first, separated by ":"' })
      .option('upper', { type: 'string', describe: 'writable upper directory (OCI whiteout format)' })
      .option('workdir', { type: 'string', describe: 'work directory on the upper\'s filesystem (default: beside the upper)' })
      .option('foreground', { alias: 'f', type: 'boolean', default: false, describe: 'stay attached, logging to stderr' })
      .option('debug', { type: 'boolean', default: false, describe: 'log every operation' })
      .option('cache-timeout', { type: 'number', default: 86400, describe: 'seconds the kernel may cache names and attributes' })
      .option('run-dir', { type: 'string', describe: 'where mount state and logs live (default /run/layerfs)' }) as unknown as Argv<MountArgs>,
  handler: async (args: ArgumentsCamelCase<MountArgs>) => {
    const runDir = new RunDir(args.runDir ?? defaultRunDir(process.env, process.getuid?.() ?? 0));
    const lowers = args.lower.split(':').filter((dir) => dir !== '');
    if (!Number.isFinite(args.cacheTimeout) || args.cacheTimeout < 0) throw new UserError('--cache-timeout must be a number of seconds >= 0');
    const mountpoint = resolve(args.mountpoint);

    if (!args.foreground) {
      const argv = [process.argv[1]!, ...process.argv.slice(2), '--foreground'];
      const logFile = runDir.logPath(mountpoint);
      await startDaemon(argv, logFile);
      return;
    }
    setLogLevel(args.debug ? 'debug' : process.env.LAYERFS_DAEMON === '1' ? 'info' : 'warn');
    try {
      await serveUnion({
        stack: { lowers, upper: args.upper, workdir: args.workdir },
        mountpoint,
        runDir,
        debug: args.debug,
        cacheTimeout: args.cacheTimeout,
        logFile: process.env.LAYERFS_DAEMON === '1' ? runDir.logPath(mountpoint) : undefined,
        onReady: (mp) => notifyParent({ type: 'ready', mountpoint: mp }),
      });
    } catch (err) {
      notifyParent({ type: 'error', message: err instanceof Error ? err.message : String(err) });
      throw err;
    }
  },
};
