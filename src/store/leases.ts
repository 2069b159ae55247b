import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { Digest } from '../oci/digest.js';
import { processAlive } from '../proc.js';
import type { StorePaths } from './paths.js';

/** A record that a running process uses some layers: eviction and rmi leave them alone. */
export interface LeaseRecord {
  id: string;
  pid: number;
  diffIds: Digest[];
  /** The image the lease is for, when a mount of an image holds it. */
  image?: Digest;
  purpose: string;
  createdAt: string;
}

export interface Lease {
  readonly record: LeaseRecord;
  /** Idempotent. */
  release(): Promise<void>;
}

/**
 * Lease files (`leases/<id>.json`). A lease belongs to a pid; once that process is gone the lease
 * is stale and is ignored (and deleted) by whoever reads it next.
 */
export class Leases {
  readonly #paths: StorePaths;
  constructor(paths: StorePaths) {
    this.#paths = paths;
  }

  async create(init: { diffIds: Digest[]; purpose: string; image?: Digest; pid?: number }): Promise<Lease> {
    const record: LeaseRecord = {
      id: randomBytes(8).toString('hex'),
      pid: init.pid ?? process.pid,
      diffIds: init.diffIds,
      image: init.image,
      purpose: init.purpose,
      createdAt: new Date().toISOString(),
    };
    await fsp.mkdir(this.#paths.leasesDir, { recursive: true });
    const path = this.#paths.lease(record.id);
    await fsp.writeFile(`${path}.tmp`, JSON.stringify(record) + '\n');
    await fsp.rename(`${path}.tmp`, path);
    let released = false;
    return {
      record,
      release: async () => {
        if (released) return;
        released = true;
        await fsp.rm(path, { force: true });
      },
    };
  }

  /** Leases whose process is alive; stale ones are removed on the way. */
  async live(): Promise<LeaseRecord[]> {
    const names = await fsp.readdir(this.#paths.leasesDir).catch(() => [] as string[]);
    const records: LeaseRecord[] = [];
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const path = `${this.#paths.leasesDir}/${name}`;
      let record: LeaseRecord;
      try {
        record = JSON.parse(await fsp.readFile(path, 'utf8')) as LeaseRecord;
      } catch {
        continue; // being written or already gone
      }
      if (processAlive(record.pid)) records.push(record);
      else await fsp.rm(path, { force: true });
    }
    return records;
  }

  async leasedLayers(): Promise<Set<Digest>> {
    return new Set((await this.live()).flatMap((l) => l.diffIds));
  }
}
