import { promises as fsp } from 'node:fs';
import { isErrno } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { REF_NAME_ANNOTATION } from '../oci/media-types.js';
import type { Descriptor, ImageIndex as OciIndex } from '../oci/types.js';
import { withLock } from './lock.js';
import type { StorePaths } from './paths.js';

/** A name of a stored image: a reference ("docker.io/library/busybox:1.36") and its manifest. */
export interface ImageRecord {
  ref: string;
  manifest: Descriptor;
}

const LAYOUT = JSON.stringify({ imageLayoutVersion: '1.0.0' }) + '\n';

/**
 * The store's `index.json`: an OCI image-layout index whose entries carry the image reference in
 * `org.opencontainers.image.ref.name`. Changes are made under an exclusive flock and written
 * atomically (temp file + rename), so concurrent pulls never lose each other's tags.
 */
export class ImageIndex {
  readonly #paths: StorePaths;
  constructor(paths: StorePaths) {
    this.#paths = paths;
  }

  async list(): Promise<ImageRecord[]> {
    const index = await this.#read();
    return index.manifests.flatMap((m) => {
      const ref = m.annotations?.[REF_NAME_ANNOTATION];
      return ref === undefined ? [] : [{ ref, manifest: m }];
    });
  }

  /** Names `manifest` `ref`; returns the manifest digest the name was taken from, if another. */
  async put(ref: string, manifest: Descriptor): Promise<Digest | undefined> {
    let previous: Digest | undefined;
    await this.#update((manifests) => {
      previous = manifests.find((m) => m.annotations?.[REF_NAME_ANNOTATION] === ref)?.digest;
      return [
        ...manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== ref),
        { ...manifest, annotations: { ...manifest.annotations, [REF_NAME_ANNOTATION]: ref } },
      ];
    });
    return previous === manifest.digest ? undefined : previous;
  }

  /** Removes names; returns those that existed. */
  async remove(refs: string[]): Promise<string[]> {
    const removed: string[] = [];
    await this.#update((manifests) =>
      manifests.filter((m) => {
        const ref = m.annotations?.[REF_NAME_ANNOTATION];
        if (ref !== undefined && refs.includes(ref)) {
          removed.push(ref);
          return false;
        }
        return true;
      }),
    );
    return removed;
  }

  async manifestsInUse(): Promise<Set<Digest>> {
    return new Set((await this.#read()).manifests.map((m) => m.digest));
  }

  async #read(): Promise<OciIndex> {
    try {
      const index = JSON.parse(await fsp.readFile(this.#paths.indexJson, 'utf8')) as OciIndex;
      return { schemaVersion: 2, manifests: Array.isArray(index.manifests) ? index.manifests : [] };
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return { schemaVersion: 2, manifests: [] };
      throw err;
    }
  }

  async #update(change: (manifests: Descriptor[]) => Descriptor[]): Promise<void> {
    await fsp.mkdir(this.#paths.locksDir, { recursive: true });
    await withLock(this.#paths.lock('index'), 'exclusive', async () => {
      const index = await this.#read();
      const next: OciIndex = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: change(index.manifests) };
      const temp = `${this.#paths.indexJson}.${process.pid}.tmp`;
      await fsp.writeFile(temp, JSON.stringify(next, null, 2) + '\n', { flush: true });
      await fsp.rename(temp, this.#paths.indexJson);
      await fsp.writeFile(this.#paths.ociLayout, LAYOUT).catch(() => undefined);
    });
  }
}
