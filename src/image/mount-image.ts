import { log } from '../log.js';
import type { RunDir } from '../mount/run-dir.js';
import { serveUnion } from '../mount/serve.js';
import type { ContainerRecord, Containers } from '../store/containers.js';
import type { Store, StoredImage } from '../store/store.js';
import { layerStack } from './layers.js';

export interface ServeImageOptions {
  store: Store;
  image: StoredImage;
  /** The writable layer; none for a read-only mount. */
  container?: string;
  mountpoint: string;
  runDir: RunDir;
  debug: boolean;
  cacheTimeout: number;
  /** FUSE passthrough for reads of lower files (ServeOptions.passthrough). */
  passthrough?: boolean;
  /** TransportOptions.busyPoll. */
  busyPoll?: number;
  logFile?: string;
  onReady?: (mountpoint: string) => void;
}

/**
 * Serves an image from the store until unmounted: locks its writable layer (one mount at a time),
 * leases the image's layers (so neither eviction nor rmi removes them while mounted), re-extracts
 * any layer that was evicted, and stacks them under the writable layer. Everything taken is given
 * back when the mount ends, and a `--rm` layer is deleted then.
 */
export async function serveImage(options: ServeImageOptions): Promise<void> {
  const { store, image } = options;
  const containers = store.containers;
  const record = options.container === undefined ? undefined : await containers.get(options.container);
  if (options.container !== undefined && record === undefined) throw new Error(`writable layer ${options.container} vanished`);
  const unlock = record === undefined ? undefined : await containers.lock(record.name);
  const diffIds = [...new Set(image.layers.map((l) => l.diffId))];
  const lease = await store.leases.create({ diffIds, image: image.digest, purpose: `mount ${options.mountpoint}` });
  let announced: Promise<void> | undefined;
  try {
    const lowers = await layerStack(store, image);
    await serveUnion({
      stack: { lowers, upper: record?.upper, workdir: record?.workdir },
      mountpoint: options.mountpoint,
      runDir: options.runDir,
      debug: options.debug,
      cacheTimeout: options.cacheTimeout,
      passthrough: options.passthrough,
      busyPoll: options.busyPoll,
      logFile: options.logFile,
      image: { ref: record?.image.ref ?? image.refs[0] ?? image.digest, digest: image.digest },
      container: record?.name,
      // The record says where the layer is mounted only once it is (a mount that fails, e.g. on
      // a busy or stale mountpoint, must not overwrite what the record said); the parent waiting
      // for "ready" returns after that, so `ps` and `commit MOUNTPOINT` find it at once.
      onReady: (mountpoint) => {
        if (record === undefined) return options.onReady?.(mountpoint);
        announced = announceMount(containers, record, mountpoint)
          .catch((err: Error) => log.warn(`could not record the mount of ${record.name}: ${err.message}`))
          .finally(() => options.onReady?.(mountpoint));
      },
    });
  } finally {
    await lease.release();
    if (record !== undefined) {
      await announced;
      const current = await containers.get(record.name).catch(() => undefined);
      if (current?.removeOnUnmount === true) await containers.remove(record.name, { whileLocked: true });
      else if (current !== undefined && announced !== undefined) await containers.update({ ...current, pid: undefined });
      await unlock?.();
    }
  }
}

/**
 * Records that `record` is mounted at `mountpoint` by this process, and that layers whose daemons
 * died there (a stale mount since cleared) are not: their pid would name them as mounted there.
 */
async function announceMount(containers: Containers, record: ContainerRecord, mountpoint: string): Promise<void> {
  for (const other of await containers.list()) {
    if (other.name === record.name || other.mountpoint !== mountpoint || other.pid === undefined) continue;
    if (!(await containers.inUse(other.name))) await containers.update({ ...other, pid: undefined });
  }
  await containers.update({ ...record, mountpoint, pid: process.pid });
}
