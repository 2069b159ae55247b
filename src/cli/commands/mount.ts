import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { resolve } from 'node:path';
import { UserError } from '../../errors.js';
import { serveImage } from '../../image/mount-image.js';
import { setLogLevel } from '../../log.js';
import { notifyParent, startDaemon } from '../../mount/background.js';
import { RunDir, defaultRunDir } from '../../mount/run-dir.js';
import { serveUnion } from '../../mount/serve.js';
import { pullImage } from '../../pull/pull.js';
import { type PlatformSpec, hostPlatform, parsePlatform, platformMatches } from '../../registry/platform.js';
import { openSource } from '../../source/open.js';
import type { Store, StoredImage } from '../../store/store.js';
import { findLocalImage } from '../image-lookup.js';
import { pullProgress } from '../pull-progress.js';
import { type RegistryArgs, sourceContext, withRegistryOptions } from '../registry-option.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';

interface MountArgs extends StoreArgs, RegistryArgs {
  target: string;
  mountpoint?: string;
  lower?: string;
  upper?: string;
  workdir?: string;
  readOnly: boolean;
  name?: string;
  rm: boolean;
  platform?: string;
  quiet: boolean;
  foreground: boolean;
  debug: boolean;
  cacheTimeout: number;
  runDir?: string;
}

export const mountCommand: CommandModule<object, MountArgs> = {
  command: 'mount <target> [mountpoint]',
  describe: 'Mount an image (IMAGE MOUNTPOINT) or a union of directories (--lower DIRS MOUNTPOINT)',
  builder: (y: Argv) =>
    withRegistryOptions(
      withStoreOption(
        y
          .positional('target', { type: 'string', demandOption: true, describe: 'an image reference (pulled if needed), or the mountpoint with --lower' })
          .positional('mountpoint', { type: 'string', describe: 'an empty directory to mount on' })
          .option('lower', { type: 'string', describe: 'mount these directories instead of an image: top first, separated by ":"' })
          .option('upper', { type: 'string', describe: 'writable upper directory (OCI whiteout format); for images: keep the writable layer here' })
          .option('workdir', { type: 'string', describe: 'work directory on the upper\'s filesystem (default: beside the upper)' })
          .option('read-only', { type: 'boolean', default: false, describe: 'mount an image without a writable layer' })
          .option('name', { type: 'string', describe: 'name of the writable layer: kept after unmount, mounted again by the same name' })
          .option('rm', { type: 'boolean', default: false, describe: 'delete the writable layer when the mount ends' })
          .option('platform', { type: 'string', describe: 'os/arch[/variant] when the image must be pulled (default: this host)' })
          .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no pull progress' })
          .option('foreground', { alias: 'f', type: 'boolean', default: false, describe: 'stay attached, logging to stderr' })
          .option('debug', { type: 'boolean', default: false, describe: 'log every operation' })
          .option('cache-timeout', { type: 'number', default: 86400, describe: 'seconds the kernel may cache names and attributes' })
          .option('run-dir', { type: 'string', describe: 'where mount state and logs live (default /run/layerfs)' }),
      ),
    ) as unknown as Argv<MountArgs>,
  handler: async (args: ArgumentsCamelCase<MountArgs>) => {
    if (!Number.isFinite(args.cacheTimeout) || args.cacheTimeout < 0) throw new UserError('--cache-timeout must be a number of seconds >= 0', { exitCode: 2 });
    const runDir = new RunDir(args.runDir ?? defaultRunDir(process.env, process.getuid?.() ?? 0));
    if (args.lower !== undefined) return mountDirectories(args, runDir);
    return mountImage(args, runDir);
  },
};

async function mountDirectories(args: MountArgs, runDir: RunDir): Promise<void> {
  if (args.mountpoint !== undefined) throw new UserError('with --lower, give only the mountpoint (the layers are the --lower directories)', { exitCode: 2 });
  for (const option of ['name', 'platform'] as const) {
    if (args[option] !== undefined) throw new UserError(`--${option} is for image mounts, not --lower`, { exitCode: 2 });
  }
  const mountpoint = resolve(args.target);
  const lowers = args.lower!.split(':').filter((dir) => dir !== '');
  if (!args.foreground) {
    await startDaemon([process.argv[1]!, ...process.argv.slice(2), '--foreground'], runDir.logPath(mountpoint));
    return;
  }
  await serveInForeground(args, runDir, mountpoint, (onReady, logFile) =>
    serveUnion({ stack: { lowers, upper: args.upper, workdir: args.workdir }, mountpoint, runDir, debug: args.debug, cacheTimeout: args.cacheTimeout, logFile, onReady }),
  );
}

async function mountImage(args: MountArgs, runDir: RunDir): Promise<void> {
  if (args.mountpoint === undefined) throw new UserError('name the mountpoint: layerfs mount IMAGE MOUNTPOINT (or --lower DIRS MOUNTPOINT)', { exitCode: 2 });
  if (args.readOnly && (args.name !== undefined || args.upper !== undefined || args.rm)) {
    throw new UserError('--read-only mounts have no writable layer: drop --name, --upper and --rm', { exitCode: 2 });
  }
  if (args.workdir !== undefined) throw new UserError('--workdir is for --lower mounts; an image\'s writable layer has its own', { exitCode: 2 });
  const mountpoint = resolve(args.mountpoint);
  const store = await openStore(args);
  const image = await localOrPulled(store, args);
  const container = args.readOnly ? undefined : await writableLayer(store, image, args);

  if (!args.foreground) {
    // The daemon mounts the writable layer prepared here (by name), so nothing is pulled twice.
    const argv = [process.argv[1]!, ...process.argv.slice(2), '--foreground', '--quiet'];
    if (container !== undefined && args.name === undefined) argv.push('--name', container);
    try {
      await startDaemon(argv, runDir.logPath(mountpoint));
    } catch (err) {
      // A layer made for this mount alone must not outlive its failure.
      if (container !== undefined && args.name === undefined) await store.containers.remove(container).catch(() => undefined);
      throw err;
    }
    if (container !== undefined) process.stdout.write(`${container}\n`);
    return;
  }
  await serveInForeground(args, runDir, mountpoint, (onReady, logFile) =>
    serveImage({ store, image, container, mountpoint, runDir, debug: args.debug, cacheTimeout: args.cacheTimeout, logFile, onReady }),
  );
}

/** The image from the store, pulled first if the store does not have it. */
async function localOrPulled(store: Store, args: MountArgs): Promise<StoredImage> {
  const local = await findLocalImage(store, args.target);
  // A name pulled for another platform than the one asked for is pulled again for that one.
  const wanted = args.platform === undefined ? undefined : parsePlatform(args.platform);
  if (local !== undefined && (wanted === undefined || builtFor(local, wanted))) return local;
  const context = await sourceContext(args);
  const opened = await openSource(args.target, context);
  const progress = pullProgress(process.stderr, args.quiet);
  try {
    const platform = wanted ?? hostPlatform();
    const result = await pullImage(store, opened.source, opened.reference, { platform, strictPlatform: args.platform !== undefined, maxConcurrentDownloads: 3, names: opened.names, onEvent: (e) => progress.onEvent(e) });
    return result.image;
  } finally {
    progress.stop();
    await opened.source.close();
    await context.http.close();
  }
}

/** Whether a stored image runs on `wanted` (an image whose config names no platform is taken as it is). */
function builtFor(image: StoredImage, wanted: PlatformSpec): boolean {
  const { os, architecture } = image.config;
  const variant = (image.config as { variant?: unknown }).variant; // optional in the OCI config, not in our type
  return os === undefined || architecture === undefined || platformMatches(wanted, { os, architecture, ...(typeof variant === 'string' ? { variant } : {}) });
}

/** The writable layer to mount: an existing one by --name, or a new one. */
async function writableLayer(store: Store, image: StoredImage, args: MountArgs): Promise<string> {
  if (args.name !== undefined) {
    const existing = await store.containers.get(args.name);
    if (existing !== undefined) {
      if (existing.image.digest !== image.digest) {
        throw new UserError(`writable layer ${args.name} belongs to image ${existing.image.ref} (${existing.image.digest.slice(0, 19)}), not to ${args.target}`);
      }
      if (args.upper !== undefined && resolve(args.upper) !== existing.upper) {
        throw new UserError(`writable layer ${args.name} keeps its upper directory in ${existing.upper}; drop --upper or give that directory`);
      }
      if (await store.containers.inUse(args.name)) throw new UserError(`writable layer ${args.name} is already mounted${existing.mountpoint === undefined ? '' : ` at ${existing.mountpoint}`}`);
      return existing.name;
    }
  }
  const name = args.name ?? (await store.containers.freshName());
  await store.containers.create({ name, image: { ref: image.refs[0] ?? args.target, digest: image.digest }, upper: args.upper === undefined ? undefined : resolve(args.upper), removeOnUnmount: args.rm });
  return name;
}

/** Serves in this process, telling a waiting parent (if we are its daemon) how it went. */
async function serveInForeground(
  args: MountArgs,
  runDir: RunDir,
  mountpoint: string,
  serve: (onReady: (mountpoint: string) => void, logFile: string | undefined) => Promise<void>,
): Promise<void> {
  setLogLevel(args.debug ? 'debug' : process.env.LAYERFS_DAEMON === '1' ? 'info' : 'warn');
  try {
    await serve((mp) => notifyParent({ type: 'ready', mountpoint: mp }), process.env.LAYERFS_DAEMON === '1' ? runDir.logPath(mountpoint) : undefined);
  } catch (err) {
    notifyParent({ type: 'error', message: err instanceof Error ? err.message : String(err) });
    throw err;
  }
}
