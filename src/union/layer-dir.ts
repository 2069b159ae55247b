import { closeSync, constants as fsc, openSync, promises as fsp, statSync } from 'node:fs';

/**
 * One directory of the stack (a lower layer or the upper) as the engine addresses it.
 *
 * Host paths are built as `/proc/self/fd/N/<relative path>` on an fd held for the directory, so a
 * host path is never much longer than the path the caller used through the mount: a layer that
 * lives deep in the cache does not eat into the 4096-byte PATH_MAX budget.
 */
export class LayerDir {
  readonly root: string;
  readonly dev: number;
  readonly #fd: number;
  readonly #prefix: string;

  private constructor(root: string, fd: number, dev: number, prefix: string) {
    this.root = root;
    this.#fd = fd;
    this.dev = dev;
    this.#prefix = prefix;
  }

  /** Opens a directory; fails with the host's error (ENOENT, ENOTDIR, EACCES) when unusable. */
  static open(root: string): LayerDir {
    const fd = openSync(root, fsc.O_RDONLY | fsc.O_DIRECTORY);
    try {
      const prefix = `/proc/self/fd/${fd}`;
      // Without /proc (unusual, but possible in a chroot) fall back to the plain path.
      const usable = statSync(prefix, { throwIfNoEntry: false })?.isDirectory() === true;
      return new LayerDir(root, fd, statSync(root).dev, usable ? prefix : root.replace(/\/+$/, ''));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Host path of `rel` ('' for the layer root, otherwise '/a/b'). */
  host(rel: string): string {
    // The bare /proc/self/fd/N is a symlink; with a trailing slash it is the directory itself.
    return rel === '' ? this.#prefix + '/' : this.#prefix + rel;
  }

  close(): void {
    closeSync(this.#fd);
  }
}

/**
 * What one layer has in one directory, read once (lower layers never change): each name's S_IFMT
 * bits (or the tree's whiteout type). A number rather than an object per entry: a large image has
 * one entry per file, and the listings of every directory looked into stay in memory.
 */
export type LayerListing = Map<string, number>;

const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;

export function fileType(mode: number): number {
  return mode & S_IFMT;
}

export async function readLayerListing(hostDir: string): Promise<LayerListing> {
  const dirents = await fsp.readdir(hostDir, { withFileTypes: true });
  const listing: LayerListing = new Map();
  for (const d of dirents) {
    listing.set(d.name, direntType(d));
  }
  return listing;
}

function direntType(d: import('node:fs').Dirent): number {
  if (d.isDirectory()) return S_IFDIR;
  if (d.isFile()) return S_IFREG;
  if (d.isSymbolicLink()) return S_IFLNK;
  if (d.isCharacterDevice()) return S_IFCHR;
  if (d.isBlockDevice()) return S_IFBLK;
  if (d.isFIFO()) return S_IFIFO;
  return S_IFSOCK;
}
