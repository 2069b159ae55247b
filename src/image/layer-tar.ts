/**
 * `writeLayerTar`: the upper directory of a container as an OCI layer (tar+gzip), in one streaming
 * pass that also computes the diffID (sha256 of the tar) and the digest (sha256 of the gzip).
 *
 * The same content always gives the same bytes:
 * - Entries come in a depth-first walk with siblings sorted by the byte order of their names, so
 *   parents come before children. The upper root itself is not an entry.
 * - Headers are POSIX ustar with PAX extended headers only where ustar cannot say it: names or
 *   link targets longer than 100 bytes or not ASCII (`path`, `linkpath`), uid/gid above 0o7777777,
 *   sizes of 8 GiB and more, mtimes before 1970 or after 2242. PAX records are sorted by key; the
 *   PAX header block itself is named `PaxHeader`, mode 0644, all other fields zero.
 * - Owners are numeric (uname/gname empty). mtime is whole seconds (rounded down), like Docker's
 *   layers: nanoseconds would need a PAX record for nearly every entry (two more 512-byte blocks
 *   each), and would make the digest depend on sub-second timing that no one can see in an image.
 *   atime and ctime are not written.
 * - The archive ends with two zero blocks and no further padding.
 * - gzip is Node's zlib at level 6: the header has no name, mtime 0, OS 3 (measured:
 *   `1f8b 0800 0000 0000 0003`), and the output does not depend on how the input was chunked
 *   (measured). The compressed bytes are only as stable as the zlib build: Node ships Chromium's
 *   zlib, whose output differs from other zlib versions. The diffID depends on nothing but the
 *   upper; the digest on the upper and the Node/zlib version.
 *
 * What goes in:
 * - OCI markers of the upper (`.wh.NAME`, `.wh..wh..opq`) as the empty regular files they are,
 *   with their own owner, mode and mtime (the time of the deletion: part of the content).
 * - Overlay forms are converted to OCI ones: a 0/0 character device NAME becomes an empty regular
 *   file `.wh.NAME`, and a directory whose `trusted.overlay.opaque`/`user.overlay.opaque` is "y"
 *   gets a `.wh..wh..opq` entry (unless it already has the file). Both get mode 0000 (what the
 *   engine gives its own markers) and the owner and mtime of the device or directory. A name of
 *   252-255 bytes, which the engine can only white out in overlay form, makes a `.wh.` entry longer
 *   than NAME_MAX: valid in a tar, but no Linux filesystem can extract it.
 * - Hardlinks within the upper are tar hardlinks: the first name of an inode in walk order carries
 *   the data, later names link to it. Markers are never links.
 * - Symlinks, character and block devices, FIFOs. Sockets cannot be in a tar and are skipped (as
 *   Docker does).
 * - xattrs as PAX `SCHILY.xattr.NAME` records with the value bytes as they are; overlay bookkeeping
 *   xattrs (`isPrivateXattr`) are left out. Hardlink entries carry none (their inode's first entry
 *   has them).
 * - Sparse files are written in full (holes as zeros): GNU sparse formats are not universally read.
 *
 * Why not tar-stream's pack(): its PAX values are JS strings (binary xattr values would be
 * corrupted, as would non-UTF-8 symlink targets), mtime is truncated to 32 bits, and uids/gids
 * that do not fit in octal are silently clamped. A ustar block and PAX records are simple to write
 * exactly, so this module writes them itself; the extractor (tar-stream based) and GNU tar read them
 * in the tests.
 *
 * Memory is bounded: file data streams through in chunks of at most 1 MiB with backpressure from
 * `out` (at most 4 MiB read ahead of gzip); only inodes with several links are remembered (for
 * hardlinks). Names are read as strings, as everywhere in layerfs, so they must be UTF-8.
 */
import { type BigIntStats, closeSync, constants as fsc, lstatSync, openSync, readSync, readdirSync, readlinkSync } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { StreamDigest } from '../extract/digest-stream.js';
import { isErrno } from '../errors.js';
import * as native from '../native/index.js';
import type { Digest } from '../oci/digest.js';
import { OPAQUE_MARKER, isOverlayWhiteout, isPrivateXattr, isReservedName, whiteoutName } from '../oci/whiteout.js';
import { isOpaqueDir, sortNames } from './lower-view.js';

export interface TarWriteOptions {
  signal?: AbortSignal;
  /** End `out` when the archive is complete (default true, as `stream.pipeline` does). */
  end?: boolean;
}

export interface LayerTarResult {
  /** sha256 of the uncompressed tar (the image config's rootfs.diff_ids entry). */
  diffId: Digest;
  /** sha256 of the gzip bytes (the manifest's layer descriptor). */
  digest: Digest;
  /** Bytes of gzip written to `out`. */
  size: number;
  /** Bytes of the tar. */
  uncompressedSize: number;
}

/** zlib's default; fixed because the level is part of what makes the digest reproducible. */
const GZIP_LEVEL = 6;

/**
 * Writes the upper directory `upper` to `out` as a gzip-compressed OCI layer. On failure `out` is
 * destroyed (stream.pipeline semantics) and the promise rejects.
 */
export async function writeLayerTar(upper: string, out: Writable, options: TarWriteOptions = {}): Promise<LayerTarResult> {
  const root = checkedDirectory(upper);
  const tar = new StreamDigest();
  const gzip = new StreamDigest();
  await pipeline(
    tarReadable(tar.tap(batchChunks(upperArchive(root)))),
    createGzip({ level: GZIP_LEVEL }),
    (compressed: AsyncIterable<Buffer>) => gzip.tap(compressed),
    out,
    pipelineOptions(options),
  );
  return { diffId: tar.digest(), digest: gzip.digest(), size: gzip.bytes, uncompressedSize: tar.bytes };
}

// ---- the upper as archive entries ----------------------------------------------------------------

/** One name of an upper directory as it goes into the layer. */
interface UpperItem {
  /** The name in the archive (an overlay whiteout NAME is `.wh.NAME` here). */
  name: string;
  hostPath: string;
  st: BigIntStats;
  /** An OCI marker made from an overlay form: an empty regular file, not the host entry. */
  converted: boolean;
}

async function* upperArchive(root: string): AsyncGenerator<Buffer> {
  const links = new HardlinkTable();
  yield* upperDirEntries(root, '', links);
  yield END_OF_ARCHIVE;
}

async function* upperDirEntries(hostDir: string, relDir: string, links: HardlinkTable): AsyncGenerator<Buffer> {
  for (const item of upperItems(hostDir)) {
    const path = relDir === '' ? item.name : `${relDir}/${item.name}`;
    if (item.converted) {
      yield encodeTarHeader(convertedMarkerHeader(path, item.st));
      continue;
    }
    const type = tarTypeOf(item.st.mode);
    if (type === undefined) continue; // a socket
    const linkTo = type !== 'directory' && !isReservedName(item.name) ? links.previousName(inodeKey(item.st), path, item.st) : undefined;
    yield* hostEntry(describeHostEntry(path, item.hostPath, item.st, linkTo), item.hostPath);
    if (type === 'directory') yield* upperDirEntries(item.hostPath, path, links);
  }
}

/** The names of one upper directory, overlay forms converted, sorted by archive name. */
function upperItems(hostDir: string): UpperItem[] {
  const items = new Map<string, UpperItem>();
  const overlayWhiteouts: UpperItem[] = [];
  for (const name of readdirSync(hostDir)) {
    const hostPath = `${hostDir}/${name}`;
    const st = lstatSync(hostPath, { bigint: true });
    if (isOverlayWhiteout(Number(st.mode), Number(st.rdev))) {
      overlayWhiteouts.push({ name: whiteoutName(name), hostPath, st, converted: true });
    } else {
      items.set(name, { name, hostPath, st, converted: false });
    }
  }
  // A real `.wh.NAME` next to a 0/0 device NAME says the same thing once.
  for (const item of overlayWhiteouts) if (!items.has(item.name)) items.set(item.name, item);
  if (!items.has(OPAQUE_MARKER) && isOpaqueDir(hostDir)) {
    items.set(OPAQUE_MARKER, { name: OPAQUE_MARKER, hostPath: hostDir, st: lstatSync(hostDir, { bigint: true }), converted: true });
  }
  return sortNames([...items.keys()]).map((name) => items.get(name)!);
}

function convertedMarkerHeader(path: string, st: BigIntStats): TarHeader {
  return { path, type: 'file', mode: 0, uid: Number(st.uid), gid: Number(st.gid), size: 0, mtimeSec: floorSeconds(st.mtimeNs) };
}

// ---- host entries (shared with export.ts) ----------------------------------------------------------

/**
 * Remembers the first archive name of every inode that has several links, so later names become
 * tar hardlinks to it. Only inodes with st_nlink > 1 are kept.
 */
export class HardlinkTable {
  readonly #firstNames = new Map<string, string>();

  /** The earlier archive name of the inode `key`, or undefined (then `path` is its first name). */
  previousName(key: string, path: string, st: BigIntStats): string | undefined {
    if (st.nlink <= 1n) return undefined;
    const first = this.#firstNames.get(key);
    if (first === undefined) this.#firstNames.set(key, path);
    return first;
  }
}

export function inodeKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}`;
}

/**
 * The header of a host entry (`lstat` result `st`) archived as `path`; `linkTo` makes it a
 * hardlink to that earlier archive name. Sockets are not archivable: check `tarTypeOf` first.
 */
export function describeHostEntry(path: string, hostPath: string, st: BigIntStats, linkTo?: string): TarHeader {
  const type = tarTypeOf(st.mode);
  if (type === undefined) throw new Error(`${hostPath}: sockets cannot be archived`);
  const header: TarHeader = {
    path,
    type,
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: 0,
    mtimeSec: floorSeconds(st.mtimeNs),
  };
  if (linkTo !== undefined) return { ...header, type: 'hardlink', linkTarget: Buffer.from(linkTo) };
  header.xattrs = readXattrs(hostPath);
  if (type === 'file') header.size = Number(st.size);
  if (type === 'symlink') header.linkTarget = readlinkSync(hostPath, { encoding: 'buffer' });
  if (type === 'char' || type === 'block') {
    header.devMajor = native.major(st.rdev);
    header.devMinor = native.minor(st.rdev);
  }
  return header;
}

/** The header, then (for a regular file) its data from `hostPath`, padded to a block. */
export async function* hostEntry(header: TarHeader, hostPath: string): AsyncGenerator<Buffer> {
  yield encodeTarHeader(header);
  if (header.type === 'file' && header.size > 0) {
    yield* fileData(hostPath, header.size);
    yield blockPadding(header.size);
  }
}

const READ_CHUNK = 1024 * 1024;

/**
 * Exactly `size` bytes of the file (the size its header announced). A file that changed size
 * since its lstat would make the archive lie, so that fails instead.
 */
async function* fileData(hostPath: string, size: number): AsyncGenerator<Buffer> {
  const fd = openSync(hostPath, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    let offset = 0;
    while (offset < size) {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - offset));
      const read = readSync(fd, chunk, 0, chunk.length, offset);
      if (read === 0) throw new Error(`${hostPath} shrank while it was being archived`);
      offset += read;
      yield read === chunk.length ? chunk : chunk.subarray(0, read);
    }
    if (readSync(fd, Buffer.alloc(1), 0, 1, size) !== 0) throw new Error(`${hostPath} grew while it was being archived`);
  } finally {
    closeSync(fd);
  }
}

/** Non-private xattrs of `hostPath` itself, sorted by name; values as bytes. */
function readXattrs(hostPath: string): Array<[string, Buffer]> {
  let names: string[];
  try {
    names = native.llistxattrSync(hostPath);
  } catch (err) {
    if (isErrno(err, 'ENOTSUP', 'EOPNOTSUPP')) return [];
    throw err;
  }
  const xattrs: Array<[string, Buffer]> = [];
  for (const name of sortNames(names.filter((n) => !isPrivateXattr(n)))) {
    try {
      xattrs.push([name, native.lgetxattrSync(hostPath, name)]);
    } catch (err) {
      if (!isErrno(err, 'ENODATA')) throw err; // removed since the listing
    }
  }
  return xattrs;
}

function floorSeconds(ns: bigint): number {
  const seconds = ns / 1_000_000_000n; // truncates toward zero
  return Number(ns < 0n && seconds * 1_000_000_000n !== ns ? seconds - 1n : seconds);
}

// ---- stream plumbing (shared with export.ts) ---------------------------------------------------------

const BATCH_BYTES = 64 * 1024;

/** Joins the many small pieces (headers, small files) into chunks of about 64 KiB. */
export async function* batchChunks(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let bytes = 0;
  for await (const piece of source) {
    if (piece.length === 0) continue;
    parts.push(piece);
    bytes += piece.length;
    if (bytes >= BATCH_BYTES) {
      yield parts.length === 1 ? piece : Buffer.concat(parts, bytes);
      parts = [];
      bytes = 0;
    }
  }
  if (bytes > 0) yield Buffer.concat(parts, bytes);
}

/**
 * How far reading and hashing may run ahead of gzip (which works on the thread pool). With
 * Readable's default 16 KiB the two took turns: 1 GiB of zeros took 9-12 s; with 4 MiB, 5 s
 * (gzip's own speed), peak RSS 140 MiB.
 */
const READ_AHEAD_BYTES = 4 * 1024 * 1024;

/** A byte stream (not object mode, so its buffer is bounded in bytes) over archive chunks. */
export function tarReadable(chunks: AsyncIterable<Buffer>): Readable {
  return Readable.from(chunks, { objectMode: false, highWaterMark: READ_AHEAD_BYTES });
}

export function pipelineOptions(options: TarWriteOptions): { end: boolean; signal?: AbortSignal } {
  return options.signal === undefined ? { end: options.end ?? true } : { end: options.end ?? true, signal: options.signal };
}

export function checkedDirectory(path: string): string {
  if (!lstatSync(path).isDirectory()) throw new Error(`${path} is not a directory`);
  return path.replace(/(.)\/+$/, '$1');
}

// ---- tar encoding ----------------------------------------------------------------------------------

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

export interface TarHeader {
  /** Relative path, no leading or trailing slash ('etc/passwd'); directories get their '/' here. */
  path: string;
  type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow (regular files only). */
  size: number;
  /** Seconds since the epoch (may be negative). */
  mtimeSec: number;
  /** Symlink target bytes, or the archive path a hardlink points to. */
  linkTarget?: Buffer;
  devMajor?: number;
  devMinor?: number;
  /** Extended attributes in the order they are to be written. */
  xattrs?: ReadonlyArray<readonly [string, Buffer]>;
}

const BLOCK = 512;
export const END_OF_ARCHIVE: Buffer = Buffer.alloc(2 * BLOCK);

const TYPEFLAGS: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

export function tarTypeOf(mode: number | bigint): TarEntryType | undefined {
  switch (Number(mode) & fsc.S_IFMT) {
    case fsc.S_IFREG:
      return 'file';
    case fsc.S_IFDIR:
      return 'directory';
    case fsc.S_IFLNK:
      return 'symlink';
    case fsc.S_IFCHR:
      return 'char';
    case fsc.S_IFBLK:
      return 'block';
    case fsc.S_IFIFO:
      return 'fifo';
    default:
      return undefined;
  }
}

/** Zeros that complete a data area of `size` bytes to whole blocks (possibly none). */
export function blockPadding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rest);
}

/** The ustar header block of `h`, preceded by a PAX extended header if ustar cannot hold it all. */
export function encodeTarHeader(h: TarHeader): Buffer {
  const pax: Array<[string, Buffer]> = [];
  const name = Buffer.from(h.type === 'directory' ? `${h.path}/` : h.path);
  const link = h.linkTarget ?? Buffer.alloc(0);
  const block = ustarBlock({
    name: textField('path', name, 100, pax),
    mode: h.mode & 0o7777,
    uid: numericField('uid', h.uid, 8, pax),
    gid: numericField('gid', h.gid, 8, pax),
    size: numericField('size', h.size, 12, pax),
    mtime: numericField('mtime', h.mtimeSec, 12, pax),
    typeflag: TYPEFLAGS[h.type],
    linkName: textField('linkpath', link, 100, pax),
    devMajor: h.devMajor ?? 0,
    devMinor: h.devMinor ?? 0,
  });
  for (const [name, value] of h.xattrs ?? []) pax.push([xattrKey(name), value]);
  if (pax.length === 0) return block;
  pax.sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const body = Buffer.concat(pax.map(([key, value]) => paxRecord(key, value)));
  const paxHeader = ustarBlock({
    name: Buffer.from('PaxHeader'),
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: 0,
    typeflag: 'x',
    linkName: Buffer.alloc(0),
    devMajor: 0,
    devMinor: 0,
  });
  return Buffer.concat([paxHeader, body, blockPadding(body.length), block]);
}

interface UstarFields {
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkName: Buffer;
  devMajor: number;
  devMinor: number;
}

function ustarBlock(f: UstarFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  f.name.copy(block, 0);
  writeOctal(block, 100, 8, f.mode);
  writeOctal(block, 108, 8, f.uid);
  writeOctal(block, 116, 8, f.gid);
  writeOctal(block, 124, 12, f.size);
  writeOctal(block, 136, 12, f.mtime);
  block.write(f.typeflag, 156, 'latin1');
  f.linkName.copy(block, 157);
  block.write('ustar\x0000', 257, 'latin1'); // POSIX magic and version
  writeOctal(block, 329, 8, f.devMajor);
  writeOctal(block, 337, 8, f.devMinor);
  // The checksum is computed with its own field as spaces.
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

/** `width - 1` octal digits and a NUL. */
function writeOctal(block: Buffer, offset: number, width: number, value: number): void {
  block.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, 'latin1');
}

/** The value if it fits the octal field; otherwise a PAX record carries it and the field is 0. */
function numericField(key: string, value: number, width: number, pax: Array<[string, Buffer]>): number {
  if (!Number.isSafeInteger(value)) throw new RangeError(`tar ${key} ${value} is not an integer`);
  if (value >= 0 && value < 8 ** (width - 1)) return value;
  pax.push([key, Buffer.from(String(value))]);
  return 0;
}

/**
 * The bytes if they fit the ustar field as ASCII; otherwise a PAX record carries them and the field
 * gets an ASCII stand-in (for readers that ignore PAX).
 */
function textField(key: string, bytes: Buffer, width: number, pax: Array<[string, Buffer]>): Buffer {
  const ascii = bytes.every((b) => b > 0 && b < 0x80);
  if (ascii && bytes.length <= width) return bytes;
  pax.push([key, bytes]);
  return Buffer.from(bytes.subarray(0, width).map((b) => (b > 0 && b < 0x80 ? b : 0x5f /* _ */)));
}

function xattrKey(name: string): string {
  // The key of a PAX record ends at its first '=': such a name cannot be written.
  if (name === '' || name.includes('=')) throw new Error(`xattr name ${JSON.stringify(name)} cannot be stored in a tar`);
  return `SCHILY.xattr.${name}`;
}

/** `LENGTH KEY=VALUE\n`, where LENGTH counts the whole record including its own digits. */
function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let length = rest.length + 1;
  while (String(length).length + rest.length !== length) length = String(length).length + rest.length;
  return Buffer.concat([Buffer.from(String(length)), rest]);
}
