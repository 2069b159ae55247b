/**
 * Platforms (`linux/arm64/v8`) and choosing an image index's manifest for one, with the
 * compatibility rules of containerd's `platforms.Only`: a CPU runs code built for older variants
 * of its architecture (arm v7 runs v6 and v5; amd64 v3 runs v2 and baseline), so those match
 * too, but an exact variant is preferred.
 */
import { RegistryError } from './errors.js';
import type { Descriptor, ImageIndex } from '../oci/types.js';

export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
}

/** Marks the attestation manifests BuildKit adds to indexes (their platform is unknown/unknown). */
const REFERENCE_TYPE_ANNOTATION = 'vnd.docker.reference.type';
const SPECIFIER = /^[a-z0-9_-]+$/;

/** Other spellings of architectures, as `uname -m` and Debian print them. */
const ARCH_ALIASES: Record<string, string | { architecture: string; variant: string }> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  i386: '386',
  armhf: { architecture: 'arm', variant: 'v7' },
  armel: { architecture: 'arm', variant: 'v6' },
};

/** Node's `process.arch` in OCI's words. */
const NODE_ARCH: Record<string, { architecture: string; variant?: string }> = {
  x64: { architecture: 'amd64' },
  arm64: { architecture: 'arm64', variant: 'v8' },
  // Node does not say which ARM revision it runs on; v7 (armhf) is what 32-bit ARM Linux builds target.
  arm: { architecture: 'arm', variant: 'v7' },
  ia32: { architecture: '386' },
  // Node's ppc64 builds are little-endian (the only 64-bit POWER Linux port it supports).
  ppc64: { architecture: 'ppc64le' },
  s390x: { architecture: 's390x' },
  riscv64: { architecture: 'riscv64' },
  loong64: { architecture: 'loong64' },
  mips64el: { architecture: 'mips64le' },
  mipsel: { architecture: 'mipsle' },
};

const NODE_OS: Record<string, string> = { win32: 'windows', sunos: 'solaris' };

/** Parses 'os/architecture[/variant]' ('linux/amd64', 'linux/arm/v7'); common aliases are accepted. */
export function parsePlatform(s: string): PlatformSpec {
  const bad = (why: string) =>
    new RegistryError('ERR_REFERENCE_INVALID', `invalid platform ${JSON.stringify(s)}: ${why}`);
  const parts = s.trim().toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3) {
    throw bad('expected os/architecture or os/architecture/variant, e.g. linux/amd64 or linux/arm/v7');
  }
  for (const part of parts) {
    if (!SPECIFIER.test(part)) throw bad(`${JSON.stringify(part)} is not a valid platform component`);
  }
  const [os, arch, variant] = parts as [string, string, string | undefined];
  const alias = ARCH_ALIASES[arch];
  const spec: PlatformSpec = { os, architecture: typeof alias === 'string' ? alias : (alias?.architecture ?? arch) };
  const impliedVariant = typeof alias === 'object' ? alias.variant : undefined;
  if (variant !== undefined && impliedVariant !== undefined && normalizeVariant(spec.architecture, variant) !== impliedVariant) {
    throw bad(`${arch} already means ${spec.architecture}/${impliedVariant}`);
  }
  const v = variant === undefined ? impliedVariant : /^[0-9]+$/.test(variant) ? `v${variant}` : variant;
  if (v !== undefined) spec.variant = v;
  return spec;
}

/** The platform this process runs on, in OCI terms. */
export function hostPlatform(arch: string = process.arch, platform: string = process.platform): PlatformSpec {
  const cpu = NODE_ARCH[arch] ?? { architecture: arch };
  return { os: NODE_OS[platform] ?? platform, ...cpu };
}

export function formatPlatform(p: PlatformSpec): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/**
 * The manifest of `index` for `wanted`: an exact variant if there is one, else the closest
 * compatible one; the first in index order among equals. `indexName` is for the error message
 * when nothing fits (ERR_NO_MATCHING_PLATFORM, listing what the index offers).
 */
export function selectManifest(index: ImageIndex, wanted: PlatformSpec, indexName: string): Descriptor {
  const candidates = index.manifests.filter(isImageManifest);
  let best: { descriptor: Descriptor; rank: number } | undefined;
  for (const descriptor of candidates) {
    const rank = platformRank(wanted, descriptor.platform!);
    if (rank !== undefined && (best === undefined || rank < best.rank)) best = { descriptor, rank };
  }
  if (best !== undefined) return best.descriptor;
  const available = [...new Set(candidates.map((d) => formatPlatform(d.platform!)))];
  const offer = available.length === 0 ? 'it lists no platform images' : `available: ${available.join(', ')}`;
  throw new RegistryError('ERR_NO_MATCHING_PLATFORM', `no image for ${formatPlatform(wanted)} in ${indexName}; ${offer}`);
}

/** Whether an image built for `have` runs on `wanted`. */
export function platformMatches(wanted: PlatformSpec, have: PlatformSpec): boolean {
  return platformRank(wanted, have) !== undefined;
}

/**
 * How well `have` fits `wanted`: 0 for the same platform, higher for older compatible variants,
 * undefined when it does not run there.
 */
function platformRank(wanted: PlatformSpec, have: PlatformSpec): number | undefined {
  const w = normalize(wanted);
  const h = normalize(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return undefined;
  if (w.variant === h.variant) return 0;
  const levels = VARIANT_LEVELS[w.architecture];
  if (levels === undefined) return undefined;
  const wl = levels.indexOf(w.variant);
  const hl = levels.indexOf(h.variant);
  // Older variants run on newer CPUs; the nearer the level, the better the fit.
  return wl !== -1 && hl !== -1 && hl < wl ? wl - hl : undefined;
}

/**
 * Variants from oldest to newest, for architectures whose newer CPUs run older variants. The
 * normalised "no variant" ('') is the baseline: amd64 without a variant is v1; arm64's v8 is its
 * baseline and is normalised to '' (so arm64 and arm64/v8 are the same). ARM without a variant
 * means v7, as containerd assumes.
 */
const VARIANT_LEVELS: Record<string, string[]> = {
  amd64: ['', 'v2', 'v3', 'v4'],
  arm: ['v5', 'v6', 'v7', 'v8'],
};

function normalize(p: PlatformSpec): { os: string; architecture: string; variant: string } {
  const os = p.os.toLowerCase();
  const arch = p.architecture.toLowerCase();
  const alias = ARCH_ALIASES[arch];
  const architecture = typeof alias === 'string' ? alias : (alias?.architecture ?? arch);
  const variant = p.variant ? normalizeVariant(architecture, p.variant.toLowerCase()) : typeof alias === 'object' ? alias.variant : '';
  return { os, architecture, variant: defaultVariant(architecture, variant) };
}

function normalizeVariant(architecture: string, variant: string): string {
  const v = /^[0-9]+$/.test(variant) ? `v${variant}` : variant;
  if (architecture === 'arm64' && (v === 'v8' || v === 'v8.0')) return '';
  if (architecture === 'amd64' && v === 'v1') return '';
  return v;
}

function defaultVariant(architecture: string, variant: string): string {
  return architecture === 'arm' && variant === '' ? 'v7' : variant;
}

/** An entry that is an image for some platform, not an attestation or a platform-less entry. */
function isImageManifest(d: Descriptor): boolean {
  const p = d.platform;
  if (p === undefined || !p.os || !p.architecture) return false;
  if (p.os === 'unknown' || p.architecture === 'unknown') return false;
  return d.annotations?.[REFERENCE_TYPE_ANNOTATION] === undefined;
}
