/**
 * The tar parser: tar-stream v3 with our PAX handling plugged in, yielding entries whose headers
 * are complete (PAX uid/gid/mtime with nanoseconds, binary xattrs, sparse maps, raw name bytes).
 *
 * How it is plugged in: tar-stream calls `this._decodeLongHeader(buf)` on its Extract for every
 * GNU long name and PAX body. We override that method on our own instance only (nothing global
 * changes) to parse PAX bodies with pax.ts, keep global (`g`) headers ourselves (tar-stream
 * merges them only into entries that also have a local header) and hand tar-stream back the
 * path/linkpath/size it needs for framing. tar-stream is pinned to 3.2.x in package.json because
 * of this; `assertTarStreamShape` fails loudly if a future version moves the hook.
 *
 * Names are read as latin1 (one char per byte) so that every name reaches safe-path.ts as the
 * exact bytes of the archive, whichever header form carried it.
 */
import { createRequire } from 'node:module';
import type { Extract, Header } from 'tar-stream';
import { LayerError } from './errors.js';
import { interpretPax, mergePax, parsePaxRecords, type PaxOverrides, type PaxSparse } from './pax.js';

// Required on first use, not at import: the mount daemon imports this module's callers but
// rarely extracts anything.
let tarStream: typeof import('tar-stream') | undefined;
const loadTarStream = (): typeof import('tar-stream') => (tarStream ??= createRequire(import.meta.url)('tar-stream') as typeof import('tar-stream'));

/**
 * Largest PAX or GNU long-name body accepted (bytes), as Go's archive/tar (used by Docker and
 * containerd) does. Real ones are a few hundred bytes; xattrs make them a few KiB. tar-stream
 * itself refuses bodies above 4 MiB before buffering them, so memory stays bounded either way.
 */
export const MAX_LONG_HEADER_SIZE = 1024 * 1024;

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/** The data of one entry: tar-stream's entry stream (streamx Readable). Must be drained. */
export interface TarData {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  destroy(err?: Error): unknown;
}

export interface TarEntry {
  /** The entry name as raw bytes (GNU long name, PAX path or GNU.sparse.name applied). */
  readonly rawName: Buffer;
  /** The name for messages (lossy UTF-8). */
  readonly displayName: string;
  readonly type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Bytes of data in the archive (for sparse files: the stored regions, plus the 1.0 map). */
  readonly size: number;
  readonly mtimeNs: bigint;
  readonly atimeNs: bigint | undefined;
  /** Symlink target or hardlink target, raw bytes; empty for other types. */
  readonly linkName: Buffer;
  readonly devMajor: number;
  readonly devMinor: number;
  /** Extended attributes from SCHILY.xattr.* / LIBARCHIVE.xattr.*, values byte for byte. */
  readonly xattrs: ReadonlyMap<string, Buffer>;
  readonly sparse: PaxSparse | undefined;
  readonly data: TarData;
}

// tar-stream internals we rely on (see the module comment).
interface ExtractInternals {
  _header: { type: string | null } | null;
  _pax: Record<string | symbol, unknown> | null;
  _paxGlobal: unknown;
  _decodeLongHeader(buf: Buffer): void;
}

const OVERRIDES = Symbol('layerfs.paxOverrides');

/** Feeds uncompressed tar bytes to tar-stream and yields complete entries. */
export class TarReader {
  readonly #extract: Extract;
  #global: PaxOverrides | undefined;

  constructor() {
    this.#extract = loadTarStream().extract({ filenameEncoding: 'latin1' } as never);
    const internals = this.#extract as unknown as ExtractInternals;
    assertTarStreamShape(internals);
    const original = internals._decodeLongHeader;
    const reader = this;
    internals._decodeLongHeader = function decodeLongHeader(this: ExtractInternals, buf: Buffer): void {
      if (buf.length > MAX_LONG_HEADER_SIZE) throw tooLarge(buf.length);
      const type = this._header?.type;
      if (type === 'pax-global-header') {
        const global = interpretPax(parsePaxRecords(buf));
        if (global.path !== undefined || global.linkpath !== undefined || global.size !== undefined) {
          // Would rename every entry or change framing; no real writer does it.
          throw new LayerError('ERR_LAYER_CORRUPT', 'a global PAX header sets path, linkpath or size');
        }
        reader.#global = mergePax(reader.#global, global);
        this._paxGlobal = null;
      } else if (type === 'pax-header') {
        const local = interpretPax(parsePaxRecords(buf));
        // tar-stream applies path/linkpath/size from this object (strings, in filenameEncoding).
        const forTarStream: Record<string | symbol, unknown> = { [OVERRIDES]: local };
        if (local.path !== undefined) forTarStream['path'] = local.path.toString('latin1');
        if (local.linkpath !== undefined) forTarStream['linkpath'] = local.linkpath.toString('latin1');
        if (local.size !== undefined) forTarStream['size'] = String(local.size);
        this._pax = forTarStream;
      } else {
        original.call(this, buf);
      }
    };
  }

  /** Writes `source` into the parser with backpressure; ends it when `source` ends. */
  async feed(source: AsyncIterable<Buffer>): Promise<void> {
    const extract = this.#extract;
    for await (const chunk of source) {
      if (extract.destroyed) return;
      if (!extract.write(chunk)) await drainOrClose(extract);
    }
    if (extract.destroyed) return;
    await new Promise<void>((resolve) => {
      extract.once('close', () => resolve());
      extract.once('finish', () => resolve());
      // streamx's typings want an argument; end() without one just ends the stream.
      (extract as unknown as { end(): void }).end();
    });
  }

  /** Entries in archive order. Each entry's data must be drained before the next one is asked for. */
  async *entries(): AsyncGenerator<TarEntry> {
    try {
      for await (const source of this.#extract) {
        yield toEntry(source.header, source as unknown as TarData, this.#global);
      }
    } catch (err) {
      throw toLayerError(err);
    }
  }

  destroy(err?: Error): void {
    this.#extract.destroy(err);
  }
}

/** tar-stream's own errors are plain Errors; give them our codes. */
export function toLayerError(err: unknown): unknown {
  if (err instanceof LayerError || !(err instanceof Error)) return err;
  if (err.message === 'Header exceeds max size') return tooLarge(undefined, err);
  if (/Invalid tar header|Unexpected end of data|Invalid header/.test(err.message)) {
    return new LayerError('ERR_LAYER_CORRUPT', `not a valid tar stream: ${err.message}`, { cause: err });
  }
  return err;
}

function tooLarge(size: number | undefined, cause?: Error): LayerError {
  return new LayerError(
    'ERR_LAYER_TOO_LARGE_HEADER',
    `a PAX or GNU long-name header${size === undefined ? '' : ` of ${size} bytes`} exceeds the ` +
      `limit of ${MAX_LONG_HEADER_SIZE} bytes`,
    { cause },
  );
}

function assertTarStreamShape(internals: ExtractInternals): void {
  if (typeof internals._decodeLongHeader !== 'function' || !('_pax' in internals) || !('_paxGlobal' in internals)) {
    throw new Error('layerfs: unsupported tar-stream version (no _decodeLongHeader hook); pin tar-stream 3.2.x');
  }
}

function drainOrClose(extract: Extract): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      extract.off('drain', done);
      extract.off('close', done);
      resolve();
    };
    extract.on('drain', done);
    extract.on('close', done);
  });
}

const TYPES: Record<string, TarEntryType | undefined> = {
  file: 'file',
  'contiguous-file': 'file',
  directory: 'directory',
  symlink: 'symlink',
  link: 'hardlink',
  'character-device': 'char',
  'block-device': 'block',
  fifo: 'fifo',
};

function toEntry(header: Header, data: TarData, global: PaxOverrides | undefined): TarEntry {
  const pax = header.pax as Record<symbol, PaxOverrides | undefined> | null | undefined;
  const overrides = mergePax(global, pax?.[OVERRIDES]);
  const rawName = overrides.sparse?.name ?? Buffer.from(header.name, 'latin1');
  const displayName = rawName.toString('utf8');
  const type = TYPES[header.type as string];
  if (type === undefined) {
    // tar-stream reports unknown type flags (GNU 'S' old sparse, 'D', 'V', 'M'...) as null.
    throw new LayerError('ERR_LAYER_UNSUPPORTED', 'unsupported tar entry type', { entry: displayName });
  }
  if (overrides.sparse !== undefined && type !== 'file') {
    throw new LayerError('ERR_LAYER_CORRUPT', 'sparse map on a non-file entry', { entry: displayName });
  }
  const uid = overrides.uid ?? header.uid;
  const gid = overrides.gid ?? header.gid;
  const seconds = header.mtime.getTime() / 1000;
  if (!isId(uid) || !isId(gid) || !Number.isInteger(header.mode) || !Number.isFinite(seconds)) {
    throw new LayerError('ERR_LAYER_CORRUPT', 'bad numeric field in the tar header', { entry: displayName });
  }
  const linkName = header.linkname ? Buffer.from(header.linkname, 'latin1') : Buffer.alloc(0);
  return {
    rawName,
    displayName,
    type,
    mode: header.mode & 0o7777,
    uid,
    gid,
    size: header.size,
    mtimeNs: overrides.mtimeNs ?? BigInt(seconds) * 1_000_000_000n,
    atimeNs: overrides.atimeNs,
    linkName,
    devMajor: header.devmajor || 0,
    devMinor: header.devminor || 0,
    xattrs: overrides.xattrs,
    sparse: overrides.sparse,
    data,
  };
}

function isId(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
}
