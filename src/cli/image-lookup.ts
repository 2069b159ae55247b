import { parseReference, storeName } from '../registry/reference.js';
import type { Store, StoredImage } from '../store/store.js';

/**
 * An image of the local store by what a user typed: a stored name as it is, an ID prefix or
 * digest, or a short reference (`busybox` is docker.io/library/busybox:latest).
 */
export async function findLocalImage(store: Store, name: string): Promise<StoredImage | undefined> {
  const direct = await store.findImage(name);
  if (direct !== undefined) return direct;
  const canonical = canonicalName(name);
  return canonical === undefined || canonical === name ? undefined : store.findImage(canonical);
}

export function canonicalName(name: string): string | undefined {
  try {
    return storeName(parseReference(name));
  } catch {
    return undefined;
  }
}
