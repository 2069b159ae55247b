import { sha256 } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import { ManifestError, parseConfig, parseManifest } from '../oci/manifest.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from '../oci/types.js';
import { RegistryError } from '../registry/errors.js';
import type { RetryPolicy } from '../registry/http.js';
import { type PlatformSpec, formatPlatform, selectManifest } from '../registry/platform.js';
import type { FetchedManifest, ImageSource } from '../source/types.js';
import { readBlob } from './blob-reader.js';

const INDEX_TYPES: string[] = [MediaType.ociIndex, MediaType.dockerManifestList];
const MANIFEST_TYPES: string[] = [MediaType.ociManifest, MediaType.dockerManifest];
/** Configs are small JSON documents; anything bigger is not one. */
const CONFIG_LIMIT = 16 * 1024 * 1024;
/** An index may point to an index; deeper nesting is refused rather than followed forever. */
const MAX_INDEX_DEPTH = 4;

export interface ResolvedImage {
  /** The index the reference named, when it named one. */
  index?: FetchedManifest;
  /** The platform chosen from the index. */
  platform?: string;
  manifest: FetchedManifest;
  parsed: ImageManifest;
}

/**
 * Follows a reference to one image manifest: an index (or Docker manifest list) resolves to the
 * entry for `platform`, and every manifest on the way is checked against the digest and size its
 * parent gave.
 */
export async function resolveImage(source: ImageSource, reference: string, platform: PlatformSpec): Promise<ResolvedImage> {
  let fetched = await source.manifest(reference);
  let index: FetchedManifest | undefined;
  let chosen: string | undefined;
  for (let depth = 0; INDEX_TYPES.includes(fetched.mediaType); depth++) {
    if (depth >= MAX_INDEX_DEPTH) throw new RegistryError('ERR_UNSUPPORTED', `${source.name}: indexes nested more than ${MAX_INDEX_DEPTH} deep`);
    index ??= fetched;
    const descriptor = selectManifest(parseIndex(fetched.bytes, source.name), platform, `${source.name}:${reference}`);
    chosen = formatPlatform(platform);
    const next = await source.manifest(descriptor.digest);
    checkDescriptor(next.bytes, descriptor, `manifest for ${chosen}`);
    fetched = next;
  }
  if (!MANIFEST_TYPES.includes(fetched.mediaType)) {
    throw new RegistryError('ERR_UNSUPPORTED', `${source.name}:${reference} is a ${fetched.mediaType}, not a container image manifest`);
  }
  const parsed = parseManifestOrThrow(fetched.bytes, `${source.name}:${reference}`);
  const configType = parsed.config.mediaType;
  if (configType !== MediaType.ociConfig && configType !== MediaType.dockerConfig) {
    throw new RegistryError('ERR_UNSUPPORTED', `${source.name}:${reference} is not a container image (its config is ${configType}; an artifact?)`);
  }
  for (const layer of parsed.layers) checkLayerMediaType(layer, source.name);
  return { index, platform: chosen, manifest: fetched, parsed };
}

/** The image config, from the source, verified against its descriptor. */
export async function fetchConfig(source: ImageSource, descriptor: Descriptor, retry?: RetryPolicy): Promise<{ bytes: Buffer; config: ImageConfig }> {
  if (descriptor.size > CONFIG_LIMIT) throw new RegistryError('ERR_REGISTRY_PROTOCOL', `image config of ${source.name} is ${descriptor.size} bytes, more than ${CONFIG_LIMIT}`);
  const chunks: Buffer[] = [];
  for await (const chunk of readBlob(source, descriptor, 0, () => undefined, retry)) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  checkDescriptor(bytes, descriptor, 'image config');
  return { bytes, config: parseImageConfig(bytes, source.name) };
}

export function parseImageConfig(bytes: Buffer, name: string): ImageConfig {
  try {
    return parseConfig(bytes);
  } catch (err) {
    throw new RegistryError('ERR_SOURCE_INVALID', `image config of ${name}: ${(err as Error).message}`, { cause: err });
  }
}

export function parseIndex(bytes: Buffer, name: string): ImageIndex {
  let value: Partial<ImageIndex>;
  try {
    value = JSON.parse(bytes.toString('utf8')) as Partial<ImageIndex>;
  } catch {
    throw new RegistryError('ERR_SOURCE_INVALID', `the index of ${name} is not valid JSON`);
  }
  if (value.schemaVersion !== 2 || !Array.isArray(value.manifests)) throw new RegistryError('ERR_SOURCE_INVALID', `the index of ${name} has no manifests list`);
  return value as ImageIndex;
}

function parseManifestOrThrow(bytes: Buffer, name: string): ImageManifest {
  try {
    return parseManifest(bytes);
  } catch (err) {
    if (err instanceof ManifestError) throw new RegistryError('ERR_SOURCE_INVALID', `${name}: ${err.message}`, { cause: err });
    throw err;
  }
}

function checkDescriptor(bytes: Buffer, descriptor: Descriptor, what: string): void {
  if (bytes.length !== descriptor.size) {
    throw new RegistryError('ERR_DIGEST_MISMATCH', `${what}: got ${bytes.length} bytes, expected ${descriptor.size}`);
  }
  const digest = sha256(bytes);
  if (digest !== descriptor.digest) throw new RegistryError('ERR_DIGEST_MISMATCH', `${what}: content has digest ${digest}, expected ${descriptor.digest}`);
}

const LAYER_TYPES = new Set<string>([
  MediaType.ociLayer,
  MediaType.ociLayerGzip,
  MediaType.ociLayerZstd,
  MediaType.dockerLayerGzip,
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

function checkLayerMediaType(layer: Descriptor, name: string): void {
  if (LAYER_TYPES.has(layer.mediaType)) return;
  if (layer.mediaType === 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip') {
    throw new RegistryError('ERR_UNSUPPORTED', `${name} has a foreign layer (${layer.digest}): a Windows image, which layerfs cannot mount`);
  }
  throw new RegistryError('ERR_UNSUPPORTED', `${name} has a layer of unsupported media type ${layer.mediaType}`);
}
