/**
 * Source strings of `layerfs pull`, in the style of skopeo's transports:
 *
 *   oci:DIR[:REF]                 an OCI image layout directory
 *   docker-archive:FILE[:REF]     a `docker save` archive
 *   docker://REF                  a registry reference (skopeo spelling; the prefix is dropped)
 *   anything else                 a registry reference, returned as is
 *
 * Splitting is pure string work (no file is looked at), so a string always means the same thing:
 *
 * - `oci:` — REF is what follows the LAST ':' when that part has no '/' (a tag cannot contain '/';
 *   a directory name that contains ':' still works when a '/' follows it: `oci:/srv/a:b/`).
 *   A trailing `:sha256:<64 hex>` is taken whole as a digest reference, since a digest has a ':'.
 * - `docker-archive:` — REF is everything after the FIRST ':' (RepoTags contain ':' themselves:
 *   `docker-archive:/tmp/a.tar:busybox:latest`), so the FILE name cannot contain ':'.
 *   REF may also be `@N`, the Nth image of the archive (skopeo's source index).
 *
 * Other skopeo transports (`oci-archive:`, `dir:`...) are refused rather than taken for a registry
 * reference: no registry reference starts with `word:` followed by anything but a port number.
 */
import { RegistryError } from '../registry/errors.js';

export type SourceSpec =
  | { kind: 'registry'; reference: string }
  | { kind: 'oci'; path: string; reference?: string }
  | { kind: 'docker-archive'; path: string; reference?: string };

const UNSUPPORTED_TRANSPORTS = ['oci-archive', 'dir', 'containers-storage', 'docker-daemon', 'sif', 'tarball'];
const DIGEST_SUFFIX = /:(sha256:[a-f0-9]{64})$/;

export function parseSourceSpec(input: string): SourceSpec {
  if (input === '') throw invalid('empty image source');
  if (input.startsWith('oci:')) return parseOci(input, input.slice('oci:'.length));
  if (input.startsWith('docker-archive:')) return parseDockerArchive(input, input.slice('docker-archive:'.length));
  if (input.startsWith('docker://')) return registry(input, input.slice('docker://'.length));
  const transport = /^([a-z-]+):/.exec(input)?.[1];
  if (transport !== undefined && UNSUPPORTED_TRANSPORTS.includes(transport)) {
    throw new RegistryError('ERR_UNSUPPORTED', `image source ${JSON.stringify(input)}: the ${transport}: transport is not supported (use oci:, docker-archive: or a registry reference)`);
  }
  return registry(input, input);
}

function parseOci(input: string, rest: string): SourceSpec {
  const digest = DIGEST_SUFFIX.exec(rest);
  if (digest !== null) return withPath(input, 'oci', rest.slice(0, digest.index), digest[1]);
  const colon = rest.lastIndexOf(':');
  if (colon === -1 || rest.slice(colon + 1).includes('/')) return withPath(input, 'oci', rest, undefined);
  return withPath(input, 'oci', rest.slice(0, colon), rest.slice(colon + 1));
}

function parseDockerArchive(input: string, rest: string): SourceSpec {
  const colon = rest.indexOf(':');
  if (colon === -1) return withPath(input, 'docker-archive', rest, undefined);
  return withPath(input, 'docker-archive', rest.slice(0, colon), rest.slice(colon + 1));
}

function withPath(input: string, kind: 'oci' | 'docker-archive', path: string, reference: string | undefined): SourceSpec {
  if (path === '') throw invalid(`image source ${JSON.stringify(input)} has an empty path`);
  // `oci:/dir:` names no image; saying so beats silently using the default one.
  if (reference === '') throw invalid(`image source ${JSON.stringify(input)} has an empty reference after ':'`);
  return reference === undefined ? { kind, path } : { kind, path, reference };
}

function registry(input: string, reference: string): SourceSpec {
  if (reference === '') throw invalid(`image source ${JSON.stringify(input)} has an empty reference`);
  return { kind: 'registry', reference };
}

function invalid(message: string): RegistryError {
  return new RegistryError('ERR_REFERENCE_INVALID', message);
}
