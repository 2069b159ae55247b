/**
 * Random access to the members of an uncompressed tar file (a `docker save` archive).
 *
 * One scan reads only the 512-byte headers (and the small GNU long-name / PAX records), skipping
 * every member's data, so opening a multi-GiB archive costs a few reads. Each member is then
 * served by offset straight from the file. Only what locating members needs is interpreted:
 * names (USTAR prefix, GNU `L`/`K`, PAX `path`/`linkpath`), sizes (octal, base-256, PAX `size`)
 * and the entry type. Links between members (older `docker save` symlinks duplicate layers) are
 * followed inside the archive by `resolve()`.
 */
import { constants, createReadStream, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { parsePaxRecords } from '../extract/pax.js';
import { RegistryError } from '../registry/errors.js';

export type TarMemberType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarMember {
  /** Normalised name: no leading `/` or `./`, no `.` or empty components, `..` resolved. */
  readonly name: string;
  readonly type: TarMemberType;
  /** File offset of the member's first data byte. */
  readonly offset: number;
  readonly size: number;
  /** Link target as the archive spells it (symlinks and hardlinks only). */
  readonly linkname?: string;
}

const BLOCK = 512;
/** GNU long names and PAX headers are read into memory: bounded like the extractor's. */
const MAX_META_SIZE = 1024 * 1024;
/** A docker archive has a handful of members per image; this only bounds a hostile file. */
const MAX_MEMBERS = 100_000;
const MAX_LINK_DEPTH = 16;

export class TarFileIndex {
  readonly path: string;
  /** False when the file ended without the two zero blocks: it may have been cut short. */
  readonly complete: boolean;
  readonly #handle: FileHandle;
  readonly #members: Map<string, TarMember>;

  private constructor(path: string, handle: FileHandle, members: Map<string, TarMember>, complete: boolean) {
    this.path = path;
    this.#handle = handle;
    this.#members = members;
    this.complete = complete;
  }

  /** Opens `path` (a regular file) and indexes its members. */
  static async open(path: string): Promise<TarFileIndex> {
    const handle = await openRegularFile(path);
    try {
      const { members, complete } = await scan(path, handle);
      return new TarFileIndex(path, handle, members, complete);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Members by name; when a name repeats, the last one counts (as extracting would). */
  members(): IterableIterator<TarMember> {
    return this.#members.values();
  }

  /** The member called `name` (normalised first), without following links. */
  lookup(name: string): TarMember | undefined {
    const normal = normalizeMemberName(name);
    return normal === undefined ? undefined : this.#members.get(normal);
  }

  /**
   * The regular file `name` names, following symlinks (relative to the link's directory) and
   * hardlinks (relative to the archive root) inside the archive. Throws ERR_SOURCE_INVALID for a
   * missing name, a link leaving the archive, a loop, or a member that is not a file.
   */
  resolve(name: string): TarMember {
    let current = name;
    for (let depth = 0; depth <= MAX_LINK_DEPTH; depth++) {
      const member = this.lookup(current);
      if (member === undefined) throw this.#missing(name, current);
      if (member.type === 'file') return member;
      if (member.type !== 'symlink' && member.type !== 'hardlink') {
        throw sourceInvalid(`${this.path}: member ${JSON.stringify(current)} is not a regular file (${member.type})`);
      }
      current = linkTarget(this.path, member);
    }
    throw sourceInvalid(`${this.path}: member ${JSON.stringify(name)}: more than ${MAX_LINK_DEPTH} links (a loop?)`);
  }

  /** The whole data of a (small) member; `maxBytes` bounds memory for untrusted sizes. */
  async read(member: TarMember, maxBytes: number): Promise<Buffer> {
    if (member.size > maxBytes) {
      throw sourceInvalid(`${this.path}: member ${JSON.stringify(member.name)} is ${member.size} bytes, more than the ${maxBytes} allowed`);
    }
    const buffer = Buffer.alloc(member.size);
    const { bytesRead } = await this.#handle.read(buffer, 0, member.size, member.offset);
    if (bytesRead !== member.size) throw sourceInvalid(`${this.path}: member ${JSON.stringify(member.name)} is cut short (truncated archive?)`);
    return buffer;
  }

  /**
   * A stream of the member's data from `offset`. Each stream opens the file for itself: streams
   * run side by side and are destroyed early, and a shared FileHandle does not survive that (a
   * destroyed FileHandle stream closes the handle under the others).
   */
  stream(member: TarMember, offset = 0): Readable {
    if (offset >= member.size) return Readable.from([]); // createReadStream cannot express "nothing"
    const end = member.offset + member.size - 1; // inclusive
    return createReadStream(this.path, { start: member.offset + offset, end });
  }

  async close(): Promise<void> {
    await this.#handle.close();
  }

  #missing(name: string, current: string): RegistryError {
    const via = current === name ? '' : ` (link target ${JSON.stringify(current)})`;
    const hint = this.complete ? '' : '; the archive has no end marker, it may be truncated';
    return new RegistryError('ERR_SOURCE_INVALID', `${this.path}: no member ${JSON.stringify(name)}${via}${hint}`);
  }
}

/**
 * `a/./b//c` -> `a/b/c`, leading `/` and `./` dropped, `..` resolved lexically. Undefined for a
 * name that climbs above the archive root: it can name no member.
 */
export function normalizeMemberName(name: string): string | undefined {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else {
      parts.push(part);
    }
  }
  return parts.join('/');
}

/** A symlink's target is relative to its directory; a hardlink's names another member. */
function linkTarget(path: string, member: TarMember): string {
  const target = member.linkname ?? '';
  const dir = member.name.includes('/') ? member.name.slice(0, member.name.lastIndexOf('/')) : '';
  const joined = member.type === 'hardlink' || target.startsWith('/') ? target : `${dir}/${target}`;
  const normal = normalizeMemberName(joined);
  if (target === '' || normal === undefined) {
    throw sourceInvalid(`${path}: member ${JSON.stringify(member.name)} links to ${JSON.stringify(target)}, outside the archive`);
  }
  return normal;
}

async function openRegularFile(path: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO must not hang before fstat can refuse it.
    handle = await fsp.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'ERR_REGISTRY_NOT_FOUND' : 'ERR_SOURCE_INVALID';
    throw new RegistryError(code, `cannot open ${path}: ${(err as Error).message}`, { cause: err });
  }
  const stat = await handle.stat();
  if (!stat.isFile()) {
    await handle.close();
    throw sourceInvalid(`${path} is not a regular file`);
  }
  return handle;
}

// ---- the scan ----------------------------------------------------------------------------

/** Overrides for the next member, from GNU long-name records and a PAX header. */
interface Pending {
  name?: string;
  linkname?: string;
  size?: number;
}

interface Header {
  name: string;
  linkname: string;
  size: number;
  typeflag: string;
}

async function scan(path: string, handle: FileHandle): Promise<{ members: Map<string, TarMember>; complete: boolean }> {
  const fileSize = (await handle.stat()).size;
  const members = new Map<string, TarMember>();
  const block = Buffer.alloc(BLOCK);
  let pos = 0;
  let pending: Pending = {};
  let count = 0;
  for (;;) {
    const { bytesRead } = await handle.read(block, 0, BLOCK, pos);
    if (bytesRead === 0) return { members, complete: false };
    if (bytesRead < BLOCK) throw sourceInvalid(`${path}: header at byte ${pos} is cut short (truncated archive)`);
    // One zero block ends the archive; a well-formed file has two, but nothing follows either way.
    if (block.every((b) => b === 0)) return { members, complete: true };
    const header = parseHeader(path, block, pos);
    const dataOffset = pos + BLOCK;
    const meta = isMetaType(header.typeflag);
    const size = meta ? header.size : (pending.size ?? header.size);
    if (dataOffset + size > fileSize) {
      throw sourceInvalid(`${path}: member ${JSON.stringify(pending.name ?? header.name)} runs past the end of the file (truncated archive)`);
    }
    if (meta) {
      pending = await readMeta(path, handle, header, dataOffset, pending);
    } else {
      if (++count > MAX_MEMBERS) throw sourceInvalid(`${path}: more than ${MAX_MEMBERS} members`);
      addMember(members, header, pending, dataOffset, size);
      pending = {};
    }
    pos = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
  }
}

function addMember(members: Map<string, TarMember>, header: Header, pending: Pending, offset: number, size: number): void {
  const name = normalizeMemberName(pending.name ?? header.name);
  if (name === undefined || name === '') return; // `..`-escaping or root entries name no readable member
  const type = memberType(header.typeflag);
  const linkname = pending.linkname ?? header.linkname;
  const isLink = type === 'symlink' || type === 'hardlink';
  // A hardlink's size field is the target's; its own data is empty.
  const dataSize = type === 'hardlink' ? 0 : size;
  members.set(name, isLink ? { name, type, offset, size: dataSize, linkname } : { name, type, offset, size: dataSize });
}

function memberType(flag: string): TarMemberType {
  switch (flag) {
    case '0':
    case '\0':
    case '7': // contiguous file: a regular file everywhere but on a few historic systems
      return 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '5':
      return 'directory';
    default:
      return 'other';
  }
}

/** Headers that describe the next member rather than being one. */
function isMetaType(flag: string): boolean {
  return flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g';
}

async function readMeta(path: string, handle: FileHandle, header: Header, offset: number, pending: Pending): Promise<Pending> {
  if (header.size > MAX_META_SIZE) throw sourceInvalid(`${path}: a ${header.typeflag} header of ${header.size} bytes is too large`);
  const body = Buffer.alloc(header.size);
  await handle.read(body, 0, header.size, offset);
  switch (header.typeflag) {
    case 'L':
      return { ...pending, name: cString(body) };
    case 'K':
      return { ...pending, linkname: cString(body) };
    case 'x':
      return { ...pending, ...paxOverrides(path, body, offset) };
    default:
      // Global PAX headers ('g') set defaults for times and owners, nothing that locates a member.
      return pending;
  }
}

function paxOverrides(path: string, body: Buffer, offset: number): Pending {
  let records;
  try {
    records = parsePaxRecords(body);
  } catch (err) {
    throw sourceInvalid(`${path}: bad PAX header at byte ${offset - BLOCK}: ${(err as Error).message}`, err);
  }
  const out: Pending = {};
  for (const { key, value } of records) {
    if (key === 'path') out.name = value.toString('utf8');
    else if (key === 'linkpath') out.linkname = value.toString('utf8');
    else if (key === 'size') out.size = paxSize(path, value.toString('latin1'));
  }
  return out;
}

function paxSize(path: string, text: string): number {
  const size = /^[0-9]{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(size)) throw sourceInvalid(`${path}: bad PAX size ${JSON.stringify(text)}`);
  return size;
}

function parseHeader(path: string, block: Buffer, pos: number): Header {
  if (!checksumMatches(block)) throw sourceInvalid(`${path}: bad tar header checksum at byte ${pos} (not a tar file, or corrupt)`);
  const typeflag = String.fromCharCode(block[156]!);
  const name = cString(block.subarray(0, 100));
  // POSIX ustar splits long names into prefix/name; GNU tar's "ustar  " keeps other fields there.
  const posix = block.toString('latin1', 257, 263) === 'ustar\0';
  const prefix = posix ? cString(block.subarray(345, 500)) : '';
  const size = parseNumber(block.subarray(124, 136));
  if (size === undefined) throw sourceInvalid(`${path}: bad size field in the tar header at byte ${pos}`);
  return { name: prefix === '' ? name : `${prefix}/${name}`, linkname: cString(block.subarray(157, 257)), size, typeflag };
}

/** The checksum is the sum of the header bytes with its own field read as spaces. */
function checksumMatches(block: Buffer): boolean {
  const stored = parseNumber(block.subarray(148, 156));
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte >= 0x80 ? byte - 0x100 : byte;
  }
  // Some old writers summed signed chars; both are accepted, as GNU tar does.
  return stored === unsigned || stored === signed;
}

/** An octal field (NUL/space padded), or GNU base-256 when the high bit is set. */
function parseNumber(field: Buffer): number | undefined {
  if ((field[0]! & 0x80) !== 0) {
    if ((field[0]! & 0x40) !== 0) return undefined; // negative
    let value = field[0]! & 0x3f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return Number.isSafeInteger(value) ? value : undefined;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (text === '') return 0;
  return /^[0-7]+$/.test(text) && Number.isSafeInteger(parseInt(text, 8)) ? parseInt(text, 8) : undefined;
}

function cString(bytes: Buffer): string {
  const nul = bytes.indexOf(0);
  return bytes.toString('utf8', 0, nul === -1 ? bytes.length : nul);
}

function sourceInvalid(message: string, cause?: unknown): RegistryError {
  return new RegistryError('ERR_SOURCE_INVALID', message, cause === undefined ? {} : { cause });
}
