import type { Digest } from '../oci/digest.js';
import { repositoryScope } from './auth.js';
import type { RegistryClient } from './client.js';
import { RegistryError } from './errors.js';
import { type HttpResponse, discard, header } from './http.js';

/** Blobs up to this size go up in one PUT; bigger ones in PATCH chunks of this size. */
export const DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024;
const MAX_CHUNK_ATTEMPTS = 5;

export type UploadOutcome = 'exists' | 'mounted' | 'uploaded';

export interface UploadOptions {
  /** Reads `length` bytes of the blob at `offset` (from the local store). */
  read: (offset: number, length: number) => Promise<Buffer>;
  /** Repositories on the same registry that may hold the blob (cross-repository mount). */
  mountFrom?: string[];
  chunkSize?: number;
  onProgress?: (bytes: number) => void;
}

/**
 * Uploads a blob unless the registry has it: HEAD first, then a cross-repository mount where the
 * registry allows it, else a monolithic PUT (small blobs) or PATCH chunks and a closing PUT.
 * A chunk that fails is retried from what the registry says it has (GET on the upload URL).
 */
export async function uploadBlob(client: RegistryClient, blob: { digest: Digest; size: number }, options: UploadOptions): Promise<UploadOutcome> {
  const push = [repositoryScope(client.repository, 'pull,push')];
  if ((await client.hasBlob(blob.digest, push)) !== undefined) return 'exists';

  let location: string | undefined;
  for (const from of options.mountFrom ?? []) {
    if (from === client.repository) continue;
    const scopes = [...push, repositoryScope(from, 'pull')];
    const url = `${client.baseUrl}/v2/${client.repository}/blobs/uploads/?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(from)}`;
    const response = await client.request({ method: 'POST', url, headers: { 'content-length': '0' } }, { expect: [201, 202], what: `mount of blob ${blob.digest}`, scopes });
    await discard(response);
    if (response.status === 201) return 'mounted';
    // 202: the registry started an ordinary upload instead; use it.
    location = uploadLocation(response, client.baseUrl);
    break;
  }
  location ??= await startUpload(client, blob.digest);

  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (blob.size <= chunkSize) {
    const bytes = await options.read(0, blob.size);
    const response = await client.request(
      { method: 'PUT', url: withDigest(location, blob.digest), headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) }, body: bytes },
      { expect: [201], what: `upload of blob ${blob.digest}`, push: true },
    );
    await discard(response);
    options.onProgress?.(blob.size);
    return 'uploaded';
  }

  let offset = 0;
  let failures = 0;
  while (offset < blob.size) {
    const length = Math.min(chunkSize, blob.size - offset);
    const chunk = await options.read(offset, length);
    try {
      const response = await client.request(
        {
          method: 'PATCH',
          url: location,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(length), 'content-range': `${offset}-${offset + length - 1}` },
          body: chunk,
        },
        { expect: [202], what: `upload of blob ${blob.digest}`, push: true, once: true },
      );
      await discard(response);
      location = uploadLocation(response, client.baseUrl);
      offset += length;
      failures = 0;
      options.onProgress?.(offset);
    } catch (err) {
      if (!(err instanceof RegistryError) || !err.temporary || ++failures >= MAX_CHUNK_ATTEMPTS) throw err;
      ({ location, offset } = await resumePoint(client, blob.digest, location));
    }
  }
  const done = await client.request(
    { method: 'PUT', url: withDigest(location, blob.digest), headers: { 'content-length': '0' } },
    { expect: [201], what: `upload of blob ${blob.digest}`, push: true },
  );
  await discard(done);
  return 'uploaded';
}

/** PUTs a manifest under a tag (or its digest); returns the digest the registry reports. */
export async function putManifest(client: RegistryClient, reference: string, bytes: Buffer, mediaType: string): Promise<string | undefined> {
  const response = await client.request(
    { method: 'PUT', url: `${client.baseUrl}/v2/${client.repository}/manifests/${reference}`, headers: { 'content-type': mediaType, 'content-length': String(bytes.length) }, body: bytes },
    { expect: [201], what: `manifest ${client.repository}:${reference}`, push: true },
  );
  await discard(response);
  return header(response.headers, 'docker-content-digest');
}

/**
 * Where to go on after a chunk failed: what the registry says it has (GET on the upload URL).
 * If the registry no longer accepts that URL (distribution signs the offset into it, so a chunk
 * it stored but whose answer was lost makes the old URL invalid), a new upload starts from 0.
 */
async function resumePoint(client: RegistryClient, digest: Digest, location: string): Promise<{ location: string; offset: number }> {
  try {
    const status = await client.request({ method: 'GET', url: location }, { expect: [204], what: `upload status of blob ${digest}`, push: true });
    await discard(status);
    const range = /^0-(\d+)$/.exec(header(status.headers, 'range') ?? '');
    return { location: uploadLocation(status, client.baseUrl, location), offset: range === null ? 0 : Number(range[1]) + 1 };
  } catch (err) {
    if (!(err instanceof RegistryError) || err.temporary) throw err;
    return { location: await startUpload(client, digest), offset: 0 };
  }
}

async function startUpload(client: RegistryClient, digest: Digest): Promise<string> {
  const response = await client.request(
    { method: 'POST', url: `${client.baseUrl}/v2/${client.repository}/blobs/uploads/`, headers: { 'content-length': '0' } },
    { expect: [202], what: `upload of blob ${digest}`, push: true },
  );
  await discard(response);
  return uploadLocation(response, client.baseUrl);
}

function uploadLocation(response: HttpResponse, baseUrl: string, fallback?: string): string {
  const location = header(response.headers, 'location');
  if (location === undefined) {
    if (fallback !== undefined) return fallback;
    throw new RegistryError('ERR_REGISTRY_PROTOCOL', `the registry started an upload without a Location (HTTP ${response.status})`);
  }
  return new URL(location, baseUrl).href;
}

function withDigest(location: string, digest: Digest): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.href;
}
