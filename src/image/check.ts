import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { verifyLayerAgainstIndex } from '../extract/index.js';
import type { Digest } from '../oci/digest.js';
import type { Store } from '../store/store.js';

export interface CheckProblem {
  kind: 'blob' | 'layer';
  digest: Digest;
  message: string;
  repaired: boolean;
}

export interface CheckReport {
  blobs: number;
  layers: number;
  problems: CheckProblem[];
}

/**
 * Verifies every blob against its digest and every extracted layer against the metadata index
 * written when it was extracted. With `repair`, damaged entries are dropped: a blob is fetched
 * again by the next pull, a layer extracted again from its blob when next needed. A layer that a
 * running mount leases is reported but never dropped under it.
 */
export async function checkStore(store: Store, options: { repair?: boolean; content?: boolean } = {}): Promise<CheckReport> {
  const problems: CheckProblem[] = [];
  const blobs = await store.blobs.list();
  for (const digest of blobs) {
    const actual = await hashFile(store.blobs.path(digest));
    if (actual === digest) continue;
    if (options.repair === true) await store.blobs.remove(digest);
    problems.push({ kind: 'blob', digest, message: `content has digest ${actual}`, repaired: options.repair === true });
  }
  const layers = await store.layers.list();
  const leased = await store.leases.leasedLayers();
  for (const layer of layers) {
    let message: string | undefined;
    try {
      const report = await store.layers.withSharedLock(layer.diffId, () =>
        verifyLayerAgainstIndex(store.layers.treePath(layer.diffId), store.layers.indexPath(layer.diffId), { content: options.content === true }),
      );
      if (!report.ok) {
        const first = report.problems.slice(0, 3).map((p) => `${p.kind} ${p.path}${p.expected === undefined ? '' : ` (expected ${p.expected}, found ${p.actual ?? 'nothing'})`}`);
        message = `${report.problems.length} problem(s): ${first.join('; ')}${report.problems.length > 3 ? '; …' : ''}`;
      }
    } catch (err) {
      message = `cannot verify: ${(err as Error).message}`;
    }
    if (message === undefined) continue;
    const repairable = options.repair === true && !leased.has(layer.diffId);
    const repaired = repairable && (await store.layers.remove(layer.diffId));
    problems.push({ kind: 'layer', digest: layer.diffId, message: repairable || options.repair !== true ? message : `${message} (in use by a mount: not dropped)`, repaired });
  }
  return { blobs: blobs.length, layers: layers.length, problems };
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return `sha256:${hash.digest('hex')}`;
}
