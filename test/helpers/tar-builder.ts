// Builds tar streams in code, for layer fixtures (never checked in as binaries).
//
//   packTar([file('a/b', 'hi', { mode: 0o4755 }), dir('d'), symlink('l', '/etc')])   // via tar-stream pack()
//   new RawTar().pax({ 'SCHILY.xattr.user.x': Buffer.from([0xff]) }).file('f', 'x').end().toBuffer()
//
// packTar covers well-formed archives. RawTar crafts headers byte by byte for what pack() cannot
// write: binary PAX values, PAX uid/gid/mtime/size overrides, global headers, GNU long names,
// NUL bytes and `..` in names, lying sizes, bad checksums, huge long headers, truncation.
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';

const require = createRequire(import.meta.url);
const tarStream = require('tar-stream') as typeof import('tar-stream');

export type EntryType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';

export interface EntrySpec {
  name: string;
  type?: EntryType;
  data?: Buffer | string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extra PAX records (text values only: tar-stream writes them as UTF-8). */
  pax?: Record<string, string>;
}

/** Default mtime of built entries: 2020-09-13T12:26:40Z. */
export const DEFAULT_MTIME = new Date(1_600_000_000_000);

export const file = (name: string, data: Buffer | string = '', extra: Partial<EntrySpec> = {}): EntrySpec => ({
  name,
  type: 'file',
  data,
  mode: 0o644,
  ...extra,
});
export const dir = (name: string, extra: Partial<EntrySpec> = {}): EntrySpec => ({ name, type: 'directory', mode: 0o755, ...extra });
export const symlink = (name: string, target: string, extra: Partial<EntrySpec> = {}): EntrySpec => ({
  name,
  type: 'symlink',
  linkname: target,
  mode: 0o777,
  ...extra,
});
export const hardlink = (name: string, target: string, extra: Partial<EntrySpec> = {}): EntrySpec => ({
  name,
  type: 'link',
  linkname: target,
  mode: 0o644,
  ...extra,
});
export const chardev = (name: string, major: number, minor: number, extra: Partial<EntrySpec> = {}): EntrySpec => ({
  name,
  type: 'character-device',
  devmajor: major,
  devminor: minor,
  mode: 0o666,
  ...extra,
});
export const blockdev = (name: string, major: number, minor: number, extra: Partial<EntrySpec> = {}): EntrySpec => ({
  name,
  type: 'block-device',
  devmajor: major,
  devminor: minor,
  mode: 0o660,
  ...extra,
});
export const fifo = (name: string, extra: Partial<EntrySpec> = {}): EntrySpec => ({ name, type: 'fifo', mode: 0o644, ...extra });

/** A well-formed tar (USTAR, PAX for long names) written by tar-stream's pack(). */
export async function packTar(entries: readonly EntrySpec[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (chunk) => chunks.push(chunk as Buffer));
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const spec of entries) {
    const data = typeof spec.data === 'string' ? Buffer.from(spec.data) : spec.data;
    const header = {
      name: spec.name,
      type: spec.type ?? 'file',
      mode: spec.mode ?? 0o644,
      uid: spec.uid ?? 0,
      gid: spec.gid ?? 0,
      mtime: spec.mtime ?? DEFAULT_MTIME,
      ...(spec.linkname === undefined ? {} : { linkname: spec.linkname }),
      ...(spec.devmajor === undefined ? {} : { devmajor: spec.devmajor, devminor: spec.devminor ?? 0 }),
      ...(spec.pax === undefined ? {} : { pax: spec.pax }),
      ...(data === undefined ? {} : { size: data.length }),
    };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (data !== undefined && (spec.type ?? 'file') === 'file') pack.entry(header, data, cb);
      else (pack.entry(header, cb) as unknown as { end(): void }).end(); // streamx typings want an argument
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

// ---- raw header crafting ---------------------------------------------------------------------

export interface RawHeader {
  /** Name bytes (latin1 string or Buffer), up to 100 bytes unless `prefix` is used. */
  name: string | Buffer;
  /** Typeflag character: '0' file, '1' hardlink, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, 'x', 'g', 'L', 'K'... */
  typeflag?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** Seconds since the epoch. */
  mtime?: number;
  linkname?: string | Buffer;
  devmajor?: number;
  devminor?: number;
  /** USTAR prefix field (155 bytes). */
  prefix?: string | Buffer;
  /** 'ustar' (POSIX, default) or 'gnu' ("ustar  " magic). */
  magic?: 'ustar' | 'gnu';
  /** Corrupt the checksum on purpose. */
  badChecksum?: boolean;
}

/** One 512-byte header block. */
export function rawHeader(h: RawHeader): Buffer {
  const block = Buffer.alloc(512);
  const put = (value: string | Buffer, offset: number, length: number): void => {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
    if (bytes.length > length) throw new Error(`raw header field too long (${bytes.length} > ${length})`);
    bytes.copy(block, offset);
  };
  const octal = (value: number, offset: number, length: number): void => {
    put(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length);
  };
  put(h.name, 0, 100);
  octal(h.mode ?? 0o644, 100, 8);
  numeric(block, h.uid ?? 0, 108, 8);
  numeric(block, h.gid ?? 0, 116, 8);
  numeric(block, h.size ?? 0, 124, 12);
  numeric(block, h.mtime ?? DEFAULT_MTIME.getTime() / 1000, 136, 12);
  put(h.typeflag ?? '0', 156, 1);
  if (h.linkname !== undefined) put(h.linkname, 157, 100);
  if (h.magic === 'gnu') put('ustar  \0', 257, 8);
  else put('ustar\x0000', 257, 8);
  octal(h.devmajor ?? 0, 329, 8);
  octal(h.devminor ?? 0, 337, 8);
  if (h.prefix !== undefined) put(h.prefix, 345, 155);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  if (h.badChecksum === true) sum += 1;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return block;
}

/** Octal when it fits, GNU base-256 otherwise (large uids, sizes). */
function numeric(block: Buffer, value: number, offset: number, length: number): void {
  const text = value.toString(8);
  if (text.length < length) {
    Buffer.from(`${text.padStart(length - 1, '0')}\0`, 'latin1').copy(block, offset);
    return;
  }
  let v = BigInt(value);
  for (let i = offset + length - 1; i > offset; i--) {
    block[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  block[offset] = 0x80;
}

/** Data padded to a 512-byte boundary. */
export function padded(data: Buffer): Buffer {
  const rest = data.length % 512;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(512 - rest)]);
}

/** PAX records `LEN KEY=VALUE\n`, values byte for byte. */
export function paxBody(records: Record<string, string | Buffer> | Array<[string, string | Buffer]>): Buffer {
  const list = Array.isArray(records) ? records : Object.entries(records);
  const parts = list.map(([key, value]) => {
    const kv = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), typeof value === 'string' ? Buffer.from(value, 'utf8') : value, Buffer.from('\n')]);
    let len = kv.length + 1;
    while (String(len).length + kv.length !== len) len = String(len).length + kv.length;
    return Buffer.concat([Buffer.from(String(len)), kv]);
  });
  return Buffer.concat(parts);
}

/** Sequential raw tar writer. */
export class RawTar {
  readonly #parts: Buffer[] = [];

  /** A local PAX header ('x') applying to the next entry. */
  pax(records: Record<string, string | Buffer> | Array<[string, string | Buffer]>, name = 'PaxHeader'): this {
    const body = paxBody(records);
    return this.header({ name, typeflag: 'x', size: body.length }).raw(padded(body));
  }

  /** A global PAX header ('g'). */
  globalPax(records: Record<string, string | Buffer>): this {
    const body = paxBody(records);
    return this.header({ name: 'GlobalHead', typeflag: 'g', size: body.length }).raw(padded(body));
  }

  /** A GNU long name ('L') or long link ('K') record for the next entry. */
  gnuLong(kind: 'L' | 'K', value: string | Buffer): this {
    const body = Buffer.concat([typeof value === 'string' ? Buffer.from(value, 'utf8') : value, Buffer.alloc(1)]);
    return this.header({ name: '././@LongLink', typeflag: kind, size: body.length, magic: 'gnu' }).raw(padded(body));
  }

  header(h: RawHeader): this {
    this.#parts.push(rawHeader(h));
    return this;
  }

  /** A header and its (padded) data; `size` defaults to the data length. */
  entry(h: RawHeader, data: Buffer | string = Buffer.alloc(0)): this {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    this.header({ size: bytes.length, ...h });
    if (bytes.length > 0) this.raw(padded(bytes));
    return this;
  }

  file(name: string | Buffer, data: Buffer | string = '', h: Partial<RawHeader> = {}): this {
    return this.entry({ name, typeflag: '0', ...h }, data);
  }

  dir(name: string | Buffer, h: Partial<RawHeader> = {}): this {
    return this.entry({ name, typeflag: '5', mode: 0o755, ...h });
  }

  symlink(name: string | Buffer, target: string | Buffer, h: Partial<RawHeader> = {}): this {
    return this.entry({ name, typeflag: '2', linkname: target, mode: 0o777, ...h });
  }

  hardlink(name: string | Buffer, target: string | Buffer, h: Partial<RawHeader> = {}): this {
    return this.entry({ name, typeflag: '1', linkname: target, ...h });
  }

  /** Bytes as they are (no padding). */
  raw(bytes: Buffer): this {
    this.#parts.push(bytes);
    return this;
  }

  /** End-of-archive marker: two zero blocks. */
  end(): this {
    return this.raw(Buffer.alloc(1024));
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.#parts);
  }
}

// ---- streams ---------------------------------------------------------------------------------

/** A Readable of `data` in chunks of `chunkSize` (a network-like input). */
export function streamOf(data: Buffer, chunkSize = 64 * 1024): Readable {
  let offset = 0;
  return new Readable({
    read() {
      if (offset >= data.length) {
        this.push(null);
        return;
      }
      this.push(data.subarray(offset, offset + chunkSize));
      offset += chunkSize;
    },
  });
}

export function gzip(data: Buffer): Buffer {
  return gzipSync(data);
}

/** zstd via zstd-napi (in process, no CLI needed). */
export function zstd(data: Buffer): Buffer {
  const { compress } = require('zstd-napi') as { compress(data: Buffer, params?: object): Buffer };
  return compress(data);
}
