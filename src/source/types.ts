import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/types.js';

/** A manifest or index exactly as the source holds it (its digest is over these bytes). */
export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

/** A blob's bytes from `offset` on, and who served them (a registry, a mirror, a file). */
export interface BlobBody {
  stream: Readable;
  /** The byte the stream starts at: `offset` when the source could seek, else 0. */
  offset: number;
  servedBy: string;
}

/**
 * Where images come from: a registry (with its mirrors), an OCI image layout directory, or a
 * `docker save` archive. A source only delivers bytes; the puller verifies every blob against
 * its descriptor, so a source never needs to be trusted.
 */
export interface ImageSource {
  /** How messages name the source: "127.0.0.1:5000/app", "oci:/srv/layout", "docker-archive:/tmp/a.tar". */
  readonly name: string;
  /**
   * The manifest or index that `reference` (a tag or a digest) names. When `reference` is a
   * digest the bytes are checked against it; otherwise the returned digest is computed from the
   * bytes, never taken from a header.
   */
  manifest(reference: string): Promise<FetchedManifest>;
  /** A blob's bytes from `offset` (default 0). Unverified: the caller checks digest and size. */
  blob(descriptor: Descriptor, offset?: number): Promise<BlobBody>;
  /** Releases files and connections. */
  close(): Promise<void>;
}
