/**
 * extractLayer: one pass over a layer blob — hash the compressed bytes, decompress, hash the tar
 * (diffID), parse, create every entry safely — then verify the digests and finish directory
 * metadata and the metadata index.
 *
 * Threading: parsing and file creation run on the JS thread with synchronous fs calls. Each is a
 * short syscall (writes are at most one 1 MiB chunk), and a thread-pool round trip per metadata
 * call would cost more than the call itself: with ~10 syscalls per small file, that decides the
 * throughput. gzip (and Node's zstd) still decompress on the thread pool, in parallel. The event
 * loop gets control back between chunks; a process that serves a FUSE mount should nevertheless
 * extract in a worker or child process (design pitfall 1).
 */
import { lstatSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { openDecompressed, type Compression } from './decompress.js';
import { checkDigest, StreamDigest, type Sha256Digest } from './digest-stream.js';
import { LayerError } from './errors.js';
import { LayerIndexWriter } from './layer-index.js';
import { LayerWriter } from './layer-writer.js';
import { TarReader, toLayerError } from './tar-reader.js';

export interface ExtractOptions {
  /** OCI/Docker layer media type. A hint only: the magic bytes decide. */
  mediaType?: string;
  /** sha256 of the uncompressed tar; a mismatch fails at the end of the stream. */
  expectedDiffId?: Sha256Digest;
  /** sha256 of the compressed bytes as received. */
  expectedDigest?: Sha256Digest;
  /** Size of the compressed bytes; more bytes fail at once, fewer at the end. */
  expectedSize?: number;
  /** Apply owners and create device nodes. Default: running as root. */
  privileged?: boolean;
  signal?: AbortSignal;
  /** Write the layer's metadata index (layer-index.ts) to this file. */
  indexPath?: string;
  /**
   * Record each regular file's sha256 in the index, so that `verifyLayerAgainstIndex(..., { content:
   * true })` can detect changed contents. Off by default: it costs 10-30% more CPU (see
   * bench/extract/README.md).
   */
  indexContentDigests?: boolean;
}

export interface ExtractResult {
  diffId: Sha256Digest;
  digest: Sha256Digest;
  compressedSize: number;
  uncompressedSize: number;
  /** Entries in the tar stream (PAX and GNU long-name headers are not entries). */
  entries: number;
  /** The compression found in the bytes. */
  compression: Compression;
}

/**
 * Extracts a layer blob into `targetDir`, which must be an existing empty directory. On failure the
 * directory may hold a partial layer (the caller removes it); nothing is ever written outside it
 * except the index (and its temporary files) at `options.indexPath`.
 */
export async function extractLayer(input: Readable, targetDir: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  const { signal } = options;
  signal?.throwIfAborted();
  const root = resolve(targetDir);
  checkTarget(root);
  const privileged = options.privileged ?? process.getuid?.() === 0;
  const index = options.indexPath === undefined ? undefined : new LayerIndexWriter(resolve(options.indexPath));
  let writer: LayerWriter;
  let reader: TarReader;
  try {
    writer = new LayerWriter(root, { privileged, index, hashContent: index !== undefined && options.indexContentDigests === true });
    reader = new TarReader();
  } catch (err) {
    index?.abort();
    throw err;
  }
  const compressed = new StreamDigest(options.expectedSize);
  const uncompressed = new StreamDigest();

  let failure: unknown;
  const fail = (err: unknown): void => {
    if (failure !== undefined) return;
    failure = err;
    // Stop both sides: the parser (wakes the feeder, errors the entry being written) and the
    // input (a stalled network read would otherwise keep the feeder waiting).
    reader.destroy(err instanceof Error ? err : undefined);
    input.destroy();
  };
  const onAbort = (): void => fail(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });

  let compression: Compression = 'none';
  let entries = 0;
  try {
    const feeding = (async () => {
      const opened = await openDecompressed(compressed.tap(readInput(input)), options.mediaType);
      compression = opened.compression;
      await reader.feed(uncompressed.tap(opened.chunks));
    })();
    const consuming = (async () => {
      for await (const entry of reader.entries()) {
        try {
          await writer.apply(entry);
        } catch (err) {
          throw withEntry(err, entry.displayName);
        }
        entries++;
      }
    })();
    feeding.catch(fail);
    consuming.catch(fail);
    await Promise.allSettled([feeding, consuming]);
    if (failure !== undefined) throw failure;
    await writer.flush(); // files whose data was still being written in the background

    if (options.expectedSize !== undefined && compressed.bytes !== options.expectedSize) {
      throw new LayerError(
        'ERR_LAYER_SIZE_MISMATCH',
        `layer blob has ${compressed.bytes} bytes, expected ${options.expectedSize}`,
      );
    }
    const digest = compressed.digest();
    const diffId = uncompressed.digest();
    checkDigest('ERR_LAYER_DIGEST_MISMATCH', 'layer digest', options.expectedDigest, digest);
    checkDigest('ERR_LAYER_DIFFID_MISMATCH', 'layer diffID', options.expectedDiffId, diffId);

    const directories = writer.finishDirectories();
    await index?.finish(root, { diffId, digest, compression, privileged, entries }, directories);
    return { diffId, digest, compressedSize: compressed.bytes, uncompressedSize: uncompressed.bytes, entries, compression };
  } catch (err) {
    await writer.settle(); // no background write outlives the call
    index?.abort();
    throw normalizeError(err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** The input's own failures (a reset connection...) are told apart from our write failures. */
async function* readInput(input: Readable): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of input) yield typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
  } catch (err) {
    if (isAbortError(err)) throw err;
    throw new LayerError('ERR_LAYER_READ', `reading the layer blob failed: ${(err as Error).message}`, { cause: err });
  }
}

/** A filesystem error while creating an entry, as ERR_LAYER_IO naming the entry. */
function withEntry(err: unknown, entry: string): unknown {
  const mapped = toLayerError(err);
  const code = (mapped as { code?: unknown } | undefined)?.code;
  if (mapped instanceof Error && !(mapped instanceof LayerError) && typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
    return new LayerError('ERR_LAYER_IO', `creating the entry failed: ${mapped.message}`, { entry, cause: mapped });
  }
  return mapped;
}

function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as { code?: unknown }).code === 'ABORT_ERR');
}

function checkTarget(root: string): void {
  let isDir: boolean;
  try {
    isDir = lstatSync(root).isDirectory();
  } catch (cause) {
    throw new LayerError('ERR_LAYER_BAD_TARGET', `target directory ${root} does not exist`, { cause });
  }
  // lstat: a symlink to a directory is refused too (its target could change under us).
  if (!isDir) throw new LayerError('ERR_LAYER_BAD_TARGET', `target ${root} is not a directory`);
  // The writer's safety argument needs an empty start: everything in it is then its own doing.
  if (readdirSync(root).length > 0) throw new LayerError('ERR_LAYER_BAD_TARGET', `target directory ${root} is not empty`);
}

/** Every failure leaves as a LayerError (or the abort reason, as Node's APIs do). */
function normalizeError(err: unknown): unknown {
  const mapped = toLayerError(err);
  if (mapped instanceof LayerError || isAbortError(mapped)) return mapped;
  const code = (mapped as { code?: unknown } | undefined)?.code;
  if (mapped instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
    return new LayerError('ERR_LAYER_IO', `writing the layer failed: ${mapped.message}`, { cause: mapped });
  }
  return mapped;
}
