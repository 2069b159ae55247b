import { isDigest } from './digest.js';
import type { Descriptor, ImageConfig, ImageManifest } from './types.js';

export class ManifestError extends Error {
  readonly code = 'ERR_OCI_INVALID_MANIFEST';
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

/** Parses and checks an image manifest (OCI or Docker v2 schema 2) from its raw bytes. */
export function parseManifest(bytes: Buffer): ImageManifest {
  const value = parseJson(bytes, 'manifest') as Partial<ImageManifest>;
  if (value.schemaVersion !== 2) throw new ManifestError(`unsupported manifest schemaVersion ${String(value.schemaVersion)}`);
  if (!value.config || !Array.isArray(value.layers)) throw new ManifestError('manifest has no config or layers');
  checkDescriptor(value.config, 'config');
  value.layers.forEach((layer, i) => checkDescriptor(layer, `layer ${i}`));
  return value as ImageManifest;
}

/** Parses an image config and checks the part layerfs relies on: rootfs.diff_ids. */
export function parseConfig(bytes: Buffer): ImageConfig {
  const value = parseJson(bytes, 'config') as Partial<ImageConfig>;
  const diffIds = value.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || !diffIds.every((d) => typeof d === 'string' && isDigest(d))) {
    throw new ManifestError('image config has no valid rootfs.diff_ids');
  }
  return value as ImageConfig;
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ManifestError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function checkDescriptor(d: Partial<Descriptor>, what: string): void {
  if (typeof d.digest !== 'string' || !isDigest(d.digest)) throw new ManifestError(`${what} has an invalid digest`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw new ManifestError(`${what} has an invalid size`);
  if (typeof d.mediaType !== 'string') throw new ManifestError(`${what} has no mediaType`);
}
