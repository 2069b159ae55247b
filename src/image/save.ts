import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestHex } from '../oci/digest.js';
import { MediaType, REF_NAME_ANNOTATION } from '../oci/media-types.js';
import type { Store, StoredImage } from '../store/store.js';

const tarStream = createRequire(import.meta.url)('tar-stream') as typeof import('tar-stream');

export type SaveFormat = 'oci-archive' | 'docker-archive';

/**
 * Writes an image as one tar: an OCI image layout (`oci-layout`, `index.json`, `blobs/`), plus for
 * `docker-archive` Docker's `manifest.json` pointing into the same blobs (what `docker save` writes
 * since Docker 25, so both `docker load` and OCI tools read it). Blobs are written as stored, so
 * every digest stays valid.
 */
export async function saveImage(store: Store, image: StoredImage, names: string[], format: SaveFormat, out: Writable): Promise<void> {
  const pack = tarStream.pack();
  const done = pipeline(pack, out);
  const mtime = new Date(0);
  const addBytes = (name: string, bytes: Buffer) =>
    new Promise<void>((resolve, reject) => pack.entry({ name, size: bytes.length, mode: 0o644, mtime }, bytes, (err) => (err ? reject(err) : resolve())));
  const addBlob = async (digest: StoredImage['digest'], size: number) => {
    const entry = pack.entry({ name: `blobs/sha256/${digestHex(digest)}`, size, mode: 0o644, mtime });
    await pipeline(createReadStream(store.blobs.path(digest)), entry);
  };
  try {
    await addBytes('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    const manifestSize = (await store.blobs.size(image.digest)) ?? 0;
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: (names.length > 0 ? names : [undefined]).map((name) => ({
        mediaType: image.manifest.mediaType ?? MediaType.ociManifest,
        digest: image.digest,
        size: manifestSize,
        ...(name === undefined ? {} : { annotations: { 'io.containerd.image.name': name, [REF_NAME_ANNOTATION]: tagOf(name) } }),
      })),
    };
    await addBytes('index.json', Buffer.from(JSON.stringify(index)));
    await addBlob(image.digest, manifestSize);
    await addBlob(image.id, image.manifest.config.size);
    const written = new Set<string>();
    for (const layer of image.layers) {
      if (written.has(layer.digest)) continue;
      written.add(layer.digest);
      await addBlob(layer.digest, layer.size);
    }
    if (format === 'docker-archive') {
      const manifestJson = [
        {
          Config: `blobs/sha256/${digestHex(image.id)}`,
          RepoTags: names.filter((n) => !n.includes('@')),
          Layers: image.layers.map((l) => `blobs/sha256/${digestHex(l.digest)}`),
        },
      ];
      await addBytes('manifest.json', Buffer.from(JSON.stringify(manifestJson)));
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    await done.catch(() => undefined);
    throw err;
  }
  await done;
}

function tagOf(name: string): string {
  const at = name.indexOf('@');
  if (at >= 0) return name.slice(at + 1);
  const slash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  return colon > slash ? name.slice(colon + 1) : 'latest';
}
