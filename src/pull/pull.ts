import { Readable } from 'node:stream';
import { extractLayer, isLayerError } from '../extract/index.js';
import { ensureLayer, type LayerSpec } from '../image/layers.js';
import type { Digest } from '../oci/digest.js';
import { VerifyError } from '../oci/verify.js';
import { RegistryError } from '../registry/errors.js';
import type { RetryPolicy } from '../registry/http.js';
import { type PlatformSpec, formatPlatform, platformMatches } from '../registry/platform.js';
import type { ImageSource } from '../source/types.js';
import type { PartialBlob } from '../store/partial-blob.js';
import type { MovedName, Store, StoredImage } from '../store/store.js';
import { mapLimit } from '../concurrency.js';
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
  /**
   * The platform was asked for explicitly (--platform): a single-platform image for another
   * platform is refused. Without it the host's platform only picks from an index, as Docker does.
   */
  strictPlatform?: boolean;
  /** Layers fetched at the same time. */
  maxConcurrentDownloads: number;
  /** Names the image gets in the store (canonical references). */
  names: string[];
  onEvent?: (event: PullEvent) => void;
  /** How a blob stream that breaks is resumed (default: DEFAULT_RETRY). */
  retry?: RetryPolicy;
}

export interface PullResult {
  image: StoredImage;
  /** Names this image took over from other images in the store. */
  moved: MovedName[];
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
    : (await fetchConfig(source, parsed.config, options.retry)).bytes;
  const config = parseImageConfig(configBytes, source.name);
  if (options.strictPlatform === true && resolved.index === undefined && config.os !== undefined && config.architecture !== undefined) {
    const have = { os: config.os, architecture: config.architecture, ...(typeof config.variant === 'string' ? { variant: config.variant } : {}) };
    if (!platformMatches(options.platform, have)) {
      throw new RegistryError('ERR_NO_MATCHING_PLATFORM', `${source.name}:${reference} is an image for ${formatPlatform(have)} only, not ${formatPlatform(options.platform)}`);
    }
  }
  if (config.rootfs.diff_ids.length !== parsed.layers.length) {
    throw new RegistryError('ERR_SOURCE_INVALID', `${source.name}: the manifest has ${parsed.layers.length} layers but the config ${config.rootfs.diff_ids.length} diff_ids`);
  }
  const specs: LayerSpec[] = parsed.layers.map((layer, i) => ({ digest: layer.digest, diffId: config.rootfs.diff_ids[i]!, mediaType: layer.mediaType, size: layer.size }));
  // The same layer twice in one image is fetched once.
  const unique = [...new Map(specs.map((s) => [s.digest, s])).values()];
  const outcomes = await mapLimit(unique, Math.max(1, options.maxConcurrentDownloads), (spec) => pullLayer(store, source, spec, emit, options.retry));

  const { moved, ...image } = await store.addImage(options.names, resolved.manifest.bytes, configBytes);
  return { image, moved, platform: resolved.platform, layers: unique.map((s, i) => ({ digest: s.digest, outcome: outcomes[i]! })) };
}

/** Makes one layer present as blob and as extracted tree. */
async function pullLayer(store: Store, source: ImageSource, spec: LayerSpec, emit: (e: PullEvent) => void, retry: RetryPolicy | undefined): Promise<LayerOutcome> {
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
    await downloadBlob(store, source, spec, emit, retry, undefined);
    return done('downloaded');
  }
  if (haveBlob) {
    emit({ type: 'layer-start', digest: spec.digest, size: spec.size, action: 'extract' });
    await ensureLayer(store, spec);
    return done('extracted');
  }
  for (let attempt = 1; ; attempt++) {
    const track: DownloadTrack = { resumed: false, discarded: false };
    try {
      let downloaded = false;
      const result = await store.layers.ensure(spec.diffId, async ({ treeDir, indexPath }) => {
        await downloadBlob(store, source, spec, emit, retry, track, async (bytes, partial) => {
          track.resumed = partial.size > 0;
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
      if (result === 'existing' && !(await store.blobs.has(spec.digest))) await downloadBlob(store, source, spec, emit, retry, undefined);
      return done(downloaded ? 'downloaded' : 'cached');
    } catch (err) {
      // A resumed download whose old part turned out bad was discarded: one fresh try.
      if (attempt === 1 && track.resumed && (isDigestFailure(err) || track.discarded)) continue;
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
  retry: RetryPolicy | undefined,
  track: DownloadTrack | undefined,
  consume?: (bytes: AsyncIterable<Buffer>, partial: PartialBlob) => Promise<void>,
): Promise<void> {
  await store.blobs.download(spec.digest, spec.size, async (partial) => {
    if (await store.blobs.has(spec.digest)) {
      // Another process stored it while we waited for the lock.
      if (consume !== undefined) await consume(Readable.from(store.blobs.open(spec.digest)), partial);
      return;
    }
    emit({ type: 'layer-start', digest: spec.digest, size: spec.size, action: 'download', ...(partial.size > 0 ? { resumedAt: partial.size } : {}) });
    const state: StreamState = { replayed: false, committed: false };
    const bytes = downloadStream(store, source, spec, partial, emit, retry, state);
    if (consume === undefined) {
      for await (const _ of bytes);
      return;
    }
    try {
      await consume(bytes, partial);
    } catch (err) {
      // Waits for a step still in progress, so nothing is appended behind our back from here on.
      await bytes.return(undefined);
      // The download itself failed (network, verification): its own error says what happened,
      // better than the extractor's view of it (a read error, or a tar cut short).
      if (state.error !== undefined) throw state.error;
      // A local problem (a full disk...) says nothing about the bytes: kept, the next pull resumes.
      if (!contentRejected(err)) throw err;
      // Every byte was had and verified, and the blob stored, before the extractor found that
      // they are no layer (a gzip of something else fails only at its end): a blob no image can
      // use is not kept.
      if (state.committed) {
        await store.blobs.remove(spec.digest);
        throw err;
      }
      throw await afterRejection(source, spec, partial, state, emit, retry, track, err);
    }
  });
}

/** Where a download stream got to, for when its consumer gives up on it. */
interface StreamState {
  /** The bytes of earlier runs have all been handed over (and hashed). */
  replayed: boolean;
  /** Why the stream itself failed (reading the source, or verifying at the end), if it did. */
  error?: unknown;
  /** Every byte was verified and the blob is in the store. */
  committed: boolean;
}

/** What happened to a layer's download, for deciding whether a fresh try may help. */
interface DownloadTrack {
  resumed: boolean;
  discarded: boolean;
}

/**
 * The consumer (the extractor) refused a blob's bytes before their end. Bytes that are simply
 * wrong (a corrupt or tampered download) fail that way long before the digest could be checked,
 * so the rest is downloaded and every byte verified: a digest or size mismatch is the error to
 * report. Either way the download is dropped: it is not a layer that can be extracted, and it
 * must not be resumed from.
 */
async function afterRejection(
  source: ImageSource,
  spec: LayerSpec,
  partial: PartialBlob,
  state: StreamState,
  emit: (e: PullEvent) => void,
  retry: RetryPolicy | undefined,
  track: DownloadTrack | undefined,
  rejection: unknown,
): Promise<unknown> {
  const discard = async (): Promise<void> => {
    await partial.discard();
    if (track !== undefined) track.discarded = true;
  };
  // Refused while the bytes of an earlier run were replayed: those are what was bad.
  if (!state.replayed) {
    await discard();
    return rejection;
  }
  try {
    const onServedBy = (servedBy: string) => emit({ type: 'layer-source', digest: spec.digest, servedBy });
    for await (const chunk of readBlob(source, spec, partial.size, onServedBy, retry)) await partial.append(chunk);
    await partial.verify();
  } catch (err) {
    if (!isDigestFailure(err)) return err; // the rest could not be had: kept, the next pull resumes
    await discard();
    return err;
  }
  await discard();
  return rejection;
}

async function* downloadStream(
  store: Store,
  source: ImageSource,
  spec: LayerSpec,
  partial: PartialBlob,
  emit: (e: PullEvent) => void,
  retry: RetryPolicy | undefined,
  state: StreamState,
): AsyncGenerator<Buffer> {
  try {
    let received = 0;
    for await (const chunk of partial.replay()) {
      received += chunk.length;
      yield chunk;
    }
    state.replayed = true;
    emit({ type: 'layer-progress', digest: spec.digest, bytes: received });
    const onServedBy = (servedBy: string) => emit({ type: 'layer-source', digest: spec.digest, servedBy });
    const descriptor = { digest: spec.digest, size: spec.size, mediaType: spec.mediaType };
    for await (const chunk of readBlob(source, descriptor, partial.size, onServedBy, retry)) {
      await partial.append(chunk);
      received += chunk.length;
      emit({ type: 'layer-progress', digest: spec.digest, bytes: received });
      yield chunk;
    }
    await store.blobs.commitDownload(partial);
    state.committed = true;
  } catch (err) {
    state.error = err;
    // Bytes that do not match (too many of them): nothing of this download can be resumed from.
    if (isDigestFailure(err)) await partial.discard();
    throw err;
  }
}

/** Whether the extractor refused what the bytes say, rather than failing to write or read them. */
function contentRejected(err: unknown): boolean {
  return isLayerError(err) && !(['ERR_LAYER_IO', 'ERR_LAYER_BAD_TARGET', 'ERR_LAYER_READ'] as string[]).includes(err.code);
}

function isDigestFailure(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof VerifyError || (e instanceof RegistryError && e.code === 'ERR_DIGEST_MISMATCH')) return true;
    const code = (e as { code?: unknown }).code;
    if (code === 'ERR_LAYER_DIGEST_MISMATCH' || code === 'ERR_LAYER_DIFFID_MISMATCH' || code === 'ERR_LAYER_SIZE_MISMATCH') return true;
  }
  return false;
}
