/**
 * GNU sparse files (PAX formats 0.0, 0.1 and 1.0, as `tar --sparse --format=pax` writes them):
 * the archive holds only the data regions; the holes are never inflated. Regions are written at
 * their offsets with positional writes and the file is extended to its real size with ftruncate,
 * so the extracted file is sparse again.
 */
import { ftruncateSync, writeSync } from 'node:fs';
import { LayerError } from './errors.js';
import { toRegions, type PaxSparse, type SparseRegion } from './pax.js';

/** Largest 1.0 sparse map accepted (bytes of decimal text before the data); bounds memory. */
export const MAX_SPARSE_MAP_BYTES = 4 * 1024 * 1024;
const BLOCK = 512;

/** Writes the stored data of a sparse entry into `fd`, region by region. */
export class SparseFileWriter {
  readonly #fd: number;
  readonly #sparse: PaxSparse;
  readonly #entry: string;
  /** Bytes of the entry's data still to come (map + regions). */
  #remaining: number;
  #regions: readonly SparseRegion[] | undefined;
  /** 1.0 only: map text collected so far, then the padding still to skip. */
  #mapText: Buffer[] = [];
  #mapLength = 0;
  #paddingToSkip = 0;
  #region = 0;
  #inRegion = 0;

  constructor(fd: number, sparse: PaxSparse, storedSize: number, entry: string) {
    this.#fd = fd;
    this.#sparse = sparse;
    this.#entry = entry;
    this.#remaining = storedSize;
    if (sparse.map !== undefined) this.#setRegions(sparse.map, storedSize);
  }

  write(chunk: Buffer): void {
    this.#remaining -= chunk.length;
    let data = chunk;
    if (this.#regions === undefined) {
      data = this.#readMap(data);
      if (this.#regions === undefined) return;
    }
    if (this.#paddingToSkip > 0) {
      const skip = Math.min(this.#paddingToSkip, data.length);
      this.#paddingToSkip -= skip;
      data = data.subarray(skip);
    }
    this.#writeData(data);
  }

  /** Checks that every region arrived and gives the file its real size. */
  finish(): void {
    const regions = this.#regions;
    if (regions === undefined || this.#paddingToSkip > 0) throw this.#corrupt('sparse map is truncated');
    while (this.#region < regions.length && regions[this.#region]!.length === 0) this.#region++;
    if (this.#region !== regions.length) throw this.#corrupt('sparse data is shorter than its map');
    ftruncateSync(this.#fd, this.#sparse.realSize);
  }

  #writeData(data: Buffer): void {
    const regions = this.#regions!;
    let pos = 0;
    while (pos < data.length) {
      const region = regions[this.#region];
      if (region === undefined) throw this.#corrupt('sparse data is longer than its map');
      const n = Math.min(region.length - this.#inRegion, data.length - pos);
      if (n > 0) {
        let written = 0;
        while (written < n) {
          written += writeSync(this.#fd, data, pos + written, n - written, region.offset + this.#inRegion + written);
        }
        this.#inRegion += n;
        pos += n;
      }
      if (this.#inRegion === region.length) {
        this.#region++;
        this.#inRegion = 0;
      }
    }
  }

  /** 1.0: the data starts with `N\n` and N `offset\nlength\n` pairs, padded to 512 bytes. */
  #readMap(data: Buffer): Buffer {
    this.#mapText.push(data);
    this.#mapLength += data.length;
    const text = Buffer.concat(this.#mapText, this.#mapLength);
    const numbers: number[] = [];
    let start = 0;
    let count: number | undefined;
    for (let i = 0; i < text.length; i++) {
      if (text[i] !== 0x0a) continue;
      const token = text.toString('latin1', start, i);
      if (!/^[0-9]{1,16}$/.test(token)) throw this.#corrupt(`bad number ${JSON.stringify(token)} in the sparse map`);
      numbers.push(Number(token));
      start = i + 1;
      count ??= numbers[0];
      if (numbers.length === 1 + 2 * count!) {
        const mapBytes = start;
        const padded = Math.ceil(mapBytes / BLOCK) * BLOCK;
        this.#setRegions(toRegions(numbers.slice(1)), this.#remaining + text.length - padded);
        this.#mapText = [];
        this.#paddingToSkip = padded - mapBytes;
        return text.subarray(mapBytes);
      }
    }
    if (this.#mapLength > MAX_SPARSE_MAP_BYTES) throw this.#corrupt('sparse map is too large');
    return Buffer.alloc(0);
  }

  /** Validates the map: sorted, non-overlapping, inside the real size, adding up to the data. */
  #setRegions(regions: readonly SparseRegion[], dataBytes: number): void {
    let end = 0;
    let total = 0;
    for (const { offset, length } of regions) {
      if (offset < end || offset + length > this.#sparse.realSize) throw this.#corrupt('sparse map regions overlap or exceed the file size');
      end = offset + length;
      total += length;
    }
    if (total !== dataBytes) throw this.#corrupt(`sparse map describes ${total} bytes but the entry stores ${dataBytes}`);
    this.#regions = regions;
  }

  #corrupt(message: string): LayerError {
    return new LayerError('ERR_LAYER_CORRUPT', message, { entry: this.#entry });
  }
}
