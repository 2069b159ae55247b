/**
 * Image references (`ubuntu`, `ghcr.io/org/app:1.2`, `localhost:5000/app@sha256:…`), parsed and
 * normalised the way Docker does it (the grammar of distribution/reference), so a name means the
 * same image to layerfs as to `docker pull`:
 *
 * - `ubuntu` is `docker.io/library/ubuntu:latest`; `user/app` is `docker.io/user/app:latest`.
 * - The first path component names a registry when it contains '.' or ':', is `localhost`, or
 *   has an uppercase letter (as in Docker: repository paths are lowercase, so `Host/app` can only
 *   be a host). Otherwise the registry is Docker Hub.
 * - `index.docker.io` and `registry-1.docker.io` are spellings of `docker.io`. Registry hosts are
 *   lowercased (DNS names are case-insensitive; one spelling keeps the image store, credential and
 *   config lookups simple), except a single label such as `MyHost` whose case is what makes it a
 *   host.
 * - The tag defaults to `latest` only when neither a tag nor a digest is given.
 *
 * No I/O here.
 */
import { BlockList, isIP, isIPv6 } from 'node:net';
import { RegistryError } from './errors.js';
import { type Digest, isDigest } from '../oci/digest.js';

/** A repository on a registry: what `layerfs tags` lists, and the part of a reference before the tag. */
export interface RepositoryRef {
  /** Normalised registry host[:port]: 'docker.io', 'ghcr.io', 'localhost:5000', '[::1]:5000'. */
  registry: string;
  /** The path on the registry: 'library/ubuntu', 'org/app'. */
  repository: string;
}

/**
 * A parsed image reference. When both `tag` and `digest` are present (`app:1.0@sha256:…`, as
 * `docker pull` accepts), the digest wins: the manifest is fetched by digest and the tag is only
 * a name for people (see `manifestReference`), exactly as Docker ignores the tag then.
 */
export interface ImageReference extends RepositoryRef {
  tag?: string;
  digest?: Digest;
}

export const DOCKER_HUB = 'docker.io';
/** Where Docker Hub's distribution API actually lives. */
const DOCKER_HUB_API = 'registry-1.docker.io';
const DOCKER_HUB_ALIASES = new Set(['index.docker.io', 'registry-1.docker.io']);
/** Docker Hub's namespace for official images: `ubuntu` is `library/ubuntu`. */
const OFFICIAL_NAMESPACE = 'library';
const DEFAULT_TAG = 'latest';
/** distribution/reference's NameTotalLengthMax, over the normalised `registry/repository`. */
const NAME_MAX = 255;
const TAG_MAX = 128;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]*$/;
const DOMAIN_LABEL = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = new RegExp(`^${DOMAIN_LABEL}(?:\\.${DOMAIN_LABEL})*$`);
/** Any digest distribution/reference accepts, to tell "unsupported algorithm" from "garbage". */
const ANY_DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
/** A bare image ID: Docker refuses it as a name because `docker run <id>` means the ID. */
const IMAGE_ID = /^[a-f0-9]{64}$/;

/** Parses a reference as `docker pull` would; throws ERR_REFERENCE_INVALID naming the problem. */
export function parseReference(input: string): ImageReference {
  const parts = splitReference(input, 'reference');
  const ref: ImageReference = { registry: parts.registry, repository: parts.repository };
  if (parts.tag !== undefined) ref.tag = parts.tag;
  if (parts.digest !== undefined) ref.digest = parts.digest;
  if (ref.tag === undefined && ref.digest === undefined) ref.tag = DEFAULT_TAG;
  return ref;
}

/** Parses a repository name (`ubuntu`, `ghcr.io/org/app`); a tag or digest is an error. */
export function parseRepository(input: string): RepositoryRef {
  const parts = splitReference(input, 'repository');
  if (parts.tag !== undefined || parts.digest !== undefined) {
    const what = parts.digest !== undefined ? 'digest' : 'tag';
    throw invalid('repository', input, `expected a repository name without a tag or digest, but a ${what} is given`);
  }
  return { registry: parts.registry, repository: parts.repository };
}

/** The canonical form: 'docker.io/library/ubuntu:latest', 'host:5000/a/b@sha256:…', 'r/x:tag@sha256:…'. */
export function formatReference(ref: ImageReference): string {
  const tag = ref.tag === undefined ? '' : `:${ref.tag}`;
  const digest = ref.digest === undefined ? '' : `@${ref.digest}`;
  return `${repositoryName(ref)}${tag}${digest}`;
}

/**
 * The store name of a registry image: `repo:tag`, or `repo@digest` when pulled by digest (a
 * digest names content, and the tag beside it may have moved on the registry since).
 */
export function storeName(ref: ImageReference): string {
  return ref.digest === undefined ? formatReference(ref) : formatReference({ registry: ref.registry, repository: ref.repository, digest: ref.digest });
}

/** 'docker.io/library/ubuntu': registry and repository, without tag or digest. */
export function repositoryName(ref: RepositoryRef): string {
  return `${ref.registry}/${ref.repository}`;
}

/** What to ask the registry's manifest endpoint for: the digest when there is one, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}

/** The host that serves a registry's API: Docker Hub is named docker.io but lives elsewhere. */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/**
 * The normalised spelling of a registry host[:port] (lowercase, Docker Hub aliases folded into
 * 'docker.io'), or undefined when it is not a valid host. Used for names in configuration files.
 */
export function normalizeRegistry(host: string): string | undefined {
  return registryProblem(host) === undefined ? foldRegistry(host) : undefined;
}

/** The host part of a registry name: without port, and without the brackets of an IPv6 address. */
export function registryHostname(registry: string): string {
  if (registry.startsWith('[')) {
    const end = registry.indexOf(']');
    return end === -1 ? registry : registry.slice(1, end);
  }
  const colon = registry.lastIndexOf(':');
  return colon === -1 ? registry : registry.slice(0, colon);
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** localhost[:port], 127.0.0.0/8[:port] or [::1][:port]: where plain HTTP cannot be intercepted. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registryHostname(registry).toLowerCase();
  if (host === 'localhost') return true;
  const family = isIP(host);
  if (family === 0) return false;
  // An IPv6 address must come in brackets; '::1:5000' is ambiguous, so not loopback.
  if (family === 6 && !registry.startsWith('[')) return false;
  return LOOPBACK.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

interface ReferenceParts {
  registry: string;
  repository: string;
  tag?: string;
  digest?: Digest;
}

type Subject = 'reference' | 'repository';

/** name[:tag][@digest], then the name split into registry and repository, each validated. */
function splitReference(input: string, subject: Subject): ReferenceParts {
  if (input === '') throw invalid(subject, input, 'it is empty');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = checkDigest(subject, input, rest.slice(at + 1));
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  // A tag's ':' comes after the last '/'; a ':' before it belongs to a registry port.
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = checkTag(subject, input, rest.slice(colon + 1));
    rest = rest.slice(0, colon);
  }
  if (rest === '') throw invalid(subject, input, 'the repository name is missing');
  if (IMAGE_ID.test(rest)) {
    throw invalid(subject, input, 'a repository name cannot be 64 hexadecimal digits (that is how image IDs look)');
  }
  const { registry, path } = splitRegistry(rest);
  const problem = registryProblem(registry);
  if (problem !== undefined) throw invalid(subject, input, problem);
  const folded = hostForm(registry);
  const repository = checkRepositoryPath(subject, input, folded === DOCKER_HUB && !path.includes('/') ? `${OFFICIAL_NAMESPACE}/${path}` : path);
  if (folded.length + 1 + repository.length > NAME_MAX) {
    throw invalid(subject, input, `the repository name is longer than ${NAME_MAX} characters`);
  }
  const parts: ReferenceParts = { registry: folded, repository };
  if (tag !== undefined) parts.tag = tag;
  if (digest !== undefined) parts.digest = digest;
  return parts;
}

/** Docker's rule for whether the first component of a name is a registry host. */
function splitRegistry(name: string): { registry: string; path: string } {
  const slash = name.indexOf('/');
  if (slash === -1) return { registry: DOCKER_HUB, path: name };
  const first = name.slice(0, slash);
  const isHost = /[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase();
  return isHost ? { registry: first, path: name.slice(slash + 1) } : { registry: DOCKER_HUB, path: name };
}

/** Why `registry` is not a valid host[:port], or undefined when it is. */
function registryProblem(registry: string): string | undefined {
  const bad = (why: string) => `invalid registry host ${JSON.stringify(registry)}: ${why}`;
  let host = registry;
  let port: string | undefined;
  if (registry.startsWith('[')) {
    const end = registry.indexOf(']');
    if (end === -1) return bad("an IPv6 address needs a closing ']'");
    host = registry.slice(1, end);
    const after = registry.slice(end + 1);
    if (after !== '' && !after.startsWith(':')) return bad("expected ':port' after the IPv6 address");
    if (after !== '') port = after.slice(1);
    if (!isIPv6(host) || host.includes('%')) return bad(`${JSON.stringify(host)} is not an IPv6 address`);
  } else {
    const colons = registry.split(':').length - 1;
    if (colons > 1) return bad('IPv6 addresses must be written in brackets, as in [fe80::1]:5000');
    if (colons === 1) [host, port] = registry.split(':') as [string, string];
    if (!DOMAIN_NAME.test(host)) return bad('expected a host name or IP address, optionally with :port');
  }
  if (port !== undefined && !(/^[0-9]{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
    return bad(`${JSON.stringify(port)} is not a port number`);
  }
  return undefined;
}

/**
 * The registry as a reference names it: lowercased and aliases folded, except a single label
 * with uppercase letters ('MyHost'), which is a host only because of its case (see splitRegistry);
 * lowercasing it would turn it into a Docker Hub namespace when the reference is parsed again.
 */
function hostForm(registry: string): string {
  const lower = registry.toLowerCase();
  return /[.:]/.test(lower) || lower === 'localhost' ? foldRegistry(lower) : registry;
}

function foldRegistry(registry: string): string {
  const lower = registry.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? DOCKER_HUB : lower;
}

function checkRepositoryPath(subject: Subject, input: string, path: string): string {
  if (path !== path.toLowerCase()) throw invalid(subject, input, 'repository name must be lowercase');
  if (path.endsWith('/')) throw invalid(subject, input, "the repository name must not end with '/'");
  for (const component of path.split('/')) {
    if (component === '') throw invalid(subject, input, "the repository name has an empty component ('//')");
    if (!PATH_COMPONENT.test(component)) {
      throw invalid(
        subject,
        input,
        `invalid repository name component ${JSON.stringify(component)}: use lowercase letters and digits, separated by '.', '_', '__' or '-'`,
      );
    }
  }
  return path;
}

function checkTag(subject: Subject, input: string, tag: string): string {
  if (tag === '') throw invalid(subject, input, "the tag after ':' is empty");
  if (tag.length > TAG_MAX) throw invalid(subject, input, `the tag is longer than ${TAG_MAX} characters`);
  if (!TAG.test(tag)) {
    throw invalid(
      subject,
      input,
      `invalid tag ${JSON.stringify(tag)}: use letters, digits, '_', '.' and '-', not starting with '.' or '-'`,
    );
  }
  return tag;
}

function checkDigest(subject: Subject, input: string, digest: string): Digest {
  if (isDigest(digest)) return digest;
  const algorithm = digest.slice(0, Math.max(0, digest.indexOf(':')));
  if (ANY_DIGEST.test(digest) && algorithm.toLowerCase() !== 'sha256') {
    throw invalid(subject, input, `digest algorithm ${JSON.stringify(algorithm)} is not supported (only sha256 is)`);
  }
  throw invalid(subject, input, `invalid digest ${JSON.stringify(digest)}: expected "sha256:" and 64 lowercase hexadecimal digits`);
}

function invalid(subject: Subject, input: string, why: string): RegistryError {
  return new RegistryError('ERR_REFERENCE_INVALID', `invalid ${subject} ${JSON.stringify(input)}: ${why}`);
}
