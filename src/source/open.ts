import { basename } from 'node:path';
import { lookupCredentials } from '../config/credentials.js';
import { type RegistriesConfig, allowsPlainHttp, endpointsFor } from '../config/registries.js';
import type { AuthCredentials } from '../registry/auth.js';
import type { HttpTransport, RetryPolicy } from '../registry/http.js';
import { type ImageReference, parseReference, storeName } from '../registry/reference.js';
import { type DockerArchiveSource, openDockerArchive } from './docker-archive.js';
import { openOciLayout } from './oci-layout.js';
import { RegistrySource } from './registry-source.js';
import { parseSourceSpec } from './spec.js';
import type { ImageSource } from './types.js';

/** What opening a source needs from the outside world (the CLI passes its env and config). */
export interface SourceContext {
  http: HttpTransport;
  registries: RegistriesConfig;
  env: NodeJS.ProcessEnv;
  home: string;
  retry?: RetryPolicy;
}

export interface OpenedSource {
  source: ImageSource;
  /** The tag or digest to resolve in the source. */
  reference: string;
  /** The names the image gets in the local store. */
  names: string[];
  /** For registry sources: the parsed reference. */
  registryReference?: ImageReference;
}

/**
 * Opens what a user typed: `oci:DIR[:REF]`, `docker-archive:FILE[:REF]`, or a registry reference
 * (with the registry's mirrors and credentials).
 */
export async function openSource(input: string, context: SourceContext): Promise<OpenedSource> {
  const spec = parseSourceSpec(input);
  if (spec.kind === 'oci') {
    const source = await openOciLayout(spec.path);
    return closingOnError(source, () => {
      const reference = spec.reference ?? source.defaultReference();
      return { source, reference, names: [canonicalOrLocal(reference, spec.path)] };
    });
  }
  if (spec.kind === 'docker-archive') {
    const source = await openDockerArchive(spec.path);
    return closingOnError(source, async () => {
      const reference = spec.reference ?? source.defaultReference();
      const tagged = reference.startsWith('@') || reference.startsWith('sha256:') ? await repoTagOf(source, reference) : reference;
      return { source, reference, names: [tagged === undefined ? localName('latest', spec.path) : canonicalOrLocal(tagged, spec.path)] };
    });
  }
  const ref = parseReference(spec.reference);
  return { source: registrySource(ref, context), reference: ref.digest ?? ref.tag ?? 'latest', names: [storeName(ref)], registryReference: ref };
}

async function closingOnError(source: ImageSource, fn: () => OpenedSource | Promise<OpenedSource>): Promise<OpenedSource> {
  try {
    return await fn();
  } catch (err) {
    await source.close();
    throw err;
  }
}

/**
 * The first RepoTag of the image that `reference` (`@N` or a digest) selects in an archive: the
 * tag whose manifest is that image's. Not simply the archive's first tag, which may be another
 * image's (and would move that image's name to this one).
 */
async function repoTagOf(source: DockerArchiveSource, reference: string): Promise<string | undefined> {
  const { digest } = await source.manifest(reference);
  for (const tag of source.repoTags()) {
    if ((await source.manifest(tag)).digest === digest) return tag;
  }
  return undefined;
}

/** A registry repository with its mirrors, credentials and transport policy. */
export function registrySource(ref: Pick<ImageReference, 'registry' | 'repository'>, context: SourceContext): RegistrySource {
  return new RegistrySource(ref.registry, ref.repository, {
    http: context.http,
    endpoints: endpointsFor(context.registries, ref.registry),
    credentials: (host) => credentialsFor(host, context),
    allowPlainHttp: (host) => allowsPlainHttp(context.registries, host),
    retry: context.retry,
  });
}

async function credentialsFor(host: string, context: SourceContext): Promise<AuthCredentials | undefined> {
  const found = await lookupCredentials(host, { env: context.env, home: context.home });
  if (found === undefined) return undefined;
  return 'identityToken' in found ? { identityToken: found.identityToken } : { username: found.username, password: found.password };
}

/**
 * A reference from an archive or layout as a full name when it is written as one (with a
 * registry: `docker.io/library/x:1`, `busybox:latest` from `docker save`), else
 * `localhost/<file>:<ref>` (an OCI ref.name is often just a tag).
 */
function canonicalOrLocal(reference: string, path: string): string {
  if (reference.startsWith('sha256:') || (!reference.includes(':') && !reference.includes('/'))) return localName(reference, path);
  try {
    return storeName(parseReference(reference));
  } catch {
    return localName(reference, path);
  }
}

/** Images from files get names under `localhost/`, as podman names local images. */
function localName(reference: string, path: string): string {
  const repository = basename(path).toLowerCase().replace(/\.(tar|oci)$/, '').replace(/[^a-z0-9._-]+/g, '-').replace(/^[._-]+|[._-]+$/g, '') || 'image';
  if (/^sha256:[a-f0-9]{64}$/.test(reference)) return `localhost/${repository}@${reference}`;
  const tag = /^[\w][\w.-]{0,127}$/.test(reference) ? reference : 'latest';
  return `localhost/${repository}:${tag}`;
}
