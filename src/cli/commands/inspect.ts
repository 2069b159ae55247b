import type { ArgumentsCamelCase, Argv } from 'yargs';
import { UserError } from '../../errors.js';
import { fetchConfig, resolveImage } from '../../pull/resolve.js';
import { hostPlatform, parsePlatform } from '../../registry/platform.js';
import { openSource } from '../../source/open.js';
import { findLocalImage } from '../image-lookup.js';
import { type RegistryArgs, withRegistryOptions } from '../registry-option.js';
import { sourceContext } from '../source-context.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface InspectArgs extends StoreArgs, RegistryArgs {
  image: string;
  remote: boolean;
  platform?: string;
}

/** `layerfs inspect`: its options and what it does (usage and summary: ./index.ts). */
export const inspectCommand: CommandImplementation<InspectArgs> = {
  builder: (y: Argv) =>
    withRegistryOptions(
      withStoreOption(
        y
          .positional('image', { type: 'string', demandOption: true })
          .option('remote', { type: 'boolean', default: false, describe: 'ask the registry (or oci:/docker-archive: source) instead of the local store' })
          .option('platform', { type: 'string', describe: 'os/arch[/variant] for --remote multi-platform images (default: this host)' }),
      ),
    ) as unknown as Argv<InspectArgs>,
  handler: async (args: ArgumentsCamelCase<InspectArgs>) => {
    const report = args.remote ? await inspectRemote(args) : await inspectLocal(args);
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  },
};

async function inspectLocal(args: InspectArgs): Promise<unknown> {
  const store = await openStore(args);
  const image = await findLocalImage(store, args.image);
  if (image === undefined) throw new UserError(`no such image in the local store: ${args.image} (pull it, or use --remote)`);
  return {
    names: image.refs,
    digest: image.digest,
    id: image.id,
    mediaType: image.manifest.mediaType,
    manifest: image.manifest,
    config: image.config,
    layers: image.layers,
  };
}

async function inspectRemote(args: InspectArgs): Promise<unknown> {
  const platform = args.platform === undefined ? hostPlatform() : parsePlatform(args.platform);
  const context = await sourceContext(args);
  const opened = await openSource(args.image, context);
  try {
    const resolved = await resolveImage(opened.source, opened.reference, platform);
    const { config } = await fetchConfig(opened.source, resolved.parsed.config);
    return {
      name: opened.names[0],
      digest: resolved.manifest.digest,
      mediaType: resolved.manifest.mediaType,
      ...(resolved.index === undefined ? {} : { index: { digest: resolved.index.digest, mediaType: resolved.index.mediaType, platform: resolved.platform } }),
      manifest: resolved.parsed,
      config,
      layers: resolved.parsed.layers.map((l, i) => ({ digest: l.digest, diffId: config.rootfs.diff_ids[i], mediaType: l.mediaType, size: l.size })),
    };
  } finally {
    await opened.source.close();
    await context.http.close();
  }
}
