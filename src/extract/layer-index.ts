/**
 * The per-layer metadata index: one record per name in the extracted layer, written at extraction
 * time so that a mount can load a layer's whole tree (attributes, link targets, xattrs, hardlink
 * groups) from one sequential file instead of walking and lstat-ing it, and so that the truth
 * survives an unprivileged extraction (real owners, device numbers, xattrs the kernel refused).
 *
 * Format: JSON lines (UTF-8, `\n`-terminated):
 *   line 1   header  {"layerfsIndex":1,"diffId":...,"privileged":...,"records":N,...}
 *   N lines  records {"path":"usr/bin/env","type":"file","mode":493,...}  (any order)
 *   last     trailer {"end":N}
 * Why JSON lines rather than a binary format: records are read once per mount and are small
 * (~150 bytes); JSON.parse costs ~1-2 µs a line, the file streams line by line, a truncated file
 * is detected by the trailer, and `jq`/`grep` can inspect a layer when debugging. Binary values
 * (xattr values, non-UTF-8 symlink targets) are base64. Versioned by `layerfsIndex`.
 *
 * Writing is streaming (memory does not grow with the layer's file count): records go to a journal
 * next to the index as entries are extracted; `finish` turns the journal into the index. Only when
 * the layer itself replaced names (an entry repeated, a file replaced by a directory...) does
 * `finish` keep a path table in memory, to drop the superseded records.
 */
import { closeSync, createReadStream, fsyncSync, lstatSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { LayerError } from './errors.js';
import type { Compression } from './decompress.js';

export const LAYER_INDEX_VERSION = 1;

export type IndexEntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo';

export interface LayerIndexRecord {
  /** Relative path in the layer, `/`-separated; `''` is the layer root. */
  path: string;
  /** The real type (a device extracted unprivileged is still 'char'/'block', see `placeholder`). */
  type: IndexEntryType;
  /** Permission bits including setuid/setgid/sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files: content length; symlinks: target length in bytes; others 0. */
  size: number;
  mtimeNs: bigint;
  /** Inode number on disk when extracted; names sharing it are hardlinks of one another. */
  ino: number;
  nlink: number;
  devMajor?: number;
  devMinor?: number;
  /** Symlink target, byte for byte. */
  linkTarget?: Buffer;
  /** For names created by a hardlink entry: the (normalised) name it links to. */
  hardlinkTo?: string;
  /** sha256 (hex) of the content of regular files (not recorded for sparse files). */
  sha256?: string;
  /** Extended attributes from the archive, values byte for byte. */
  xattrs?: Map<string, Buffer>;
  /** Names of xattrs the filesystem refused (EPERM/ENOTSUP): they exist only in this index. */
  xattrsNotApplied?: string[];
  /** A device that could not be created (unprivileged): on disk it is an empty regular file. */
  placeholder?: boolean;
  /** A directory that the archive did not contain (a missing parent, or the root). */
  implicit?: boolean;
}

export interface LayerIndexHeader {
  layerfsIndex: number;
  diffId: string;
  digest: string;
  compression: Compression;
  /** Whether ownership, modes and devices on disk are the real ones (see verify-layer.ts). */
  privileged: boolean;
  /** Number of records. */
  records: number;
  /** Number of entries in the tar stream. */
  entries: number;
}

// ---- encoding ----------------------------------------------------------------------------

interface RecordJson {
  path: string;
  type: IndexEntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: string;
  ino: number;
  nlink: number;
  devMajor?: number;
  devMinor?: number;
  linkTarget?: string;
  linkTargetBase64?: string;
  hardlinkTo?: string;
  sha256?: string;
  xattrs?: Record<string, string>;
  xattrsNotApplied?: string[];
  placeholder?: true;
  implicit?: true;
}

export function encodeRecord(r: LayerIndexRecord): string {
  const json: RecordJson = {
    path: r.path,
    type: r.type,
    mode: r.mode,
    uid: r.uid,
    gid: r.gid,
    size: r.size,
    mtime: r.mtimeNs.toString(),
    ino: r.ino,
    nlink: r.nlink,
  };
  if (r.devMajor !== undefined) json.devMajor = r.devMajor;
  if (r.devMinor !== undefined) json.devMinor = r.devMinor;
  if (r.linkTarget !== undefined) {
    const text = r.linkTarget.toString('utf8');
    if (Buffer.from(text, 'utf8').equals(r.linkTarget)) json.linkTarget = text;
    else json.linkTargetBase64 = r.linkTarget.toString('base64');
  }
  if (r.hardlinkTo !== undefined) json.hardlinkTo = r.hardlinkTo;
  if (r.sha256 !== undefined) json.sha256 = r.sha256;
  if (r.xattrs !== undefined && r.xattrs.size > 0) {
    json.xattrs = {};
    for (const [name, value] of r.xattrs) json.xattrs[name] = value.toString('base64');
  }
  if (r.xattrsNotApplied !== undefined && r.xattrsNotApplied.length > 0) json.xattrsNotApplied = r.xattrsNotApplied;
  if (r.placeholder === true) json.placeholder = true;
  if (r.implicit === true) json.implicit = true;
  return JSON.stringify(json);
}

const TYPES: ReadonlySet<string> = new Set(['file', 'dir', 'symlink', 'char', 'block', 'fifo']);

export function decodeRecord(line: string): LayerIndexRecord {
  const j = JSON.parse(line) as Partial<RecordJson>;
  if (
    typeof j.path !== 'string' || typeof j.type !== 'string' || !TYPES.has(j.type) || typeof j.mode !== 'number' ||
    typeof j.uid !== 'number' || typeof j.gid !== 'number' || typeof j.size !== 'number' ||
    typeof j.mtime !== 'string' || typeof j.ino !== 'number' || typeof j.nlink !== 'number'
  ) {
    throw new Error('missing or mistyped field');
  }
  const r: LayerIndexRecord = {
    path: j.path,
    type: j.type,
    mode: j.mode,
    uid: j.uid,
    gid: j.gid,
    size: j.size,
    mtimeNs: BigInt(j.mtime),
    ino: j.ino,
    nlink: j.nlink,
  };
  if (j.devMajor !== undefined) r.devMajor = j.devMajor;
  if (j.devMinor !== undefined) r.devMinor = j.devMinor;
  if (j.linkTarget !== undefined) r.linkTarget = Buffer.from(j.linkTarget, 'utf8');
  if (j.linkTargetBase64 !== undefined) r.linkTarget = Buffer.from(j.linkTargetBase64, 'base64');
  if (j.hardlinkTo !== undefined) r.hardlinkTo = j.hardlinkTo;
  if (j.sha256 !== undefined) r.sha256 = j.sha256;
  if (j.xattrs !== undefined) {
    r.xattrs = new Map(Object.entries(j.xattrs).map(([name, value]) => [name, Buffer.from(value, 'base64')]));
  }
  if (j.xattrsNotApplied !== undefined) r.xattrsNotApplied = j.xattrsNotApplied;
  if (j.placeholder === true) r.placeholder = true;
  if (j.implicit === true) r.implicit = true;
  return r;
}

// ---- writing -------------------------------------------------------------------------------

/** A hardlink's journal record: its attributes are those of the inode, filled in by `finish`. */
export interface HardlinkJournalEntry {
  path: string;
  hardlinkTo: string;
  ino: number;
}

/**
 * Journal lines: `R<ino> <record json>`, `L<hardlink json>`, `X<path json>` (a removal of a path
 * and everything below it). The inode number in front lets `finish` copy most record lines
 * verbatim, without parsing them again.
 */
type JournalLine = { kind: 'R'; ino: number; json: string } | { kind: 'L'; link: HardlinkJournalEntry } | { kind: 'X'; path: string };

function parseJournalLine(line: string): JournalLine {
  switch (line[0]) {
    case 'R': {
      const space = line.indexOf(' ');
      return { kind: 'R', ino: Number(line.slice(1, space)), json: line.slice(space + 1) };
    }
    case 'L':
      return { kind: 'L', link: JSON.parse(line.slice(1)) as HardlinkJournalEntry };
    default:
      return { kind: 'X', path: JSON.parse(line.slice(1)) as string };
  }
}

const FLUSH_BYTES = 256 * 1024;

/**
 * Collects records while a layer is extracted and writes the index at the end. Directory records
 * are handed over at the end (their metadata is final only then); all others as they are created.
 */
export class LayerIndexWriter {
  readonly #indexPath: string;
  readonly #journalPath: string;
  #fd: number | undefined;
  #pending: string[] = [];
  #pendingBytes = 0;
  /** Some name was replaced or removed: finish must drop superseded records. */
  #dirty = false;
  /** Inodes that hardlink entries point to (their nlink is read from disk at the end). */
  readonly #linkedInodes = new Set<number>();

  constructor(indexPath: string) {
    this.#indexPath = indexPath;
    this.#journalPath = join(dirname(indexPath), `.${basename(indexPath)}.journal-${randomBytes(6).toString('hex')}`);
    this.#fd = openSync(this.#journalPath, 'wx', 0o600);
  }

  add(record: LayerIndexRecord): void {
    this.#append(`R${record.ino} ${encodeRecord(record)}`);
  }

  addHardlink(link: HardlinkJournalEntry): void {
    this.#linkedInodes.add(link.ino);
    this.#append(`L${JSON.stringify(link)}`);
  }

  /** `path` (and, for a directory, everything below it) no longer exists. */
  removed(path: string): void {
    this.#dirty = true;
    this.#append(`X${JSON.stringify(path)}`);
  }

  /** A name was created again (last entry wins): the earlier record must be dropped. */
  replaced(): void {
    this.#dirty = true;
  }

  /**
   * Writes the index: header, the live journal records (hardlinks completed), `directories`,
   * trailer; atomically renamed into place. `root` is the extracted layer (for hardlink nlinks).
   */
  async finish(
    root: string,
    header: Omit<LayerIndexHeader, 'layerfsIndex' | 'records'>,
    directories: Iterable<LayerIndexRecord>,
  ): Promise<void> {
    this.#flush();
    closeSync(this.#fd!);
    this.#fd = undefined;
    const live = this.#dirty ? await this.#liveSequenceNumbers() : undefined;
    const tmp = join(dirname(this.#indexPath), `.${basename(this.#indexPath)}.tmp-${randomBytes(6).toString('hex')}`);
    const out = new LineWriter(openSync(tmp, 'wx', 0o644));
    try {
      // The record count is known only at the end: reserve room for it in the header (JSON allows
      // the padding spaces) and patch it in place, so the body is streamed, never held in memory.
      const headerPrefix = `${JSON.stringify({ layerfsIndex: LAYER_INDEX_VERSION, ...header }).slice(0, -1)},"records":`;
      out.write(`${headerPrefix}${' '.repeat(COUNT_WIDTH)}}`);
      let records = 0;
      const inodes = new Map<number, RecordJson>(); // latest full record of each linked inode
      let seq = 0;
      for await (const line of readLines(this.#journalPath)) {
        const entry = parseJournalLine(line);
        const isLive = live === undefined || live.has(seq);
        seq++;
        if (entry.kind === 'X' || !isLive) {
          if (entry.kind === 'R' && this.#linkedInodes.has(entry.ino)) inodes.set(entry.ino, JSON.parse(entry.json) as RecordJson);
          continue;
        }
        let record: RecordJson;
        if (entry.kind === 'R') {
          if (!this.#linkedInodes.has(entry.ino)) {
            out.write(entry.json); // the common case: already final
            records++;
            continue;
          }
          record = JSON.parse(entry.json) as RecordJson;
          inodes.set(entry.ino, record);
        } else {
          const target = inodes.get(entry.link.ino);
          if (target === undefined) throw new Error(`index: hardlink ${entry.link.path} to an inode without a record`);
          record = { ...target, path: entry.link.path, hardlinkTo: entry.link.hardlinkTo };
        }
        // nlink of hardlinked inodes: the disk is the truth (only these need a syscall).
        out.write(JSON.stringify({ ...record, nlink: lstatSync(join(root, record.path)).nlink }));
        records++;
      }
      for (const dir of directories) {
        out.write(encodeRecord(dir));
        records++;
      }
      out.write(JSON.stringify({ end: records }));
      out.flush();
      writeSync(out.fd, String(records).padStart(COUNT_WIDTH, ' '), Buffer.byteLength(headerPrefix));
      fsyncSync(out.fd);
    } catch (err) {
      closeSync(out.fd);
      rmSync(tmp, { force: true });
      throw err;
    }
    closeSync(out.fd);
    renameSync(tmp, this.#indexPath);
    rmSync(this.#journalPath, { force: true });
  }

  /** Removes the journal (extraction failed). */
  abort(): void {
    if (this.#fd !== undefined) {
      closeSync(this.#fd);
      this.#fd = undefined;
    }
    rmSync(this.#journalPath, { force: true });
  }

  /**
   * Journal lines that describe the final layer: for each path the last record, unless a later
   * removal of the path or of one of its ancestors came after it.
   */
  async #liveSequenceNumbers(): Promise<Set<number>> {
    const last = new Map<string, number>();
    const removedAt = new Map<string, number>();
    let seq = 0;
    for await (const line of readLines(this.#journalPath)) {
      const entry = parseJournalLine(line);
      if (entry.kind === 'X') removedAt.set(entry.path, seq);
      else last.set(entry.kind === 'R' ? (JSON.parse(entry.json) as RecordJson).path : entry.link.path, seq);
      seq++;
    }
    const live = new Set<number>();
    for (const [path, at] of last) {
      let alive = true;
      for (let p = path; alive; p = p.slice(0, Math.max(0, p.lastIndexOf('/')))) {
        if ((removedAt.get(p) ?? -1) > at) alive = false;
        if (!p.includes('/')) break;
      }
      if (alive) live.add(at);
    }
    return live;
  }

  #append(line: string): void {
    this.#pending.push(line);
    this.#pendingBytes += line.length + 1;
    if (this.#pendingBytes >= FLUSH_BYTES) this.#flush();
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    writeAll(this.#fd!, `${this.#pending.join('\n')}\n`);
    this.#pending = [];
    this.#pendingBytes = 0;
  }
}

const COUNT_WIDTH = 16;

/** Buffered `\n`-terminated lines to a file descriptor. */
class LineWriter {
  readonly fd: number;
  #chunk = '';
  constructor(fd: number) {
    this.fd = fd;
  }
  write(line: string): void {
    this.#chunk += `${line}\n`;
    if (this.#chunk.length >= FLUSH_BYTES) this.flush();
  }
  flush(): void {
    writeAll(this.fd, this.#chunk);
    this.#chunk = '';
  }
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off);
}

// ---- reading -------------------------------------------------------------------------------

/** Lines of a text file, streamed (no line terminator; the final newline is required). */
async function* readLines(path: string): AsyncGenerator<string> {
  let rest = '';
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 1024 * 1024 })) {
    const text = rest + (chunk as string);
    const lines = text.split('\n');
    rest = lines.pop()!;
    yield* lines;
  }
  if (rest !== '') throw new LayerError('ERR_LAYER_INDEX_CORRUPT', `${path}: last line is not terminated (truncated?)`);
}

/** The header of a layer index (its first line). */
export async function readLayerIndexHeader(path: string): Promise<LayerIndexHeader> {
  for await (const line of readLines(path)) return parseHeader(path, line);
  throw new LayerError('ERR_LAYER_INDEX_CORRUPT', `${path}: empty layer index`);
}

/**
 * The records of a layer index, streamed. Throws ERR_LAYER_INDEX_CORRUPT (after yielding what it
 * read) when the file is not a complete index: wrong header, bad record, missing trailer.
 */
export async function* readLayerIndex(path: string): AsyncGenerator<LayerIndexRecord> {
  let header: LayerIndexHeader | undefined;
  let count = 0;
  let ended = false;
  let lineNo = 0;
  for await (const line of readLines(path)) {
    lineNo++;
    if (header === undefined) {
      header = parseHeader(path, line);
      continue;
    }
    if (ended) throw new LayerError('ERR_LAYER_INDEX_CORRUPT', `${path}:${lineNo}: data after the trailer`);
    if (line.startsWith('{"end":')) {
      const end = (JSON.parse(line) as { end: unknown }).end;
      if (end !== count || end !== header.records) {
        throw new LayerError('ERR_LAYER_INDEX_CORRUPT', `${path}: trailer says ${String(end)} records, read ${count}`);
      }
      ended = true;
      continue;
    }
    let record: LayerIndexRecord;
    try {
      record = decodeRecord(line);
    } catch (cause) {
      throw new LayerError('ERR_LAYER_INDEX_CORRUPT', `${path}:${lineNo}: bad record`, { cause });
    }
    count++;
    yield record;
  }
  if (header === undefined) throw new LayerError('ERR_LAYER_INDEX_CORRUPT', `${path}: empty layer index`);
  if (!ended) throw new LayerError('ERR_LAYER_INDEX_CORRUPT', `${path}: no trailer (truncated index)`);
}

function parseHeader(path: string, line: string): LayerIndexHeader {
  let header: Partial<LayerIndexHeader>;
  try {
    header = JSON.parse(line) as Partial<LayerIndexHeader>;
  } catch (cause) {
    throw new LayerError('ERR_LAYER_INDEX_CORRUPT', `${path}: not a layerfs layer index`, { cause });
  }
  if (header.layerfsIndex !== LAYER_INDEX_VERSION || typeof header.records !== 'number') {
    throw new LayerError(
      'ERR_LAYER_INDEX_CORRUPT',
      `${path}: not a layerfs layer index of version ${LAYER_INDEX_VERSION} (header ${line.slice(0, 80)})`,
    );
  }
  return header as LayerIndexHeader;
}
