/**
 * PAX extended header records (POSIX.1-2001 `x`/`g` headers), parsed from raw bytes.
 *
 * tar-stream decodes every record value as UTF-8 (so binary xattr values such as
 * `security.capability` come out with U+FFFD in place of bytes >= 0x80) and ignores uid, gid and
 * nanosecond mtime. This module keeps each value as the bytes in the archive and interprets the
 * keywords an image layer needs. tar-reader.ts plugs it into tar-stream.
 */
import { LayerError } from './errors.js';

/** One `LEN KEY=VALUE\n` record: the key as text, the value as the archive's bytes. */
export interface PaxRecord {
  readonly key: string;
  readonly value: Buffer;
}

/** A GNU sparse description found in PAX records (formats 0.0, 0.1 and 1.0). */
export interface PaxSparse {
  /** `0.0`/`0.1`: the map is in the header; `1.0`: it starts the entry's data. */
  readonly version: '0.0' | '0.1' | '1.0';
  /** The file's real (expanded) size. */
  readonly realSize: number;
  /** The real name (GNU tar stores `GNUSparseFile.N/name` in the ustar header). */
  readonly name?: Buffer;
  /** Offset/length pairs for 0.0 and 0.1; undefined for 1.0. */
  readonly map?: readonly SparseRegion[];
}

export interface SparseRegion {
  readonly offset: number;
  readonly length: number;
}

/** What PAX records override in an entry's header. Names are raw bytes (decoded by the reader). */
export interface PaxOverrides {
  path?: Buffer;
  linkpath?: Buffer;
  size?: number;
  uid?: number;
  gid?: number;
  mtimeNs?: bigint;
  atimeNs?: bigint;
  /** Extended attributes, values byte for byte. */
  xattrs: Map<string, Buffer>;
  sparse?: PaxSparse;
}

const NEWLINE = 0x0a;
const SPACE = 0x20;
const EQUALS = 0x3d;
const MAX_UINT32 = 0xffff_ffff;

/**
 * Splits a PAX header body into records. Strict: a length that does not land on a newline is
 * corruption (tar-stream silently stops there and drops the rest). NUL padding after the last
 * record is tolerated because some writers pad the body.
 */
export function parsePaxRecords(body: Buffer): PaxRecord[] {
  const records: PaxRecord[] = [];
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0 && body.subarray(pos).every((b) => b === 0)) break;
    const space = body.indexOf(SPACE, pos);
    const digits = space === -1 ? '' : body.toString('latin1', pos, space);
    if (!/^[0-9]{1,19}$/.test(digits)) throw corrupt(`bad record length at byte ${pos}`);
    const length = Number(digits);
    const end = pos + length;
    if (end > body.length || end <= space + 1 || body[end - 1] !== NEWLINE) {
      throw corrupt(`record at byte ${pos} has a wrong length (${length})`);
    }
    const equals = body.indexOf(EQUALS, space + 1);
    if (equals === -1 || equals >= end - 1) throw corrupt(`record at byte ${pos} has no "="`);
    const key = body.toString('utf8', space + 1, equals);
    if (key === '') throw corrupt(`record at byte ${pos} has an empty key`);
    // A copy, so the record does not pin the (up to a few MiB) header buffer.
    records.push({ key, value: Buffer.from(body.subarray(equals + 1, end - 1)) });
    pos = end;
  }
  return records;
}

/** Interprets records into overrides. Unknown keywords (comment, ctime, uname...) are ignored. */
export function interpretPax(records: readonly PaxRecord[]): PaxOverrides {
  const out: PaxOverrides = { xattrs: new Map() };
  const sparse = new SparseCollector();
  for (const { key, value } of records) {
    const text = (): string => value.toString('utf8');
    // An empty value unsets a keyword (POSIX: "the keyword is deleted"); for an xattr it is a
    // legitimate empty value.
    if (value.length === 0 && !key.includes('.xattr.')) continue;
    switch (key) {
      case 'path':
        out.path = value;
        break;
      case 'linkpath':
        out.linkpath = value;
        break;
      case 'size':
        out.size = parseUnsigned(key, text(), Number.MAX_SAFE_INTEGER);
        break;
      case 'uid':
        out.uid = parseUnsigned(key, text(), MAX_UINT32);
        break;
      case 'gid':
        out.gid = parseUnsigned(key, text(), MAX_UINT32);
        break;
      case 'mtime':
        out.mtimeNs = parseTimeNs(key, text());
        break;
      case 'atime':
        out.atimeNs = parseTimeNs(key, text());
        break;
      default:
        if (key.startsWith('SCHILY.xattr.')) {
          const name = key.slice('SCHILY.xattr.'.length);
          if (name !== '') out.xattrs.set(name, value);
        } else if (key.startsWith('LIBARCHIVE.xattr.')) {
          // bsdtar: URL-encoded name, base64 value.
          const name = decodeURIComponentSafe(key.slice('LIBARCHIVE.xattr.'.length));
          if (name !== '') out.xattrs.set(name, Buffer.from(text(), 'base64'));
        } else if (key.startsWith('GNU.sparse.')) {
          sparse.add(key, value);
        }
    }
  }
  const found = sparse.result();
  if (found !== undefined) out.sparse = found;
  return out;
}

/** `local` over `global` (global `g` headers apply to every later entry; local `x` to the next one). */
export function mergePax(global: PaxOverrides | undefined, local: PaxOverrides | undefined): PaxOverrides {
  if (global === undefined) return local ?? { xattrs: new Map() };
  if (local === undefined) return global;
  return { ...global, ...local, xattrs: new Map([...global.xattrs, ...local.xattrs]) };
}

/** Collects GNU.sparse.* keywords; 0.0 repeats offset/numbytes pairs, so order matters. */
class SparseCollector {
  #major: string | undefined;
  #minor: string | undefined;
  #size: number | undefined;
  #realSize: number | undefined;
  #name: Buffer | undefined;
  #map: string | undefined;
  #pairs: number[] = [];
  #seen = false;

  add(key: string, value: Buffer): void {
    this.#seen = true;
    const text = value.toString('utf8');
    switch (key) {
      case 'GNU.sparse.major':
        this.#major = text;
        break;
      case 'GNU.sparse.minor':
        this.#minor = text;
        break;
      case 'GNU.sparse.size':
        this.#size = parseUnsigned(key, text, Number.MAX_SAFE_INTEGER);
        break;
      case 'GNU.sparse.realsize':
        this.#realSize = parseUnsigned(key, text, Number.MAX_SAFE_INTEGER);
        break;
      case 'GNU.sparse.name':
        this.#name = value;
        break;
      case 'GNU.sparse.map':
        this.#map = text;
        break;
      case 'GNU.sparse.offset':
      case 'GNU.sparse.numbytes':
        // 0.0: offset then numbytes, repeated; their order defines the map.
        if ((key === 'GNU.sparse.offset') !== (this.#pairs.length % 2 === 0)) {
          throw corrupt('GNU.sparse.offset/numbytes records out of order');
        }
        this.#pairs.push(parseUnsigned(key, text, Number.MAX_SAFE_INTEGER));
        break;
      default:
      // numblocks is redundant with the map; anything else is informational.
    }
  }

  result(): PaxSparse | undefined {
    if (!this.#seen) return undefined;
    const named = this.#name === undefined ? {} : { name: this.#name };
    if (this.#major !== undefined || this.#minor !== undefined) {
      if (this.#major !== '1' || this.#minor !== '0') {
        throw new LayerError('ERR_LAYER_UNSUPPORTED', `GNU sparse format ${this.#major}.${this.#minor} is not supported`);
      }
      const realSize = this.#realSize ?? this.#size;
      if (realSize === undefined) throw corrupt('GNU sparse 1.0 header without GNU.sparse.realsize');
      return { version: '1.0', realSize, ...named };
    }
    if (this.#size === undefined) {
      if (this.#map === undefined && this.#pairs.length === 0) return undefined; // only informational keys
      throw corrupt('GNU sparse map without GNU.sparse.size');
    }
    if (this.#map !== undefined) {
      const numbers = this.#map === '' ? [] : this.#map.split(',').map((n) => parseUnsigned('GNU.sparse.map', n, Number.MAX_SAFE_INTEGER));
      return { version: '0.1', realSize: this.#size, map: toRegions(numbers), ...named };
    }
    return { version: '0.0', realSize: this.#size, map: toRegions(this.#pairs), ...named };
  }
}

/** Offset/length pairs as regions; an odd count is corruption. */
export function toRegions(numbers: readonly number[]): SparseRegion[] {
  if (numbers.length % 2 !== 0) throw corrupt('sparse map has an odd number of values');
  const regions: SparseRegion[] = [];
  for (let i = 0; i < numbers.length; i += 2) regions.push({ offset: numbers[i]!, length: numbers[i + 1]! });
  return regions;
}

function parseUnsigned(key: string, text: string, max: number): number {
  if (!/^[0-9]{1,20}$/.test(text)) throw corrupt(`PAX ${key}=${JSON.stringify(text)} is not a number`);
  const value = Number(text);
  if (value > max) throw corrupt(`PAX ${key}=${text} is out of range`);
  return value;
}

/** `SECONDS[.FRACTION]`, possibly negative, to nanoseconds without going through a float. */
export function parseTimeNs(key: string, text: string): bigint {
  const match = /^(-?)([0-9]{1,19})(?:\.([0-9]*))?$/.exec(text);
  if (match === null) throw corrupt(`PAX ${key}=${JSON.stringify(text)} is not a time`);
  const [, sign, seconds, fraction = ''] = match;
  const ns = BigInt(seconds!) * 1_000_000_000n + BigInt((fraction + '000000000').slice(0, 9));
  return sign === '-' ? -ns : ns;
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw corrupt(`LIBARCHIVE.xattr name ${JSON.stringify(text)} is not URL-encoded`);
  }
}

function corrupt(message: string): LayerError {
  return new LayerError('ERR_LAYER_CORRUPT', `invalid PAX header: ${message}`);
}
