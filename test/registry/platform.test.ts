// Platforms: parsing, the host's platform in OCI terms, and choosing an index's manifest with
// containerd-style variant compatibility.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sha256 } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import type { Descriptor, ImageIndex, Platform } from '../../src/oci/types.js';
import {
  formatPlatform,
  hostPlatform,
  parsePlatform,
  platformMatches,
  type PlatformSpec,
  selectManifest,
} from '../../src/registry/platform.js';

function entry(platform: string | undefined, annotations?: Record<string, string>): Descriptor {
  const d: Descriptor = { mediaType: MediaType.ociManifest, digest: sha256(`${platform}`), size: 100 };
  if (platform !== undefined) {
    const [os, architecture, variant] = platform.split('/') as [string, string, string?];
    const p: Platform = { os, architecture };
    if (variant !== undefined) p.variant = variant;
    d.platform = p;
  }
  if (annotations !== undefined) d.annotations = annotations;
  return d;
}

function index(...entries: Descriptor[]): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: entries };
}

/** Which entry (by its platform string) selectManifest picks. */
function pick(wanted: string, ...platforms: string[]): string {
  const chosen = selectManifest(index(...platforms.map((p) => entry(p))), parsePlatform(wanted), 'x');
  return platforms.find((p) => entry(p).digest === chosen.digest)!;
}

describe('parsePlatform', () => {
  const valid: Array<[string, PlatformSpec]> = [
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/arm/7', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['Linux/AMD64', { os: 'linux', architecture: 'amd64' }],
    ['linux/x86_64', { os: 'linux', architecture: 'amd64' }],
    ['linux/aarch64', { os: 'linux', architecture: 'arm64' }],
    ['linux/armhf', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/armel', { os: 'linux', architecture: 'arm', variant: 'v6' }],
    ['linux/i386', { os: 'linux', architecture: '386' }],
    ['windows/amd64', { os: 'windows', architecture: 'amd64' }],
  ];
  for (const [input, spec] of valid) {
    it(`${input}`, () => assert.deepEqual(parsePlatform(input), spec));
  }
  const invalid: Array<[string, RegExp]> = [
    ['', /expected os\/architecture/],
    ['linux', /expected os\/architecture/],
    ['amd64', /expected os\/architecture/],
    ['linux/arm/v7/x', /expected os\/architecture/],
    ['linux/', /"" is not a valid platform component/],
    ['linux//v7', /"" is not a valid platform component/],
    ['linux/am d64', /"am d64" is not a valid/],
    ['linux/armhf/v6', /armhf already means arm\/v7/],
  ];
  for (const [input, problem] of invalid) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      assert.throws(() => parsePlatform(input), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_REFERENCE_INVALID');
        assert.ok(err.message.startsWith(`invalid platform ${JSON.stringify(input)}: `), err.message);
        assert.match(err.message, problem);
        return true;
      });
    });
  }
  it('round-trips through formatPlatform', () => {
    for (const s of ['linux/amd64', 'linux/arm64/v8', 'linux/arm/v6', 'linux/amd64/v3']) assert.equal(formatPlatform(parsePlatform(s)), s);
  });
});

describe('hostPlatform', () => {
  const cases: Array<[string, string, string]> = [
    ['x64', 'linux', 'linux/amd64'],
    ['arm64', 'linux', 'linux/arm64/v8'],
    ['arm', 'linux', 'linux/arm/v7'],
    ['ia32', 'linux', 'linux/386'],
    ['ppc64', 'linux', 'linux/ppc64le'],
    ['s390x', 'linux', 'linux/s390x'],
    ['riscv64', 'linux', 'linux/riscv64'],
    ['x64', 'darwin', 'darwin/amd64'],
    ['x64', 'win32', 'windows/amd64'],
    ['weird', 'linux', 'linux/weird'],
  ];
  for (const [arch, platform, expected] of cases) {
    it(`${arch} on ${platform} → ${expected}`, () => assert.equal(formatPlatform(hostPlatform(arch, platform)), expected));
  }
  it('defaults to this process', () => {
    assert.equal(hostPlatform().os, process.platform === 'win32' ? 'windows' : process.platform);
  });
});

describe('selectManifest', () => {
  it('picks os and architecture', () => {
    assert.equal(pick('linux/arm64', 'linux/amd64', 'linux/arm64/v8', 'linux/s390x'), 'linux/arm64/v8');
    assert.equal(pick('linux/amd64', 'linux/arm64/v8', 'linux/amd64'), 'linux/amd64');
  });
  it('treats arm64 with no variant and v8 as the same', () => {
    assert.equal(pick('linux/arm64/v8', 'linux/arm64'), 'linux/arm64');
    assert.equal(pick('linux/arm64', 'linux/arm64/v8'), 'linux/arm64/v8');
  });
  it('arm v7 takes exact, then v6, then v5; never a newer variant', () => {
    assert.equal(pick('linux/arm/v7', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7'), 'linux/arm/v7');
    assert.equal(pick('linux/arm/v7', 'linux/arm/v5', 'linux/arm/v6'), 'linux/arm/v6');
    assert.equal(pick('linux/arm/v7', 'linux/arm/v5'), 'linux/arm/v5');
    assert.equal(pick('linux/arm/v7', 'linux/arm'), 'linux/arm', 'arm without variant means v7');
    assert.throws(() => pick('linux/arm/v6', 'linux/arm/v7'), { code: 'ERR_NO_MATCHING_PLATFORM' });
    assert.throws(() => pick('linux/arm/v6', 'linux/arm'), { code: 'ERR_NO_MATCHING_PLATFORM' });
  });
  it('amd64 variants: exact first, then older levels, then no variant', () => {
    assert.equal(pick('linux/amd64/v3', 'linux/amd64', 'linux/amd64/v3'), 'linux/amd64/v3');
    assert.equal(pick('linux/amd64/v3', 'linux/amd64', 'linux/amd64/v2'), 'linux/amd64/v2');
    assert.equal(pick('linux/amd64/v3', 'linux/amd64/v4', 'linux/amd64'), 'linux/amd64');
    assert.equal(pick('linux/amd64', 'linux/amd64/v1'), 'linux/amd64/v1');
    assert.throws(() => pick('linux/amd64', 'linux/amd64/v2'), { code: 'ERR_NO_MATCHING_PLATFORM' });
  });
  it('prefers the first of equally good entries', () => {
    const a = entry('linux/amd64');
    const b = { ...entry('linux/amd64'), digest: sha256('other') };
    assert.equal(selectManifest(index(a, b), parsePlatform('linux/amd64'), 'x'), a);
  });
  it('skips attestation and platform-less entries', () => {
    const attestation = entry('unknown/unknown', { 'vnd.docker.reference.type': 'attestation-manifest' });
    const annotated = { ...entry('linux/amd64', { 'vnd.docker.reference.type': 'attestation-manifest' }), digest: sha256('att') };
    const image = entry('linux/amd64');
    assert.equal(selectManifest(index(attestation, annotated, entry(undefined), image), parsePlatform('linux/amd64'), 'x'), image);
  });
  it('names the wanted platform, the index and what it offers when nothing fits', () => {
    const idx = index(
      entry('linux/amd64'),
      entry('unknown/unknown', { 'vnd.docker.reference.type': 'attestation-manifest' }),
      entry('linux/arm64/v8'),
      { ...entry('linux/amd64'), digest: sha256('dup') },
    );
    assert.throws(() => selectManifest(idx, parsePlatform('linux/s390x'), 'docker.io/library/x:1'), {
      code: 'ERR_NO_MATCHING_PLATFORM',
      message: 'no image for linux/s390x in docker.io/library/x:1; available: linux/amd64, linux/arm64/v8',
    });
    assert.throws(() => selectManifest(index(entry(undefined)), parsePlatform('linux/amd64'), 'r/x:1'), {
      message: 'no image for linux/amd64 in r/x:1; it lists no platform images',
    });
  });
  it('platformMatches answers for single-platform images', () => {
    assert.equal(platformMatches(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'aarch64' }), true);
    assert.equal(platformMatches(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'arm64' }), false);
    assert.equal(platformMatches(parsePlatform('linux/amd64'), { os: 'windows', architecture: 'amd64' }), false);
  });
});
