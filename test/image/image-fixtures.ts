// Images built in code and put into a store the way a pull will: blobs ingested (verified), layers
// extracted from them, then the manifest and config named.
import { Readable } from 'node:stream';
import { type Digest, sha256 } from '../../src/oci/digest.js';
import { ensureLayer } from '../../src/image/layers.js';
import type { Store } from '../../src/store/store.js';
import { type EntrySpec, gzip, packTar } from '../helpers/tar-builder.js';

export interface BuiltImage {
  manifest: Buffer;
  config: Buffer;
  layers: Array<{ blob: Buffer; digest: Digest; diffId: Digest; tar: Buffer }>;
}

/** Layers bottom first, each a list of tar entries; gzip-compressed like most registries serve. */
export async function buildImage(layers: EntrySpec[][], created = '2026-11-01T00:00:00Z'): Promise<BuiltImage> {
  const built = [];
  for (const entries of layers) {
    const tar = await packTar(entries);
    const blob = gzip(tar);
    built.push({ blob, digest: sha256(blob), diffId: sha256(tar), tar });
  }
  const config = Buffer.from(
    JSON.stringify({ created, architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: built.map((l) => l.diffId) } }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: built.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.blob.length })),
    }),
  );
  return { manifest, config, layers: built };
}

export async function storeImage(store: Store, ref: string, image: BuiltImage): Promise<Digest> {
  for (const layer of image.layers) {
    await store.blobs.ingest(Readable.from([layer.blob]), { digest: layer.digest, size: layer.blob.length });
    await ensureLayer(store, { digest: layer.digest, diffId: layer.diffId, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: layer.blob.length });
  }
  return (await store.addImage([ref], image.manifest, image.config)).digest;
}
