/**
 * `oci:DIR[:REF]`: images from an OCI image layout directory (`oci-layout`, `index.json`,
 * `blobs/<alg>/<hex>`), as skopeo, umoci, buildah and `docker buildx -o type=oci` write them.
 *
 * The layout is untrusted input like a registry: digests are validated before they name a file,
 * files are read with size caps, and every manifest is checked against its digest. Blobs are
 * streamed unverified (the puller verifies them, as for any source).
 */
import { constants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Digest, digestHex, isDigest, sha256 } from '../oci/digest.js';
import { MediaType, REF_NAME_ANNOTATION } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import { RegistryError } from '../registry/errors.js';
import type { BlobBody, FetchedManifest, ImageSource } from './types.js';

/** index.json and manifests are JSON read whole into memory: bounded, like a registry client's. */
export const MAX_INDEX_SIZE = 4 * 1024 * 1024;
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;
const MAX_LAYOUT_FILE_SIZE = 64 * 1024;

export async function openOciLayout(dir: string): Promise<OciLayoutSource> {
  const root = resolve(dir);
  const name = `oci:${dir}`;
  await checkDirectory(root, name);
  await checkLayoutFile(root, name);
  const indexBytes = await readLayoutFile(join(root, 'index.json'), MAX_INDEX_SIZE, name, 'index.json');
  return new OciLayoutSource(name, root, parseLayoutIndex(indexBytes, name));
}

export class OciLayoutSource implements ImageSource {
  readonly name: string;
  readonly #root: string;
  readonly #entries: readonly Descriptor[];

  /** Use openOciLayout(), which checks the layout first. */
  constructor(name: string, root: string, entries: readonly Descriptor[]) {
    this.name = name;
    this.#root = root;
    this.#entries = entries;
  }

  /** The reference to resolve when the user gave none: the only entry of index.json. */
  defaultReference(): string {
    if (this.#entries.length === 1) {
      const entry = this.#entries[0]!;
      return entry.annotations?.[REF_NAME_ANNOTATION] ?? entry.digest;
    }
    if (this.#entries.length === 0) throw new RegistryError('ERR_SOURCE_INVALID', `${this.name} holds no images (index.json lists no manifests)`);
    throw new RegistryError('ERR_REFERENCE_INVALID', `${this.name} holds ${this.#entries.length} images; name one (${describeNames(this.refNames())})`);
  }

  /** Names from index.json's org.opencontainers.image.ref.name annotations, in index order. */
  refNames(): string[] {
    const names = this.#entries.map((e) => e.annotations?.[REF_NAME_ANNOTATION]).filter((n): n is string => n !== undefined);
    return [...new Set(names)];
  }

  /**
   * `reference` is a ref.name annotation value, matched exactly (it may be `1.0` or a full
   * `docker.io/library/x:1.0`), or a digest naming any blob of the layout. The bytes are those of
   * the blob, checked against the digest (and the index.json size when it lists them).
   */
  async manifest(reference: string): Promise<FetchedManifest> {
    const byName = this.#entries.filter((e) => e.annotations?.[REF_NAME_ANNOTATION] === reference);
    const digests = [...new Set(byName.map((e) => e.digest))];
    if (digests.length > 1) {
      throw new RegistryError('ERR_SOURCE_INVALID', `${this.name}: index.json names ${digests.length} different manifests ${JSON.stringify(reference)} (${digests.join(', ')})`);
    }
    if (byName.length > 0) return this.#readManifest(byName[0]!.digest, byName[0]);
    const digest = parseDigestReference(reference);
    if (digest !== undefined) return this.#readManifest(digest, this.#entries.find((e) => e.digest === digest));
    throw new RegistryError('ERR_REGISTRY_NOT_FOUND', `no image ${JSON.stringify(reference)} in ${this.name} (${describeNames(this.refNames())})`);
  }

  async blob(descriptor: Descriptor, offset = 0): Promise<BlobBody> {
    checkOffset(offset);
    const digest = descriptorDigest(descriptor.digest, this.name);
    const handle = await this.#openBlob(digest);
    return { stream: handle.createReadStream({ start: offset, autoClose: true }), offset, servedBy: this.name };
  }

  /** Nothing is held open between calls: each blob stream closes its own file. */
  async close(): Promise<void> {}

  async #readManifest(digestText: string, listed: Descriptor | undefined): Promise<FetchedManifest> {
    const digest = descriptorDigest(digestText, this.name);
    const handle = await this.#openBlob(digest);
    const bytes = await readWhole(handle, MAX_MANIFEST_SIZE, `${this.name}: manifest ${digest}`);
    if (sha256(bytes) !== digest || (listed !== undefined && listed.size !== bytes.length)) {
      throw new RegistryError('ERR_DIGEST_MISMATCH', `${this.name}: blob ${digest} does not match its digest${listed === undefined ? '' : ' and size'} (corrupt layout)`);
    }
    return { bytes, digest, mediaType: manifestMediaType(bytes, listed?.mediaType, `${this.name}: manifest ${digest}`) };
  }

  async #openBlob(digest: Digest): Promise<FileHandle> {
    const path = join(this.#root, 'blobs', 'sha256', digestHex(digest));
    return openRegular(path, `${this.name}: blob ${digest}`, () => new RegistryError('ERR_REGISTRY_NOT_FOUND', `blob ${digest} is missing from ${this.name}`));
  }
}

// ---- shared with docker-archive.ts ---------------------------------------------------------

const DIGEST_ALGORITHM = /^(sha256|sha384|sha512|blake3):/;

/**
 * A digest when `reference` is one (starts with a known algorithm), else undefined (a tag).
 * Only sha256 is supported; a malformed digest is refused rather than looked up as a tag.
 */
export function parseDigestReference(reference: string): Digest | undefined {
  const algorithm = DIGEST_ALGORITHM.exec(reference)?.[1];
  if (algorithm === undefined) return undefined;
  if (algorithm !== 'sha256') throw new RegistryError('ERR_UNSUPPORTED', `${algorithm} digests are not supported: ${reference}`);
  if (!isDigest(reference)) throw new RegistryError('ERR_REFERENCE_INVALID', `not a valid sha256 digest: ${JSON.stringify(reference)}`);
  return reference;
}

/**
 * The media type of a manifest or index from its own `mediaType` field (it is inside the
 * verified bytes), else the descriptor's, else its shape (`manifests` = index).
 */
export function manifestMediaType(bytes: Buffer, listed: string | undefined, what: string): string {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new RegistryError('ERR_SOURCE_INVALID', `${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null) throw new RegistryError('ERR_SOURCE_INVALID', `${what} is not a JSON object`);
  // Both OCI and Docker schema 2 say schemaVersion 2; it also keeps image configs (which have a
  // `config` key too) from passing for manifests.
  const version = (value as { schemaVersion?: unknown }).schemaVersion;
  if (version !== 2) throw new RegistryError('ERR_UNSUPPORTED', `${what} is not an image manifest or index (schemaVersion ${JSON.stringify(version)})`);
  const own = (value as { mediaType?: unknown }).mediaType;
  if (typeof own === 'string' && own !== '') return own;
  if (listed !== undefined) return listed;
  if (Array.isArray((value as { manifests?: unknown }).manifests)) return MediaType.ociIndex;
  if ((value as { config?: unknown }).config !== undefined) return MediaType.ociManifest;
  throw new RegistryError('ERR_UNSUPPORTED', `${what} is neither an image manifest nor an index`);
}

/** A descriptor's digest, validated before it becomes a file name. */
export function descriptorDigest(value: string, source: string): Digest {
  if (parseDigestReference(value) === undefined) throw new RegistryError('ERR_SOURCE_INVALID', `${source}: not a digest: ${JSON.stringify(value)}`);
  return value as Digest;
}

export function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`bad blob offset ${offset}`);
}

/** "it has: a, b" for messages about a name that was not found. */
export function describeNames(names: readonly string[]): string {
  return names.length === 0 ? 'it names no images' : `it has: ${names.join(', ')}`;
}

// ---- files -----------------------------------------------------------------------------------

async function checkDirectory(root: string, name: string): Promise<void> {
  let stat;
  try {
    stat = await fsp.stat(root);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'ERR_REGISTRY_NOT_FOUND' : 'ERR_SOURCE_INVALID';
    throw new RegistryError(code, `${name}: ${(err as Error).message}`, { cause: err });
  }
  if (!stat.isDirectory()) throw new RegistryError('ERR_SOURCE_INVALID', `${name}: not a directory`);
}

async function checkLayoutFile(root: string, name: string): Promise<void> {
  const bytes = await readLayoutFile(join(root, 'oci-layout'), MAX_LAYOUT_FILE_SIZE, name, 'oci-layout');
  let version: unknown;
  try {
    version = (JSON.parse(bytes.toString('utf8')) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
  } catch {
    throw new RegistryError('ERR_SOURCE_INVALID', `${name}: oci-layout is not JSON`);
  }
  if (typeof version !== 'string') throw new RegistryError('ERR_SOURCE_INVALID', `${name}: oci-layout has no imageLayoutVersion`);
  // 1.x layouts stay readable by 1.0 readers (the spec versions the format semantically).
  if (!/^1\.\d+\.\d+$/.test(version)) throw new RegistryError('ERR_UNSUPPORTED', `${name}: image layout version ${JSON.stringify(version)} is not supported (1.0.0 is)`);
}

async function readLayoutFile(path: string, max: number, name: string, what: string): Promise<Buffer> {
  const handle = await openRegular(path, `${name}: ${what}`, () => new RegistryError('ERR_SOURCE_INVALID', `${name} is not an OCI image layout: it has no ${what}`));
  return readWhole(handle, max, `${name}: ${what}`);
}

/**
 * Opens a regular file; anything else (a FIFO, a device, a directory) is refused. Symlinks are
 * followed: what they lead to is checked like any content (digest), and `cp -rs` copies work.
 */
async function openRegular(path: string, what: string, missing: () => RegistryError): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO must not hang before fstat can refuse it (no effect on files).
    handle = await fsp.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missing();
    throw new RegistryError('ERR_SOURCE_INVALID', `${what}: ${(err as Error).message}`, { cause: err });
  }
  const stat = await handle.stat().catch(async (err: unknown) => {
    await handle.close();
    throw err;
  });
  if (!stat.isFile()) {
    await handle.close();
    throw new RegistryError('ERR_SOURCE_INVALID', `${what} is not a regular file`);
  }
  return handle;
}

/** The whole file, refusing one above `max` bytes; closes the handle. */
async function readWhole(handle: FileHandle, max: number, what: string): Promise<Buffer> {
  try {
    const { size } = await handle.stat();
    if (size > max) throw new RegistryError('ERR_SOURCE_INVALID', `${what} is ${size} bytes, more than the ${max} allowed`);
    const buffer = Buffer.alloc(size);
    const { bytesRead } = await handle.read(buffer, 0, size, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function parseLayoutIndex(bytes: Buffer, name: string): Descriptor[] {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new RegistryError('ERR_SOURCE_INVALID', `${name}: index.json is not JSON: ${(err as Error).message}`);
  }
  const index = value as { schemaVersion?: unknown; manifests?: unknown } | null;
  if (typeof index !== 'object' || index === null || index.schemaVersion !== 2 || !Array.isArray(index.manifests)) {
    throw new RegistryError('ERR_SOURCE_INVALID', `${name}: index.json is not an image index (schemaVersion 2 with a manifests list)`);
  }
  return index.manifests.map((d: unknown, i) => checkIndexEntry(d, `${name}: index.json entry ${i}`));
}

/** Shape checks only: the digest is validated when it is used, so one odd entry does not spoil the rest. */
function checkIndexEntry(value: unknown, what: string): Descriptor {
  const d = value as Partial<Descriptor> | null;
  const bad = (why: string): RegistryError => new RegistryError('ERR_SOURCE_INVALID', `${what} ${why}`);
  if (typeof d !== 'object' || d === null) throw bad('is not an object');
  if (typeof d.digest !== 'string') throw bad('has no digest');
  if (typeof d.mediaType !== 'string') throw bad('has no mediaType');
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw bad('has an invalid size');
  const annotations = d.annotations as unknown;
  if (annotations !== undefined && (typeof annotations !== 'object' || annotations === null || Object.values(annotations).some((v) => typeof v !== 'string'))) {
    throw bad('has invalid annotations');
  }
  return d as Descriptor;
}
