/**
 * Layer decompression: detect the format from the first bytes (media types are hints that can lie)
 * and turn a stream of compressed chunks into a stream of tar chunks, with backpressure all the way
 * so that a decompression bomb never holds more than a few output chunks in memory.
 *
 * - gzip: Node's zlib on the thread pool, 1 MiB output chunks (2x the throughput of the 16 KiB
 *   default, measured in design/dependencies.md §4.1).
 * - zstd: Node's zlib zstd when present (Node >= 22.15, on the thread pool); otherwise the
 *   zstd-napi binding on a worker thread (zstd-worker.ts). zstd-napi's own DecompressStream is not
 *   used: it pushes all the output of an input chunk regardless of backpressure (a 64 KiB chunk of
 *   a zstd bomb can expand to gigabytes).
 */
import { Readable, type Transform, pipeline } from 'node:stream';
import * as zlib from 'node:zlib';
import { LayerError } from './errors.js';
import { zstdWorkerDecompress } from './zstd-worker.js';

export type Compression = 'gzip' | 'zstd' | 'none';

/** Output chunk size of the decompressors. */
export const DECOMPRESS_CHUNK_SIZE = 1024 * 1024;

/**
 * zlib streams: large chunks, and room for two of them, so the decompressor (on the thread pool)
 * keeps working while the JS thread writes files instead of waiting for each chunk to be taken.
 */
const ZLIB_OPTIONS = { chunkSize: DECOMPRESS_CHUNK_SIZE, readableHighWaterMark: 2 * DECOMPRESS_CHUNK_SIZE };

/** The compression a layer media type announces, or undefined if it says nothing we know. */
export function compressionOfMediaType(mediaType: string | undefined): Compression | undefined {
  if (mediaType === undefined) return undefined;
  if (/\+gzip$|\.gzip$|tar\.gzip|rootfs\.diff\.tar\.gzip/.test(mediaType)) return 'gzip';
  if (/\+zstd$|\.zstd$/.test(mediaType)) return 'zstd';
  if (/\.tar$|\+tar$|^application\/x-tar$/.test(mediaType) || mediaType.endsWith('layer.v1.tar')) return 'none';
  return undefined;
}

/** Bytes needed by sniffCompression. */
export const SNIFF_BYTES = 6;

/**
 * The format of a stream from its first bytes. Anything without a compression magic is taken as a
 * plain tar (the tar parser checks header checksums, so garbage is still caught).
 */
export function sniffCompression(head: Buffer): Compression | 'bzip2' | 'xz' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4) {
    const magic = head.readUInt32LE(0);
    // zstd frame, or a skippable frame (0x184D2A50..5F) that zstd decoders pass over.
    if (magic === 0xfd2fb528 || (magic & 0xfffffff0) === 0x184d2a50) return 'zstd';
  }
  if (head.length >= 3 && head.toString('latin1', 0, 3) === 'BZh') return 'bzip2';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  return 'none';
}

export interface DecompressedStream {
  /** The format found in the bytes (which wins over the media type). */
  readonly compression: Compression;
  readonly chunks: AsyncIterable<Buffer>;
}

/**
 * Reads the first bytes of `source`, decides the format and returns the decompressed chunks.
 * `mediaType` only matters when the bytes are inconclusive (an empty stream).
 */
export async function openDecompressed(source: AsyncIterable<Buffer>, mediaType?: string): Promise<DecompressedStream> {
  const iterator = source[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headLength = 0;
  let ended = false;
  while (headLength < SNIFF_BYTES) {
    const next = await iterator.next();
    if (next.done === true) {
      ended = true;
      break;
    }
    head.push(next.value);
    headLength += next.value.length;
  }
  const sniffed = sniffCompression(Buffer.concat(head, headLength));
  if (sniffed === 'bzip2' || sniffed === 'xz') {
    await iterator.return?.();
    throw new LayerError('ERR_LAYER_UNSUPPORTED', `${sniffed}-compressed layers are not supported (OCI allows gzip and zstd)`);
  }
  const compression = headLength === 0 ? (compressionOfMediaType(mediaType) ?? 'none') : sniffed;
  const replayed = replay(head, ended ? undefined : iterator);
  if (headLength === 0) return { compression, chunks: replayed };
  switch (compression) {
    case 'gzip':
      return { compression, chunks: throughTransform(replayed, zlib.createGunzip(ZLIB_OPTIONS)) };
    case 'zstd': {
      const native = nodeZstdDecompress();
      return { compression, chunks: native ? throughTransform(replayed, native) : zstdWorkerDecompress(replayed) };
    }
    case 'none':
      return { compression, chunks: replayed };
  }
}

/** The peeked chunks, then the rest of the iterator; returning early closes the source. */
async function* replay(head: Buffer[], rest: AsyncIterator<Buffer> | undefined): AsyncGenerator<Buffer> {
  let done = rest === undefined;
  try {
    yield* head;
    while (rest !== undefined) {
      const next = await rest.next();
      if (next.done === true) {
        done = true;
        return;
      }
      yield next.value;
    }
  } finally {
    if (!done) await rest?.return?.();
  }
}

async function* throughTransform(source: AsyncIterable<Buffer>, transform: Transform): AsyncGenerator<Buffer> {
  // pipeline() carries a source error into the transform (and destroys the source when the
  // transform fails or our consumer stops), so iterating the transform sees every failure.
  pipeline(Readable.from(source, { objectMode: false }), transform, () => {});
  try {
    for await (const chunk of transform) yield chunk as Buffer;
  } catch (err) {
    throw decompressError(err);
  }
}

type ZstdFactory = (options: typeof ZLIB_OPTIONS) => Transform;

function nodeZstdDecompress(): Transform | undefined {
  const factory = (zlib as unknown as { createZstdDecompress?: ZstdFactory }).createZstdDecompress;
  return typeof factory === 'function' ? factory(ZLIB_OPTIONS) : undefined;
}

function decompressError(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof LayerError) return err;
  const code = (err as { code?: unknown }).code;
  // zlib's errors carry Z_* codes (Node's zstd: ZSTD_error_*); anything else came from the source.
  if (typeof code === 'string' && /^(Z_|ZSTD_)/.test(code)) {
    return new LayerError('ERR_LAYER_CORRUPT', `decompression failed: ${err.message}`, { cause: err });
  }
  return err;
}
