import { promises as fsp } from 'node:fs';
import { mapLimit } from '../concurrency.js';
import type { Digest } from '../oci/digest.js';
import type { RegistryClient } from '../registry/client.js';
import { type UploadOutcome, putManifest, uploadBlob } from '../registry/upload.js';
import { StoreError } from '../store/errors.js';
import type { Store, StoredImage } from '../store/store.js';

export type PushEvent =
  | { type: 'blob-start'; digest: Digest; size: number }
  | { type: 'blob-progress'; digest: Digest; bytes: number }
  | { type: 'blob-done'; digest: Digest; outcome: UploadOutcome }
  | { type: 'manifest'; reference: string; digest: Digest };

export interface PushOptions {
  /** Tag (or the manifest digest) to push the manifest under. */
  reference: string;
  /** Other repositories of the same registry that may already hold some blobs. */
  mountFrom?: string[];
  maxConcurrentUploads?: number;
  chunkSize?: number;
  onEvent?: (event: PushEvent) => void;
}

/**
 * Uploads an image from the local store: every layer blob and the config (skipping what the
 * registry has, mounting from sibling repositories where it can), then the manifest, last, so
 * the image never appears on the registry with content missing.
 */
export async function pushImage(store: Store, image: StoredImage, client: RegistryClient, options: PushOptions): Promise<Digest> {
  const emit = options.onEvent ?? (() => undefined);
  const blobs = [...new Map([...image.layers.map((l) => [l.digest, l.size] as const), [image.id, image.manifest.config.size] as const]).entries()];
  for (const [digest] of blobs) {
    if (!(await store.blobs.has(digest))) {
      throw new StoreError('ERR_STORE_NOT_FOUND', `blob ${digest} of ${image.refs[0] ?? image.digest} is missing from the store; pull the image again`);
    }
  }
  await mapLimit(blobs, options.maxConcurrentUploads ?? 3, async ([digest, size]) => {
    emit({ type: 'blob-start', digest, size });
    const outcome = await uploadBlob(client, { digest, size }, {
      read: (offset, length) => readRange(store.blobs.path(digest), offset, length),
      mountFrom: options.mountFrom,
      chunkSize: options.chunkSize,
      onProgress: (bytes) => emit({ type: 'blob-progress', digest, bytes }),
    });
    emit({ type: 'blob-done', digest, outcome });
  });
  const manifestBytes = await store.blobs.read(image.digest);
  const mediaType = image.manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json';
  await putManifest(client, options.reference, manifestBytes, mediaType);
  emit({ type: 'manifest', reference: options.reference, digest: image.digest });
  return image.digest;
}

async function readRange(path: string, offset: number, length: number): Promise<Buffer> {
  const handle = await fsp.open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await handle.read(buffer, done, length - done, offset + done);
      if (bytesRead === 0) throw new Error(`${path}: shorter than expected`);
      done += bytesRead;
    }
    return buffer;
  } finally {
    await handle.close();
  }
}
