import { resolve } from 'node:path';
import { UserError } from '../errors.js';
import { LAYERFS_FSTYPE, mountAt } from '../mount/mountinfo.js';
import { type ContainerRecord, isContainerName } from '../store/containers.js';
import type { Store, StoredImage } from '../store/store.js';

/** A writable layer by name, or by the mountpoint it is mounted on. */
export async function findContainer(store: Store, nameOrMountpoint: string): Promise<ContainerRecord> {
  if (isContainerName(nameOrMountpoint)) {
    const byName = await store.containers.get(nameOrMountpoint);
    if (byName !== undefined) return byName;
  }
  const path = resolve(nameOrMountpoint);
  // The layer serving there holds its lock. A record whose daemon died still names the path: it is
  // the one only while its stale mount is there and no other layer claims the path.
  const claims = (await store.containers.list()).filter((c) => c.mountpoint === path && c.pid !== undefined);
  for (const claim of claims) if (await store.containers.inUse(claim.name)) return claim;
  if (claims.length === 1 && (await mountAt(path))?.fstype === LAYERFS_FSTYPE) return claims[0]!;
  throw new UserError(`no writable layer named or mounted at ${nameOrMountpoint} (see layerfs ps -a)`);
}

/** The image a writable layer sits on, with a clear error if it was removed from the store. */
export async function imageOf(store: Store, record: ContainerRecord): Promise<StoredImage> {
  try {
    return await store.image(record.image.digest);
  } catch {
    throw new UserError(`the image of writable layer ${record.name} (${record.image.ref}, ${record.image.digest}) is no longer in the store; pull it again`);
  }
}
