import type { ArgumentsCamelCase, Argv } from 'yargs';
import { resolve } from 'node:path';
import { UserError } from '../../errors.js';
import { setLogLevel } from '../../log.js';
import { type PendingDaemon, spawnDaemon, takePrestartedDaemon } from '../../mount/background.js';
import { RunDir, defaultRunDir } from '../../mount/run-dir.js';
import { type PlatformSpec, hostPlatform, parsePlatform, platformMatches } from '../../registry/platform.js';
import type { Store, StoredImage } from '../../store/store.js';
import { findLocalImage } from '../image-lookup.js';
import { type RegistryArgs, withRegistryOptions } from '../registry-option.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

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
  passthrough?: boolean;
  busyPoll?: number;
  runDir?: string;
}

/** `layerfs mount`: its options and what it does (usage and summary: ./index.ts). */
export const mountCommand: CommandImplementation<MountArgs> = {
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
          .option('passthrough', {
            type: 'boolean',
            describe:
              'let the kernel read lower files itself (Linux 6.9+, as root); default: on for read-only mounts. On a writable mount a descriptor opened that way before a copy-up keeps reading the lower file',
          })
          .option('busy-poll', {
            type: 'number',
            describe: 'microseconds the daemon polls for the next request before sleeping (default 200 with 2+ CPUs; 0: never). Cuts the wake-up latency of each request at the cost of some CPU',
          })
          .option('run-dir', { type: 'string', describe: 'where mount state and logs live (default /run/layerfs)' }),
      ),
    ) as unknown as Argv<MountArgs>,
  handler: async (args: ArgumentsCamelCase<MountArgs>) => {
    // Started by main.ts before the arguments were parsed; this command serves it or lets it go.
    const prestarted = takePrestartedDaemon();
    const daemon = args.foreground ? undefined : (prestarted ?? spawnDaemon());
    if (args.foreground) prestarted?.cancel();
    try {
      if (!Number.isFinite(args.cacheTimeout) || args.cacheTimeout < 0) throw new UserError('--cache-timeout must be a number of seconds >= 0', { exitCode: 2 });
      if (args.busyPoll !== undefined && !(Number.isInteger(args.busyPoll) && args.busyPoll >= 0 && args.busyPoll <= 1_000_000)) {
        throw new UserError('--busy-poll must be a whole number of microseconds from 0 to 1000000', { exitCode: 2 });
      }
      const runDir = new RunDir(args.runDir ?? defaultRunDir(process.env, process.getuid?.() ?? 0));
      if (args.lower !== undefined) return await mountDirectories(args, runDir, daemon);
      return await mountImage(args, runDir, daemon);
    } catch (err) {
      daemon?.cancel();
      throw err;
    }
  },
};

async function mountDirectories(args: MountArgs, runDir: RunDir, daemon: PendingDaemon | undefined): Promise<void> {
  if (args.mountpoint !== undefined) throw new UserError('with --lower, give only the mountpoint (the layers are the --lower directories)', { exitCode: 2 });
  for (const option of ['name', 'platform'] as const) {
    if (args[option] !== undefined) throw new UserError(`--${option} is for image mounts, not --lower`, { exitCode: 2 });
  }
  const mountpoint = resolve(args.target);
  const stack = {
    lowers: args.lower!.split(':').filter((dir) => dir !== '').map((dir) => resolve(dir)),
    upper: args.upper === undefined ? undefined : resolve(args.upper),
    workdir: args.workdir === undefined ? undefined : resolve(args.workdir),
  };
  if (daemon !== undefined) {
    await daemon.serve({ kind: 'union', stack, upperFormat: 'oci', mountpoint, runDir: runDir.root, debug: args.debug, cacheTimeout: args.cacheTimeout, passthrough: args.passthrough, busyPoll: args.busyPoll });
    return;
  }
  setLogLevel(args.debug ? 'debug' : 'warn');
  const { serveUnion } = await import('../../mount/serve.js');
  await serveUnion({ stack, mountpoint, runDir, debug: args.debug, cacheTimeout: args.cacheTimeout, passthrough: args.passthrough, busyPoll: args.busyPoll });
}

async function mountImage(args: MountArgs, runDir: RunDir, daemon: PendingDaemon | undefined): Promise<void> {
  if (args.mountpoint === undefined) throw new UserError('name the mountpoint: layerfs mount IMAGE MOUNTPOINT (or --lower DIRS MOUNTPOINT)', { exitCode: 2 });
  if (args.readOnly && (args.name !== undefined || args.upper !== undefined || args.rm)) {
    throw new UserError('--read-only mounts have no writable layer: drop --name, --upper and --rm', { exitCode: 2 });
  }
  if (args.workdir !== undefined) throw new UserError('--workdir is for --lower mounts; an image\'s writable layer has its own', { exitCode: 2 });
  const mountpoint = resolve(args.mountpoint);
  let store: Store | undefined;
  let madeHere: string | undefined;
  try {
    store = await openStore(args);
    const image = await localOrPulled(store, args);
    const container = args.readOnly ? undefined : await writableLayer(store, image, args);
    if (container !== undefined && args.name === undefined) madeHere = container;
    if (daemon === undefined) {
      setLogLevel(args.debug ? 'debug' : 'warn');
      const { serveImage } = await import('../../image/mount-image.js');
      await serveImage({ store, image, container, mountpoint, runDir, debug: args.debug, cacheTimeout: args.cacheTimeout, passthrough: args.passthrough, busyPoll: args.busyPoll });
      return;
    }
    await daemon.serve({
      kind: 'image',
      storeRoot: resolve(store.paths.root),
      image: { digest: image.digest, refs: image.refs },
      container,
      mountpoint,
      runDir: runDir.root,
      debug: args.debug,
      cacheTimeout: args.cacheTimeout,
      passthrough: args.passthrough,
      busyPoll: args.busyPoll,
    });
    if (container !== undefined) process.stdout.write(`${container}\n`);
  } catch (err) {
    // A layer made for this mount alone must not outlive its failure.
    if (daemon !== undefined && madeHere !== undefined) await store?.containers.remove(madeHere).catch(() => undefined);
    throw err;
  }
}

/** The image from the store, pulled first if the store does not have it. */
async function localOrPulled(store: Store, args: MountArgs): Promise<StoredImage> {
  const local = await findLocalImage(store, args.target);
  // A name pulled for another platform than the one asked for is pulled again for that one.
  const wanted = args.platform === undefined ? undefined : parsePlatform(args.platform);
  if (local !== undefined && (wanted === undefined || builtFor(local, wanted))) return local;
  // Loaded only when a pull is needed: a mount of a cached image should not pay for it.
  const { pullFromCommand } = await import('../pull-from-command.js');
  const pulled = await pullFromCommand(store, args, {
    target: args.target,
    platform: wanted ?? hostPlatform(),
    strictPlatform: args.platform !== undefined,
    maxConcurrentDownloads: 3,
    quiet: args.quiet,
  });
  return pulled.image;
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
