import { createHash } from 'node:crypto';

/** A content digest as OCI writes it. Only sha256 is produced; it is what registries use. */
export type Digest = `sha256:${string}`;

const SHA256 = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: string): value is Digest {
  return SHA256.test(value);
}

/** Validates a digest from untrusted input (a manifest, an argument) before it names a file. */
export function parseDigest(value: string): Digest {
  if (!isDigest(value)) throw new TypeError(`not a sha256 digest: ${JSON.stringify(value)}`);
  return value;
}

export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

export function sha256(bytes: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
