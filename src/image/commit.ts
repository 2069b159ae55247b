import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { sha256 } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import type { ImageConfig } from '../oci/types.js';
import { StoreError } from '../store/errors.js';
import type { ContainerRecord } from '../store/containers.js';
import type { Store, StoredImage } from '../store/store.js';
import { writeLayerTar } from './layer-tar.js';

export interface CommitOptions {
  /** Names for the new image (canonical references). */
  names: string[];
  message?: string;
  author?: string;
  /** Runs the tar of the upper while the mount (if any) is frozen. */
  whileConsistent: <T>(fn: () => Promise<T>) => Promise<T>;
  now?: Date;
}

/**
 * Turns a writable layer into a new image: the upper directory becomes one more tar+gzip layer
 * (OCI markers for deletions and opaque dirs; same content gives the same digest), on top of the
 * parent's layers, with the parent's config settings, the new diffID and a history entry, in the
 * parent's manifest format (OCI or Docker).
 */
export async function commitContainer(store: Store, record: ContainerRecord, options: CommitOptions): Promise<StoredImage> {
  const parent = await store.image(record.image.digest).catch((err: unknown) => {
    if (err instanceof StoreError && err.code === 'ERR_STORE_NOT_FOUND') {
      throw new StoreError('ERR_STORE_NOT_FOUND', `the image of writable layer ${record.name} (${record.image.ref}, ${record.image.digest}) is no longer in the store; pull it again to commit`);
    }
    throw err;
  });
  const layer = await store.temp.withDir('commit', async (dir) => {
    const file = join(dir, 'layer.tar.gz');
    const out = createWriteStream(file);
    const result = await options.whileConsistent(() => writeLayerTar(record.upper, out));
    await finished(out); // writeLayerTar ends it
    await store.blobs.adopt(file, result.digest);
    return result;
  });

  const docker = parent.manifest.mediaType === MediaType.dockerManifest;
  const created = (options.now ?? new Date()).toISOString();
  const config: ImageConfig & { author?: string } = structuredClone(parent.config);
  config.created = created;
  if (options.author !== undefined) config.author = options.author;
  config.rootfs = { type: 'layers', diff_ids: [...parent.config.rootfs.diff_ids, layer.diffId] };
  config.history = [
    ...(parent.config.history ?? []),
    {
      created,
      created_by: 'layerfs commit',
      ...(options.author === undefined ? {} : { author: options.author }),
      ...(options.message === undefined ? {} : { comment: options.message }),
    },
  ];
  const configBytes = Buffer.from(JSON.stringify(config));
  const manifest = {
    schemaVersion: 2,
    mediaType: docker ? MediaType.dockerManifest : MediaType.ociManifest,
    config: { mediaType: docker ? MediaType.dockerConfig : MediaType.ociConfig, digest: sha256(configBytes), size: configBytes.length },
    layers: [
      ...parent.manifest.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      { mediaType: docker ? MediaType.dockerLayerGzip : MediaType.ociLayerGzip, digest: layer.digest, size: layer.size },
    ],
  };
  return store.addImage(options.names, Buffer.from(JSON.stringify(manifest)), configBytes);
}
