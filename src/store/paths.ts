import { join } from 'node:path';
import { type Digest, digestHex } from '../oci/digest.js';

/**
 * The whole on-disk layout of the store, in one place. The root is an OCI image layout
 * (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), so other OCI tools can read its images;
 * layerfs keeps its own parts beside it:
 *
 *   layers/sha256/<hex>/        one extracted layer, by diffID; complete once it exists
 *       fs/                     the layer's tree (OCI whiteout markers kept as in the tar)
 *       index                   the metadata index written at extraction
 *       meta.json               size on disk, creation time
 *   containers/<name>/          a writable layer: meta.json, upper/, work/, lock (held while mounted)
 *   downloads/<hex>             a blob being downloaded (kept across runs so the next pull resumes)
 *   tmp/<pid>-<random>/         work in progress of process <pid>; removed when <pid> is dead
 *   locks/<name>.lock           flock(2) files: per layer, per blob, and for index.json
 *   leases/<id>.json            layers in use by a running mount (pid-checked)
 */
export class StorePaths {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }

  get ociLayout(): string {
    return join(this.root, 'oci-layout');
  }
  get indexJson(): string {
    return join(this.root, 'index.json');
  }
  get blobsDir(): string {
    return join(this.root, 'blobs', 'sha256');
  }
  blob(digest: Digest): string {
    return join(this.blobsDir, digestHex(digest));
  }
  get layersDir(): string {
    return join(this.root, 'layers', 'sha256');
  }
  layer(diffId: Digest): string {
    return join(this.layersDir, digestHex(diffId));
  }
  layerTree(diffId: Digest): string {
    return join(this.layer(diffId), 'fs');
  }
  layerIndex(diffId: Digest): string {
    return join(this.layer(diffId), 'index');
  }
  layerMeta(diffId: Digest): string {
    return join(this.layer(diffId), 'meta.json');
  }
  get containersDir(): string {
    return join(this.root, 'containers');
  }
  container(name: string): string {
    return join(this.containersDir, name);
  }
  get downloadsDir(): string {
    return join(this.root, 'downloads');
  }
  download(digest: Digest): string {
    return join(this.downloadsDir, digestHex(digest));
  }
  get tmpDir(): string {
    return join(this.root, 'tmp');
  }
  get locksDir(): string {
    return join(this.root, 'locks');
  }
  lock(name: string): string {
    return join(this.locksDir, `${name}.lock`);
  }
  get leasesDir(): string {
    return join(this.root, 'leases');
  }
  lease(id: string): string {
    return join(this.leasesDir, `${id}.json`);
  }
}

/** Default store root: /var/lib/layerfs as root, $XDG_DATA_HOME/layerfs otherwise. */
export function defaultStoreRoot(env: NodeJS.ProcessEnv, uid: number, home: string): string {
  if (env.LAYERFS_ROOT) return env.LAYERFS_ROOT;
  if (uid === 0) return '/var/lib/layerfs';
  return join(env.XDG_DATA_HOME || join(home, '.local', 'share'), 'layerfs');
}
