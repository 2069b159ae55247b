import { Readable } from 'node:stream';
import { extractLayer } from '../extract/index.js';
import { ensureLayer, type LayerSpec } from '../image/layers.js';
import type { Digest } from '../oci/digest.js';
import { VerifyError } from '../oci/verify.js';
import { RegistryError } from '../registry/errors.js';
import type { PlatformSpec } from '../registry/platform.js';
import type { ImageSource } from '../source/types.js';
import type { PartialBlob } from '../store/partial-blob.js';
import type { Store, StoredImage } from '../store/store.js';
import { readBlob } from './blob-reader.js';
import { fetchConfig, parseImageConfig, resolveImage } from './resolve.js';

export type LayerOutcome = 'cached' | 'extracted' | 'downloaded';

/** What a pull reports as it goes (the CLI draws progress from these). */
export type PullEvent =
  | { type: 'resolved'; digest: Digest; platform?: string; layers: Array<{ digest: Digest; size: number }> }
  | { type: 'layer-start'; digest: Digest; size: number; action: 'download' | 'extract' | 'cached'; resumedAt?: number }
  | { type: 'layer-source'; digest: Digest; servedBy: string }
  | { type: 'layer-progress'; digest: Digest; bytes: number }
  | { type: 'layer-done'; digest: Digest; outcome: LayerOutcome };

export interface PullOptions {
  platform: PlatformSpec;
  /** Layers fetched at the same time. */
  maxConcurrentDownloads: number;
  /** Names the image gets in the store (canonical references). */
  names: string[];
  onEvent?: (event: PullEvent) => void;
}

export interface PullResult {
  image: StoredImage;
  platform?: string;
  layers: Array<{ digest: Digest; outcome: LayerOutcome }>;
}

/**
 * Pulls an image into the store: resolves the reference (and platform), fetches the config, and
 * makes every layer present, both as a verified blob and extracted, then names the image. A
 * layer's bytes are downloaded once and go to the blob store and the extractor in one pass; what
 * is already in the store is not fetched again. Nothing becomes visible unless verified: an
 * interrupted pull leaves only a partial download, which the next pull resumes.
 */
export async function pullImage(store: Store, source: ImageSource, reference: string, options: PullOptions): Promise<PullResult> {
  const emit = options.onEvent ?? (() => undefined);
  const resolved = await resolveImage(source, reference, options.platform);
  const { parsed } = resolved;
  emit({ type: 'resolved', digest: resolved.manifest.digest, platform: resolved.platform, layers: parsed.layers.map((l) => ({ digest: l.digest, size: l.size })) });

  const configBytes = (await store.blobs.has(parsed.config.digest))
    ? await store.blobs.read(parsed.config.digest)
    : (await fetchConfig(source, parsed.config)).bytes;
  const config = parseImageConfig(configBytes, source.name);
  if (config.rootfs.diff_ids.length !== parsed.layers.length) {
    throw new RegistryError('ERR_SOURCE_INVALID', `${source.name}: the manifest has ${parsed.layers.length} layers but the config ${config.rootfs.diff_ids.length} diff_ids`);
  }
  const specs: LayerSpec[] = parsed.layers.map((layer, i) => ({ digest: layer.digest, diffId: config.rootfs.diff_ids[i]!, mediaType: layer.mediaType, size: layer.size }));
  // The same layer twice in one image is fetched once.
  const unique = [...new Map(specs.map((s) => [s.digest, s])).values()];
  const outcomes = await mapLimit(unique, Math.max(1, options.maxConcurrentDownloads), (spec) => pullLayer(store, source, spec, emit));

  const image = await store.addImage(options.names, resolved.manifest.bytes, configBytes);
  return { image, platform: resolved.platform, layers: unique.map((s, i) => ({ digest: s.digest, outcome: outcomes[i]! })) };
}

/** Makes one layer present as blob and as extracted tree. */
async function pullLayer(store: Store, source: ImageSource, spec: LayerSpec, emit: (e: PullEvent) => void): Promise<LayerOutcome> {
  const done = (outcome: LayerOutcome): LayerOutcome => {
    emit({ type: 'layer-done', digest: spec.digest, outcome });
    return outcome;
  };
  const haveBlob = await store.blobs.has(spec.digest);
  if (await store.layers.has(spec.diffId)) {
    await store.layers.touch(spec.diffId);
    if (haveBlob) {
      emit({ type: 'layer-start', digest: spec.digest, size: spec.size, action: 'cached' });
      return done('cached');
    }
    // Extracted already (the same tar, compressed differently elsewhere): only the blob is missing.
    await downloadBlob(store, source, spec, emit, undefined);
    return done('downloaded');
  }
  if (haveBlob) {
    emit({ type: 'layer-start', digest: spec.digest, size: spec.size, action: 'extract' });
    await ensureLayer(store, spec);
    return done('extracted');
  }
  for (let attempt = 1; ; attempt++) {
    let resumed = false;
    try {
      let downloaded = false;
      const result = await store.layers.ensure(spec.diffId, async ({ treeDir, indexPath }) => {
        await downloadBlob(store, source, spec, emit, async (bytes, partial) => {
          resumed = partial.size > 0;
          downloaded = true;
          await extractLayer(Readable.from(bytes), treeDir, {
            mediaType: spec.mediaType,
            expectedDigest: spec.digest,
            expectedSize: spec.size,
            expectedDiffId: spec.diffId,
            indexPath,
          });
        });
      });
      // Another process extracted it while we waited for its lock: the blob may still be missing.
      if (result === 'existing' && !(await store.blobs.has(spec.digest))) await downloadBlob(store, source, spec, emit, undefined);
      return done(downloaded ? 'downloaded' : 'cached');
    } catch (err) {
      // A resumed download whose old part turned out bad was discarded: one fresh try.
      if (attempt === 1 && resumed && isDigestFailure(err)) continue;
      throw err;
    }
  }
}

/**
 * Downloads a blob into the store, resuming a partial download if there is one. With `consume`,
 * the bytes (resumed part first) also go to `consume` as they arrive, and the blob is committed
 * just before its last byte is handed over, so the consumer's success implies a stored blob.
 */
async function downloadBlob(
  store: Store,
  source: ImageSource,
  spec: LayerSpec,
  emit: (e: PullEvent) => void,
  consume: ((bytes: AsyncIterable<Buffer>, partial: PartialBlob) => Promise<void>) | undefined,
): Promise<void> {
  await store.blobs.download(spec.digest, spec.size, async (partial) => {
    if (await store.blobs.has(spec.digest)) {
      // Another process stored it while we waited for the lock.
      if (consume !== undefined) await consume(Readable.from(store.blobs.open(spec.digest)), partial);
      return;
    }
    emit({ type: 'layer-start', digest: spec.digest, size: spec.size, action: 'download', ...(partial.size > 0 ? { resumedAt: partial.size } : {}) });
    const bytes = downloadStream(store, source, spec, partial, emit);
    if (consume === undefined) {
      for await (const _ of bytes);
    } else {
      await consume(bytes, partial);
    }
  });
}

async function* downloadStream(store: Store, source: ImageSource, spec: LayerSpec, partial: PartialBlob, emit: (e: PullEvent) => void): AsyncGenerator<Buffer> {
  let received = 0;
  for await (const chunk of partial.replay()) {
    received += chunk.length;
    yield chunk;
  }
  emit({ type: 'layer-progress', digest: spec.digest, bytes: received });
  const onServedBy = (servedBy: string) => emit({ type: 'layer-source', digest: spec.digest, servedBy });
  const descriptor = { digest: spec.digest, size: spec.size, mediaType: spec.mediaType };
  for await (const chunk of readBlob(source, descriptor, partial.size, onServedBy)) {
    await partial.append(chunk);
    received += chunk.length;
    emit({ type: 'layer-progress', digest: spec.digest, bytes: received });
    yield chunk;
  }
  await store.blobs.commitDownload(partial);
}

function isDigestFailure(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof VerifyError) return true;
    const code = (e as { code?: unknown }).code;
    if (code === 'ERR_LAYER_DIGEST_MISMATCH' || code === 'ERR_LAYER_DIFFID_MISMATCH' || code === 'ERR_LAYER_SIZE_MISMATCH') return true;
  }
  return false;
}

/** Runs `fn` over `items` with at most `limit` at a time; results in input order; first failure wins. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
  return results;
}
