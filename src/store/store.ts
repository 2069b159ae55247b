import { promises as fsp } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { type Digest } from '../oci/digest.js';
import { parseConfig, parseManifest } from '../oci/manifest.js';
import type { ImageConfig, ImageManifest } from '../oci/types.js';
import { BlobStore } from './blob-store.js';
import { Containers } from './containers.js';
import { StoreError } from './errors.js';
import { ImageIndex } from './image-index.js';
import { type LayerInfo, LayerStore } from './layer-store.js';
import { Leases } from './leases.js';
import { StorePaths } from './paths.js';
import { TempArea } from './temp-area.js';

/** An image in the store, with what its manifest and config say. */
export interface StoredImage {
  /** Digest of the manifest. */
  digest: Digest;
  refs: string[];
  manifest: ImageManifest;
  config: ImageConfig;
  /** Digest of the config: what `docker images` calls IMAGE ID. */
  id: Digest;
  layers: Array<{ digest: Digest; diffId: Digest; mediaType: string; size: number }>;
}

/** A name that an image took over from another image (as `docker load` moves a tag). */
export interface MovedName {
  ref: string;
  /** Manifest digest of the image the name was taken from. */
  from: Digest;
}

export interface DiskUsage {
  images: number;
  layers: number;
  /** Bytes of extracted layers, each counted once however many images share it. */
  layersSize: number;
  /** Bytes of layers that more than one image uses (counted once). */
  sharedSize: number;
  /** Bytes of blobs (compressed layers, manifests, configs). */
  blobsSize: number;
  /** What `prune` would free now: layers and blobs of no image and no running mount. */
  reclaimable: number;
  /** Sum of each image's layers as if nothing were shared. */
  unsharedTotal: number;
}

/**
 * The local store: content-addressed blobs, extracted layers, image names and leases under one
 * root. Several processes may use one store at once; every change is atomic (temp + rename) and
 * coordinated with flock(2), which the kernel drops when a process dies.
 */
export class Store {
  readonly paths: StorePaths;
  readonly blobs: BlobStore;
  readonly layers: LayerStore;
  readonly images: ImageIndex;
  readonly leases: Leases;
  readonly temp: TempArea;
  readonly containers: Containers;

  private constructor(root: string) {
    this.paths = new StorePaths(root);
    this.temp = new TempArea(this.paths.tmpDir);
    this.blobs = new BlobStore(this.paths, this.temp);
    this.layers = new LayerStore(this.paths, this.temp);
    this.images = new ImageIndex(this.paths);
    this.leases = new Leases(this.paths);
    this.containers = new Containers(this.paths, this.temp);
  }

  /**
   * A store another process has just opened with `open`: nothing is made and nothing cleared.
   * A mount daemon takes its parent command's store this way; it starts on the path of a mount.
   */
  static opened(root: string): Store {
    return new Store(root);
  }

  /** Opens (creating if needed) a store and clears what crashed processes left in its temp area. */
  static async open(root: string): Promise<Store> {
    const store = new Store(root);
    for (const dir of [root, store.paths.blobsDir, store.paths.layersDir, store.paths.tmpDir, store.paths.locksDir, store.paths.leasesDir]) {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    }
    await fsp.chmod(root, 0o700);
    await store.temp.cleanLeftovers();
    return store;
  }

  /** Stores manifest and config bytes and names the image; the layers must already be stored. */
  async addImage(refs: string[], manifestBytes: Buffer, configBytes: Buffer): Promise<StoredImage & { moved: MovedName[] }> {
    const manifest = parseManifest(manifestBytes);
    parseConfig(configBytes);
    const configDigest = await this.blobs.write(configBytes);
    if (configDigest !== manifest.config.digest) {
      throw new StoreError('ERR_STORE_DIGEST_MISMATCH', `config has digest ${configDigest}, the manifest says ${manifest.config.digest}`);
    }
    const digest = await this.blobs.write(manifestBytes);
    const mediaType = manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json';
    const moved: MovedName[] = [];
    for (const ref of refs) {
      const from = await this.images.put(ref, { mediaType, digest, size: manifestBytes.length });
      if (from !== undefined) moved.push({ ref, from });
    }
    return { ...(await this.image(digest, refs)), moved };
  }

  /** Reads an image by manifest digest. */
  async image(digest: Digest, refs: string[] = []): Promise<StoredImage> {
    const manifest = parseManifest(await this.blobs.read(digest));
    const config = parseConfig(await this.blobs.read(manifest.config.digest));
    if (config.rootfs.diff_ids.length !== manifest.layers.length) {
      throw new StoreError('ERR_STORE_CORRUPT', `image ${digest}: ${manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids`);
    }
    return {
      digest,
      refs,
      manifest,
      config,
      id: manifest.config.digest,
      layers: manifest.layers.map((l, i) => ({ digest: l.digest, diffId: config.rootfs.diff_ids[i]!, mediaType: l.mediaType, size: l.size })),
    };
  }

  /** Every named image, grouped by manifest (an image may have several names). */
  async listImages(): Promise<StoredImage[]> {
    const byDigest = new Map<Digest, string[]>();
    for (const { ref, manifest } of await this.images.list()) {
      byDigest.set(manifest.digest, [...(byDigest.get(manifest.digest) ?? []), ref]);
    }
    const images: StoredImage[] = [];
    for (const [digest, refs] of byDigest) images.push(await this.image(digest, refs.sort()));
    return images;
  }

  /**
   * Finds an image by reference, by manifest digest, or by a prefix (at least 4 hex digits) of
   * its IMAGE ID; an ambiguous prefix is an error, never a guess.
   */
  async findImage(name: string): Promise<StoredImage | undefined> {
    const images = await this.listImages();
    const byRef = images.find((img) => img.refs.includes(name));
    if (byRef !== undefined) return byRef;
    const hex = name.replace(/^sha256:/, '');
    if (!/^[a-f0-9]{4,64}$/.test(hex)) return undefined;
    const matches = images.filter((img) => img.digest === `sha256:${hex}` || img.id.slice(7).startsWith(hex));
    if (matches.length > 1) throw new StoreError('ERR_STORE_AMBIGUOUS', `${name} matches ${matches.length} images; give more digits`);
    return matches[0];
  }

  /** Layers and blobs that some named image refers to. */
  async referenced(): Promise<{ layers: Map<Digest, number>; blobs: Set<Digest> }> {
    const layers = new Map<Digest, number>();
    const blobs = new Set<Digest>();
    for (const image of await this.listImages()) {
      blobs.add(image.digest);
      blobs.add(image.id);
      for (const layer of new Set(image.layers.map((l) => l.diffId))) layers.set(layer, (layers.get(layer) ?? 0) + 1);
      for (const layer of image.layers) blobs.add(layer.digest);
    }
    return { layers, blobs };
  }

  /**
   * Removes image names. An image whose layers a running mount leases is refused unless `force`.
   * Layers and blobs that no remaining image uses are removed (unless leased).
   */
  async removeImage(name: string, options: { force?: boolean } = {}): Promise<{ untagged: string[]; deletedLayers: Digest[] }> {
    const image = await this.findImage(name);
    if (image === undefined) throw new StoreError('ERR_STORE_NOT_FOUND', `no such image: ${name}`);
    const refs = image.refs.includes(name) ? [name] : image.refs;
    const leases = await this.leases.live();
    const inUse = leases.find((l) => l.image === image.digest || image.layers.some((layer) => l.diffIds.includes(layer.diffId)));
    if (inUse !== undefined && options.force !== true) {
      throw new StoreError('ERR_STORE_IN_USE', `image ${name} is in use by process ${inUse.pid} (${inUse.purpose}); use --force to remove its name anyway`);
    }
    const layersOnIt = (await this.containers.list()).filter((c) => c.image.digest === image.digest);
    if (layersOnIt.length > 0 && options.force !== true && refs.length === image.refs.length) {
      throw new StoreError(
        'ERR_STORE_IN_USE',
        `image ${name} is used by writable layer(s) ${layersOnIt.map((c) => c.name).join(', ')}; remove them first (layerfs rm) or use --force`,
      );
    }
    const untagged = await this.images.remove(refs);
    const { deletedLayers } = await this.prune();
    return { untagged, deletedLayers };
  }

  /**
   * Removes layers and blobs that no named image refers to and no running mount leases.
   * With `all`, every image that no running mount uses is removed first.
   */
  async prune(options: { all?: boolean } = {}): Promise<{ deletedImages: string[]; deletedLayers: Digest[]; deletedBlobs: Digest[]; freed: number }> {
    const deletedImages: string[] = [];
    if (options.all === true) {
      const leases = await this.leases.live();
      for (const image of await this.listImages()) {
        const used = leases.some((l) => l.image === image.digest || image.layers.some((layer) => l.diffIds.includes(layer.diffId)));
        if (!used) deletedImages.push(...(await this.images.remove(image.refs)));
      }
    }
    const { layers: referencedLayers, blobs: referencedBlobs } = await this.referenced();
    let freed = 0;
    const deletedLayers: Digest[] = [];
    for (const layer of await this.layers.list()) {
      if (referencedLayers.has(layer.diffId)) continue;
      const removable = async () => !(await this.leases.leasedLayers()).has(layer.diffId);
      if (await this.layers.remove(layer.diffId, removable)) {
        deletedLayers.push(layer.diffId);
        freed += layer.size;
      }
    }
    const deletedBlobs: Digest[] = [];
    for (const blob of await this.blobs.list()) {
      if (referencedBlobs.has(blob)) continue;
      freed += (await this.blobs.size(blob)) ?? 0;
      await this.blobs.remove(blob);
      deletedBlobs.push(blob);
    }
    freed += await this.blobs.removeIdleDownloads();
    return { deletedImages, deletedLayers, deletedBlobs, freed };
  }

  /**
   * Least-recently-used eviction of extracted layers until they fit in `budget` bytes. Leased
   * layers and layers of named images are never evicted (the latter only with `includeNamed`);
   * a layer another process is filling or checking is skipped. Evicted layers of named images
   * are extracted again from their blobs when needed.
   */
  async evict(budget: number, options: { includeNamed?: boolean } = {}): Promise<Digest[]> {
    const layers = await this.layers.list();
    const leased = await this.leases.leasedLayers();
    const named = options.includeNamed === true ? new Map<Digest, number>() : (await this.referenced()).layers;
    const protectedLayer = (diffId: Digest) => leased.has(diffId) || named.has(diffId);
    const victims: Digest[] = [];
    const order = new LRUCache<Digest, LayerInfo>({
      maxSize: Math.max(1, budget),
      sizeCalculation: (info) => Math.max(1, info.size),
      // Protected layers can be pushed out of the cache too, but are never deleted.
      dispose: (_info, diffId, reason) => {
        if (reason === 'evict' && !protectedLayer(diffId)) victims.push(diffId);
      },
    });
    // Oldest first, protected ones last: they count against the budget but go out last.
    const sorted = [...layers].sort((a, b) => {
      const pa = protectedLayer(a.diffId) ? 1 : 0;
      const pb = protectedLayer(b.diffId) ? 1 : 0;
      return pa - pb || a.lastUsed.getTime() - b.lastUsed.getTime();
    });
    for (const info of sorted) {
      if (info.size > budget && !protectedLayer(info.diffId)) victims.push(info.diffId);
      else order.set(info.diffId, info);
    }
    const evicted: Digest[] = [];
    for (const diffId of victims) {
      const removable = async () => !(await this.leases.leasedLayers()).has(diffId);
      if (await this.layers.remove(diffId, removable)) evicted.push(diffId);
    }
    return evicted;
  }

  async diskUsage(): Promise<DiskUsage> {
    const images = await this.listImages();
    const layers = await this.layers.list();
    const sizeOf = new Map(layers.map((l) => [l.diffId, l.size]));
    const { layers: referenced, blobs: referencedBlobs } = await this.referenced();
    const leased = await this.leases.leasedLayers();
    let blobsSize = 0;
    let reclaimable = 0;
    for (const blob of await this.blobs.list()) {
      const size = (await this.blobs.size(blob)) ?? 0;
      blobsSize += size;
      if (!referencedBlobs.has(blob)) reclaimable += size;
    }
    let layersSize = 0;
    let sharedSize = 0;
    for (const layer of layers) {
      layersSize += layer.size;
      if ((referenced.get(layer.diffId) ?? 0) > 1) sharedSize += layer.size;
      if (!referenced.has(layer.diffId) && !leased.has(layer.diffId)) reclaimable += layer.size;
    }
    let unsharedTotal = 0;
    for (const image of images) {
      for (const diffId of new Set(image.layers.map((l) => l.diffId))) unsharedTotal += sizeOf.get(diffId) ?? 0;
    }
    return { images: images.length, layers: layers.length, layersSize, sharedSize, blobsSize, reclaimable, unsharedTotal };
  }

  /** Bytes an image's layers take on disk (shared layers included). */
  async imageSize(image: StoredImage): Promise<number> {
    let total = 0;
    for (const diffId of new Set(image.layers.map((l) => l.diffId))) total += (await this.layers.info(diffId))?.size ?? 0;
    return total;
  }
}
