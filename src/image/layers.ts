import type { Digest } from '../oci/digest.js';
import { log } from '../log.js';
import type { Store, StoredImage } from '../store/store.js';

export interface LayerSpec {
  /** Digest of the compressed blob (in the store's blobs). */
  digest: Digest;
  /** sha256 of the uncompressed tar (the image config's rootfs.diff_ids). */
  diffId: Digest;
  mediaType: string;
  size: number;
}

/**
 * Makes sure a layer is extracted in the store, from its blob (which must be stored and is
 * re-verified while it streams). Processes that race on one layer extract it once.
 */
export async function ensureLayer(store: Store, layer: LayerSpec): Promise<'existing' | 'created'> {
  return store.layers.ensure(layer.diffId, async ({ treeDir, indexPath }) => {
    // Loaded here: a mount daemon needs the extractor (and zlib, worker threads) only for a layer
    // evicted since the pull, and its start-up is on the path of every mount.
    const { extractLayer } = await import('../extract/index.js');
    await extractLayer(store.blobs.open(layer.digest), treeDir, {
      mediaType: layer.mediaType,
      expectedDigest: layer.digest,
      expectedSize: layer.size,
      expectedDiffId: layer.diffId,
      indexPath,
    });
  });
}

/**
 * An image's extracted layer directories as a union stack: top first (the manifest lists them
 * bottom first), each layer once at its topmost place, evicted ones extracted again from their
 * blobs. The caller should hold a lease on the layers.
 */
export async function layerStack(store: Store, image: StoredImage): Promise<string[]> {
  for (const layer of image.layers) {
    if ((await ensureLayer(store, layer)) === 'created') log.info(`layer ${layer.diffId} extracted again from its blob`);
  }
  const dirs = [...image.layers].reverse().map((l) => store.layers.treePath(l.diffId));
  return dirs.filter((dir, i) => dirs.indexOf(dir) === i);
}
