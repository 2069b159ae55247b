// Test images built in code, in OCI or Docker v2 schema 2 form, for pushing to a registry.
//
//   const img = await buildTestImage([[file('etc/hello', 'hi')], [file('bin/x', 'y', { mode: 0o755 })]]);
//   const idx = buildIndex([{ image: amd64 }, { image: arm64 }], 'oci');
//
// Everything is deterministic (tar mtimes, gzip without a timestamp, fixed `created`), so the
// same layers always give the same digests: two images built from one layer share its blob.
import { type Digest, sha256 } from '../../../src/oci/digest.js';
import { MediaType } from '../../../src/oci/media-types.js';
import type { Platform } from '../../../src/oci/types.js';
import { type EntrySpec, gzip, packTar, zstd } from '../../helpers/tar-builder.js';

export type { Platform };
export type ImageFormat = 'oci' | 'docker';
export type Compression = 'gzip' | 'zstd' | 'none';

export interface TestLayer {
  /** The bytes pushed to the registry (compressed, or the tar itself for 'none'). */
  blob: Buffer;
  digest: Digest;
  /** sha256 of the uncompressed tar, as listed in the config's rootfs.diff_ids. */
  diffId: Digest;
  mediaType: string;
  tar: Buffer;
}

export interface TestImage {
  manifest: Buffer;
  manifestMediaType: string;
  digest: Digest;
  config: Buffer;
  configDigest: Digest;
  layers: TestLayer[];
  platform: Platform;
}

export interface BuildOptions {
  format?: ImageFormat;
  compression?: Compression;
  platform?: Platform;
  created?: string;
}

export interface BuiltIndex {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };
const DEFAULT_CREATED = '2026-11-01T00:00:00Z';

/**
 * Docker never defined an uncompressed layer type in its spec; this is the one containerd and
 * moby use for it. zstd has no Docker media type at all, so asking for it throws.
 */
const DOCKER_LAYER_TAR = 'application/vnd.docker.image.rootfs.diff.tar';

function layerMediaType(format: ImageFormat, compression: Compression): string {
  if (format === 'oci') {
    return { gzip: MediaType.ociLayerGzip, zstd: MediaType.ociLayerZstd, none: MediaType.ociLayer }[compression];
  }
  if (compression === 'zstd') throw new Error('buildTestImage: Docker images cannot have zstd layers (use format "oci")');
  return compression === 'gzip' ? MediaType.dockerLayerGzip : DOCKER_LAYER_TAR;
}

function compress(tar: Buffer, compression: Compression): Buffer {
  if (compression === 'gzip') return gzip(tar);
  if (compression === 'zstd') return zstd(tar);
  return tar;
}

async function buildLayer(entries: EntrySpec[], format: ImageFormat, compression: Compression): Promise<TestLayer> {
  const mediaType = layerMediaType(format, compression);
  const tar = await packTar(entries);
  const blob = compress(tar, compression);
  return { blob, digest: sha256(blob), diffId: sha256(tar), mediaType, tar };
}

function buildConfig(layers: TestLayer[], platform: Platform, created: string): Buffer {
  const config = {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant === undefined ? {} : { variant: platform.variant }),
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created, created_by: `layerfs test layer ${i}` })),
  };
  return Buffer.from(JSON.stringify(config));
}

/** Layers bottom first, each a list of tar entries. Defaults: OCI, gzip, linux/amd64. */
export async function buildTestImage(layerSpecs: EntrySpec[][], opts: BuildOptions = {}): Promise<TestImage> {
  const format = opts.format ?? 'oci';
  const compression = opts.compression ?? 'gzip';
  const platform = opts.platform ?? DEFAULT_PLATFORM;
  const layers: TestLayer[] = [];
  for (const entries of layerSpecs) layers.push(await buildLayer(entries, format, compression));

  const config = buildConfig(layers, platform, opts.created ?? DEFAULT_CREATED);
  const configDigest = sha256(config);
  const manifestMediaType = format === 'oci' ? MediaType.ociManifest : MediaType.dockerManifest;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: manifestMediaType,
      config: { mediaType: format === 'oci' ? MediaType.ociConfig : MediaType.dockerConfig, digest: configDigest, size: config.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.blob.length })),
    }),
  );
  return { manifest, manifestMediaType, digest: sha256(manifest), config, configDigest, layers, platform };
}

/** An OCI index or Docker manifest list over `images`; each entry's platform defaults to its image's. */
export function buildIndex(images: Array<{ image: TestImage; platform?: Platform }>, format: ImageFormat): BuiltIndex {
  const mediaType = format === 'oci' ? MediaType.ociIndex : MediaType.dockerManifestList;
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: images.map(({ image, platform }) => ({
        mediaType: image.manifestMediaType,
        digest: image.digest,
        size: image.manifest.length,
        platform: platform ?? image.platform,
      })),
    }),
  );
  return { bytes, mediaType, digest: sha256(bytes) };
}
