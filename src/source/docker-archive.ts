/**
 * `docker-archive:FILE[:REF]`: images from a `docker save` tar.
 *
 * The archive's `manifest.json` lists each image as a config path, RepoTags and layer paths.
 * Two layouts exist:
 * - legacy (Docker < 25, skopeo): `<hex>.json` configs and `<id>/layer.tar` (or `<hex>.tar`)
 *   layers, often symlinks to one another for duplicate layers. There is no registry manifest,
 *   so one is synthesized (Docker v2 schema 2) from the members' sha256 and size.
 * - Docker >= 25: the same manifest.json pointing into an embedded OCI layout (`blobs/sha256/<hex>`,
 *   `index.json`, `oci-layout`). The real manifest found there is served, so digests match the
 *   original image; an image the layout does not describe falls back to synthesis.
 *
 * Nothing is extracted: members are streamed from their offsets in the tar (tar-file-index.ts).
 */
import { createHash } from 'node:crypto';
import { type Digest, digestHex, sha256 } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import { RegistryError } from '../registry/errors.js';
import { formatReference, parseReference } from '../registry/reference.js';
import { checkOffset, describeNames, descriptorDigest, MAX_INDEX_SIZE, MAX_MANIFEST_SIZE, manifestMediaType, parseDigestReference } from './oci-layout.js';
import { normalizeMemberName, type TarMember, TarFileIndex } from './tar-file-index.js';
import type { BlobBody, FetchedManifest, ImageSource } from './types.js';

/** What skopeo (containers/image) calls a docker-archive layer: an uncompressed tar. */
export const DOCKER_LAYER_TAR = 'application/vnd.docker.image.rootfs.diff.tar';

const MAX_ARCHIVE_MANIFEST_SIZE = 4 * 1024 * 1024;
/** Nested indexes followed in an embedded OCI layout (an index of indexes is already unusual). */
const MAX_INDEX_DEPTH = 4;
const MAX_EMBEDDED_MANIFESTS = 1000;

/** One entry of manifest.json; paths as the archive spells them. */
interface ArchiveImage {
  config: string;
  repoTags: string[];
  layers: string[];
}

interface MemberInfo {
  digest: Digest;
  size: number;
  /** The first bytes, to tell gzip and zstd layers from plain tars. */
  head: Buffer;
}

export async function openDockerArchive(file: string): Promise<DockerArchiveSource> {
  const tar = await TarFileIndex.open(file);
  try {
    const images = await readArchiveManifest(tar);
    for (const image of images) {
      for (const path of [image.config, ...image.layers]) tar.resolve(path);
    }
    const embedded = await embeddedManifests(tar);
    return new DockerArchiveSource(`docker-archive:${file}`, tar, images, embedded);
  } catch (err) {
    await tar.close();
    throw err;
  }
}

export class DockerArchiveSource implements ImageSource {
  readonly name: string;
  readonly #tar: TarFileIndex;
  readonly #images: readonly ArchiveImage[];
  /** Manifests of the embedded OCI layout, matched to images at open. */
  readonly #real: ReadonlyMap<number, FetchedManifest>;
  readonly #embedded: readonly EmbeddedManifest[];
  readonly #synthesized = new Map<number, Promise<FetchedManifest>>();
  /** Member info by data offset: duplicate layers (links to one member) are hashed once. */
  readonly #described = new Map<number, Promise<MemberInfo>>();
  /** Blobs of synthesized manifests, by digest. */
  readonly #blobs = new Map<Digest, TarMember>();

  /** Use openDockerArchive(). */
  constructor(name: string, tar: TarFileIndex, images: readonly ArchiveImage[], embedded: readonly EmbeddedManifest[]) {
    this.name = name;
    this.#tar = tar;
    this.#images = images;
    this.#embedded = embedded;
    const real = new Map<number, FetchedManifest>();
    images.forEach((image, i) => {
      const match = embedded.find((m) => describesImage(m, image));
      if (match !== undefined) real.set(i, match.fetched);
    });
    this.#real = real;
  }

  /** The only image's first RepoTag, or `@0` when it has none. */
  defaultReference(): string {
    if (this.#images.length === 1) return this.#images[0]!.repoTags[0] ?? '@0';
    throw new RegistryError('ERR_REFERENCE_INVALID', `${this.name} holds ${this.#images.length} images; name one by tag or as @N (${describeNames(this.repoTags())})`);
  }

  /** Every RepoTag of every image, in archive order. */
  repoTags(): string[] {
    return this.#images.flatMap((image) => image.repoTags);
  }

  /**
   * `reference`: a RepoTag (compared normalised: `busybox` = `busybox:latest` =
   * `docker.io/library/busybox:latest`), `@N` (the Nth image, from 0), or the digest of an
   * image's manifest (or of any manifest in an embedded OCI layout).
   */
  async manifest(reference: string): Promise<FetchedManifest> {
    const digest = parseDigestReference(reference);
    if (digest !== undefined) return this.#manifestByDigest(digest);
    return this.#imageManifest(this.#imageIndex(reference));
  }

  async blob(descriptor: Descriptor, offset = 0): Promise<BlobBody> {
    checkOffset(offset);
    const digest = descriptorDigest(descriptor.digest, this.name);
    const member = await this.#blobMember(digest);
    return { stream: this.#tar.stream(member, offset), offset, servedBy: this.name };
  }

  async close(): Promise<void> {
    await this.#tar.close();
  }

  #imageIndex(reference: string): number {
    const position = /^@(\d+)$/.exec(reference)?.[1];
    if (position !== undefined) {
      const n = Number(position);
      if (n >= this.#images.length) throw new RegistryError('ERR_REGISTRY_NOT_FOUND', `${this.name} has no image @${n} (it holds ${this.#images.length})`);
      return n;
    }
    if (reference.startsWith('@')) throw new RegistryError('ERR_REFERENCE_INVALID', `bad image position ${JSON.stringify(reference)} (expected @0, @1...)`);
    const wanted = normalizeDockerReference(reference);
    // Docker never saves one tag twice; should a hand-made archive do so, the first image wins.
    const found = this.#images.findIndex((image) => image.repoTags.some((tag) => normalizeDockerReference(tag) === wanted));
    if (found === -1) throw new RegistryError('ERR_REGISTRY_NOT_FOUND', `no image ${JSON.stringify(reference)} in ${this.name} (${describeNames(this.repoTags())})`);
    return found;
  }

  async #imageManifest(i: number): Promise<FetchedManifest> {
    const real = this.#real.get(i);
    if (real !== undefined) return real;
    let pending = this.#synthesized.get(i);
    if (pending === undefined) {
      pending = this.#synthesize(this.#images[i]!);
      this.#synthesized.set(i, pending);
      pending.catch(() => this.#synthesized.delete(i)); // a failed read may be retried
    }
    return pending;
  }

  async #manifestByDigest(digest: Digest): Promise<FetchedManifest> {
    const embedded = this.#embedded.find((m) => m.fetched.digest === digest)?.fetched ?? (await this.#embeddedIndex(digest));
    if (embedded !== undefined) return embedded;
    // Synthesized digests are only known once computed: this hashes every remaining image.
    for (let i = 0; i < this.#images.length; i++) {
      const fetched = await this.#imageManifest(i);
      if (fetched.digest === digest) return fetched;
    }
    throw new RegistryError('ERR_REGISTRY_NOT_FOUND', `no manifest ${digest} in ${this.name}`);
  }

  /** An index of the embedded OCI layout (the caller then asks for its manifests by digest). */
  async #embeddedIndex(digest: Digest): Promise<FetchedManifest | undefined> {
    const member = this.#tar.lookup(blobPath(digest));
    if (member === undefined) return undefined;
    const bytes = await this.#tar.read(this.#tar.resolve(blobPath(digest)), MAX_MANIFEST_SIZE);
    if (sha256(bytes) !== digest) throw new RegistryError('ERR_DIGEST_MISMATCH', `${this.name}: member ${blobPath(digest)} does not match its digest`);
    return { bytes, digest, mediaType: manifestMediaType(bytes, undefined, `${this.name}: ${blobPath(digest)}`) };
  }

  async #synthesize(image: ArchiveImage): Promise<FetchedManifest> {
    const config = await this.#describe(image.config);
    const layers: Array<{ mediaType: string; size: number; digest: Digest }> = [];
    for (const path of image.layers) {
      const info = await this.#describe(path);
      layers.push({ mediaType: layerMediaType(info.head), size: info.size, digest: info.digest });
    }
    // Fixed key order and no whitespace: the same archive always gives the same digest.
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.dockerManifest,
      config: { mediaType: MediaType.dockerConfig, size: config.size, digest: config.digest },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    return { bytes, digest: sha256(bytes), mediaType: MediaType.dockerManifest };
  }

  /** sha256, size and first bytes of the file `path` names (links followed), computed once. */
  async #describe(path: string): Promise<MemberInfo> {
    const member = this.#tar.resolve(path);
    let pending = this.#described.get(member.offset);
    if (pending === undefined) {
      pending = hashMember(this.#tar, member).then((info) => {
        this.#blobs.set(info.digest, member);
        return info;
      });
      this.#described.set(member.offset, pending);
      pending.catch(() => this.#described.delete(member.offset));
    }
    return pending;
  }

  async #blobMember(digest: Digest): Promise<TarMember> {
    const known = this.#blobs.get(digest);
    if (known !== undefined) return known;
    // Embedded OCI layouts name blobs by digest: no hashing needed (the puller verifies).
    if (this.#tar.lookup(blobPath(digest)) !== undefined) return this.#tar.resolve(blobPath(digest));
    // Asked before manifest() (or for an image not synthesized yet): describe every image.
    for (let i = 0; i < this.#images.length; i++) {
      if (!this.#real.has(i)) await this.#imageManifest(i);
      const found = this.#blobs.get(digest);
      if (found !== undefined) return found;
    }
    throw new RegistryError('ERR_REGISTRY_NOT_FOUND', `blob ${digest} is not in ${this.name}`);
  }
}

/**
 * `busybox`, `busybox:latest`, `library/busybox` and `docker.io/library/busybox:latest` all give
 * `docker.io/library/busybox:latest` (Docker's defaults, via the registry reference parser). A
 * string that does not parse (a hand-made archive may hold any RepoTag) is compared as it is.
 */
export function normalizeDockerReference(reference: string): string {
  try {
    return formatReference(parseReference(reference));
  } catch {
    return reference;
  }
}

// ---- manifest.json -----------------------------------------------------------------------

async function readArchiveManifest(tar: TarFileIndex): Promise<ArchiveImage[]> {
  if (tar.lookup('manifest.json') === undefined) {
    const oci = tar.lookup('index.json') !== undefined && tar.lookup('oci-layout') !== undefined;
    const hint = oci ? ': it is an OCI archive (extract it and use oci:DIR)' : '; is it `docker save` output?';
    throw new RegistryError('ERR_SOURCE_INVALID', `${tar.path} has no manifest.json${hint}`);
  }
  const bytes = await tar.read(tar.resolve('manifest.json'), MAX_ARCHIVE_MANIFEST_SIZE);
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new RegistryError('ERR_SOURCE_INVALID', `${tar.path}: manifest.json is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(value)) throw new RegistryError('ERR_SOURCE_INVALID', `${tar.path}: manifest.json is not a list of images`);
  return value.map((entry: unknown, i) => checkArchiveImage(entry, `${tar.path}: manifest.json entry ${i}`));
}

function checkArchiveImage(value: unknown, what: string): ArchiveImage {
  const entry = value as { Config?: unknown; RepoTags?: unknown; Layers?: unknown } | null;
  const bad = (why: string): RegistryError => new RegistryError('ERR_SOURCE_INVALID', `${what} ${why}`);
  const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
  if (typeof entry !== 'object' || entry === null) throw bad('is not an object');
  if (typeof entry.Config !== 'string') throw bad('has no Config');
  if (!isStrings(entry.Layers)) throw bad('has no Layers list');
  // An untagged image has RepoTags null (docker) or absent.
  if (entry.RepoTags !== null && entry.RepoTags !== undefined && !isStrings(entry.RepoTags)) throw bad('has invalid RepoTags');
  return { config: entry.Config, repoTags: entry.RepoTags ?? [], layers: entry.Layers };
}

// ---- the embedded OCI layout (Docker >= 25) ----------------------------------------------

interface EmbeddedManifest {
  fetched: FetchedManifest;
  /** Normalised member names of its config and layers. */
  configPath: string;
  layerPaths: string[];
}

function blobPath(digest: Digest): string {
  return `blobs/sha256/${digestHex(digest)}`;
}

/** The manifest is the image's when config and layers are the very members manifest.json names. */
function describesImage(m: EmbeddedManifest, image: ArchiveImage): boolean {
  const layers = image.layers.map(normalizeMemberName);
  return (
    normalizeMemberName(image.config) === m.configPath &&
    layers.length === m.layerPaths.length &&
    layers.every((path, i) => path === m.layerPaths[i])
  );
}

/**
 * Image manifests reachable from the embedded index.json (nested indexes followed; entries whose
 * blobs were not saved, such as other platforms, skipped). manifest.json stays the authority:
 * a broken embedded layout only means manifests get synthesized, so it is never an error.
 */
async function embeddedManifests(tar: TarFileIndex): Promise<EmbeddedManifest[]> {
  if (tar.lookup('index.json') === undefined || tar.lookup('oci-layout') === undefined) return [];
  const found: EmbeddedManifest[] = [];
  try {
    const index = JSON.parse((await tar.read(tar.resolve('index.json'), MAX_INDEX_SIZE)).toString('utf8')) as unknown;
    await collectManifests(tar, index, 0, found);
  } catch {
    return found;
  }
  return found;
}

async function collectManifests(tar: TarFileIndex, index: unknown, depth: number, found: EmbeddedManifest[]): Promise<void> {
  const list = (index as { manifests?: unknown } | null)?.manifests;
  if (!Array.isArray(list) || depth > MAX_INDEX_DEPTH) return;
  for (const d of list as Array<Partial<Descriptor>>) {
    if (found.length >= MAX_EMBEDDED_MANIFESTS) return;
    const fetched = await readEmbedded(tar, d);
    if (fetched === undefined) continue;
    const value = JSON.parse(fetched.bytes.toString('utf8')) as { manifests?: unknown; config?: Partial<Descriptor>; layers?: unknown };
    if (Array.isArray(value.manifests)) await collectManifests(tar, value, depth + 1, found);
    else if (value.config !== undefined && Array.isArray(value.layers)) found.push(toEmbedded(fetched, value.config, value.layers as Array<Partial<Descriptor>>));
  }
}

/** The descriptor's blob when the archive has it and it matches; undefined otherwise. */
async function readEmbedded(tar: TarFileIndex, d: Partial<Descriptor>): Promise<FetchedManifest | undefined> {
  if (typeof d?.digest !== 'string' || parseDigestReference(d.digest) === undefined) return undefined;
  const digest = d.digest as Digest;
  if (tar.lookup(blobPath(digest)) === undefined) return undefined;
  const bytes = await tar.read(tar.resolve(blobPath(digest)), MAX_MANIFEST_SIZE);
  if (sha256(bytes) !== digest) return undefined;
  return { bytes, digest, mediaType: manifestMediaType(bytes, d.mediaType, `${tar.path}: ${blobPath(digest)}`) };
}

function toEmbedded(fetched: FetchedManifest, config: Partial<Descriptor>, layers: Array<Partial<Descriptor>>): EmbeddedManifest {
  const path = (d: Partial<Descriptor>): string => `blobs/${String(d?.digest).replace(':', '/')}`;
  return { fetched, configPath: path(config), layerPaths: layers.map(path) };
}

// ---- layers ------------------------------------------------------------------------------

/** Layers are what they are; the bytes' magic picks a media type the puller can act on. */
function layerMediaType(head: Buffer): string {
  if (head[0] === 0x1f && head[1] === 0x8b) return MediaType.dockerLayerGzip;
  if (head.readUInt32LE(0) === 0xfd2fb528) return MediaType.ociLayerZstd;
  return DOCKER_LAYER_TAR;
}

async function hashMember(tar: TarFileIndex, member: TarMember): Promise<MemberInfo> {
  const hash = createHash('sha256');
  const head = Buffer.alloc(4);
  let seen = 0;
  for await (const chunk of tar.stream(member) as AsyncIterable<Buffer>) {
    if (seen < head.length) chunk.copy(head, seen, 0, head.length - seen);
    seen += chunk.length;
    hash.update(chunk);
  }
  if (seen !== member.size) throw new RegistryError('ERR_SOURCE_INVALID', `${tar.path}: member ${JSON.stringify(member.name)} is cut short (truncated archive?)`);
  return { digest: `sha256:${hash.digest('hex')}`, size: member.size, head };
}
