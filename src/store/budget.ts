import { promises as fsp } from 'node:fs';

/** Share of the store's filesystem that extracted layers may use when no --cache-size is given. */
export const DEFAULT_CACHE_SHARE = 0.25;

/**
 * Parses a size such as "20G", "512MiB", "1.5GB" or a plain number of bytes. Units are binary
 * (K = KiB) as in `du -h`; a trailing "B"/"iB" is accepted. Returns undefined for nonsense.
 */
export function parseSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (match === null) return undefined;
  const power = ['', 'k', 'm', 'g', 't'].indexOf(match[2]!.toLowerCase());
  const bytes = Number(match[1]) * 1024 ** power;
  return Number.isFinite(bytes) ? Math.floor(bytes) : undefined;
}

/** The default budget: a quarter of the filesystem that holds the store. */
export async function defaultCacheBudget(storeRoot: string): Promise<number> {
  const st = await fsp.statfs(storeRoot);
  return Math.floor(st.blocks * st.bsize * DEFAULT_CACHE_SHARE);
}
