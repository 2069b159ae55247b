/**
 * A read-only merged view of a stack of layer directories (top first), without a mount: which
 * layer provides a path, and what a directory lists. The rules are the union engine's
 * (docs/union-semantics.md, src/union/tree.ts), re-stated here over plain paths:
 *
 * - A name is looked up top-down. The search stops at the first layer that has it as a
 *   non-directory, at a whiteout for it (`.wh.NAME`, or a 0/0 character device named NAME), or
 *   below a directory that is opaque (`.wh..wh..opq` inside it, or an overlay opaque xattr).
 * - A whiteout never hides an entry of its own layer.
 * - A layer whose root is opaque hides every layer below it.
 * - Markers are never shown; invalid markers (`.wh..`, a marker for a marker) are ignored.
 *
 * Every directory of the stack must be in OCI or overlay marker form: extracted layers and a
 * layerfs upper both are, so `new LowerView([upper, ...lowers])` is the merged view of a mount.
 *
 * Synchronous: every call is a short syscall, and a thread-pool round trip per call would cost
 * more than the call (see src/extract/README.md). Listings and resolved directories are cached in
 * bounded LRUs (layer directories are not expected to change while a view is in use).
 */
import { type Dirent, lstatSync, readdirSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { isErrno } from '../errors.js';
import * as native from '../native/index.js';
import {
  OPAQUE_MARKER,
  OVERLAY_OPAQUE_XATTRS,
  classifyName,
  isOverlayOpaqueValue,
  isOverlayWhiteout,
  isReservedName,
} from '../oci/whiteout.js';

export type EntryKind = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

/** One visible entry of the merged view. */
export interface ViewEntry {
  /** Absolute path in the view: '/' for the root, otherwise '/etc/passwd'. */
  readonly path: string;
  /** Last path component ('' for the root). */
  readonly name: string;
  readonly kind: EntryKind;
  /** Index (top first) of the layer whose entry is shown. */
  readonly layer: number;
  /** Host path of the shown entry. */
  readonly hostPath: string;
  /**
   * The layers whose directories of this path merge into it, top first (starting with `layer`).
   * A non-directory has just `[layer]`.
   */
  readonly layers: readonly number[];
}

/** What one layer has in one directory. */
export interface LayerListing {
  /** Real entries (no markers, no overlay whiteouts). */
  readonly entries: ReadonlyMap<string, EntryKind>;
  /** Names hidden in the layers below: `.wh.NAME` targets and 0/0 character devices. */
  readonly whiteouts: ReadonlySet<string>;
}

const EMPTY_LISTING: LayerListing = { entries: new Map(), whiteouts: new Set() };

export class LowerView {
  /** Layer directories, top first. */
  readonly layers: readonly string[];
  readonly #root: ViewEntry;
  readonly #listings = new LRUCache<string, LayerListing>({ max: 4096 });
  /** Resolved paths; `0` remembers that a path is not in the view. */
  readonly #resolved = new LRUCache<string, ViewEntry | 0>({ max: 16384 });

  constructor(layers: readonly string[]) {
    if (layers.length === 0) throw new TypeError('a layer view needs at least one layer directory');
    this.layers = layers.map((dir) => dir.replace(/(.)\/+$/, '$1'));
    this.#root = {
      path: '/',
      name: '',
      kind: 'dir',
      layer: 0,
      hostPath: this.layers[0]!,
      layers: this.#rootLayers(),
    };
  }

  root(): ViewEntry {
    return this.#root;
  }

  /** The entry visible at `path` ('/a/b', 'a/b' and '/a/b/' are the same), or undefined. */
  lookup(path: string): ViewEntry | undefined {
    const parts = splitViewPath(path);
    let entry: ViewEntry | undefined = this.#root;
    for (let i = 0; i < parts.length && entry !== undefined; i++) {
      entry = this.#child(entry, parts[i]!);
    }
    return entry;
  }

  /**
   * The merged children of the directory at `dir` (a path or an entry), sorted by the byte order
   * of their names. A path that is missing or not a directory lists nothing.
   */
  list(dir: string | ViewEntry): ViewEntry[] {
    const entry = typeof dir === 'string' ? this.lookup(dir) : dir;
    if (entry === undefined || entry.kind !== 'dir') return [];
    const names = new Set<string>();
    for (const layer of entry.layers) {
      const listing = this.#listing(layer, entry.path);
      for (const name of listing.entries.keys()) names.add(name);
    }
    const children: ViewEntry[] = [];
    for (const name of sortNames([...names])) {
      const child = this.#child(entry, name);
      if (child !== undefined) children.push(child);
    }
    return children;
  }

  /** `name` inside the directory `dir`, resolved top-down through the directory's layers. */
  #child(dir: ViewEntry, name: string): ViewEntry | undefined {
    if (dir.kind !== 'dir' || isReservedName(name)) return undefined;
    const path = joinViewPath(dir.path, name);
    const cached = this.#resolved.get(path);
    if (cached !== undefined) return cached === 0 ? undefined : cached;
    const resolved = this.#resolve(dir, name, path);
    this.#resolved.set(path, resolved ?? 0);
    return resolved;
  }

  #resolve(dir: ViewEntry, name: string, path: string): ViewEntry | undefined {
    let found: { kind: EntryKind; layer: number } | undefined;
    const merged: number[] = [];
    for (const layer of dir.layers) {
      const listing = this.#listing(layer, dir.path);
      const kind = listing.entries.get(name);
      if (kind !== undefined) {
        found ??= { kind, layer };
        // A non-directory hides everything below it, and ends a directory's merge.
        if (found.kind !== 'dir' || kind !== 'dir') break;
        merged.push(layer);
        if (this.#isOpaque(layer, path)) break;
      }
      // Whiteouts (both forms) hide the layers below, never their own layer.
      if (listing.whiteouts.has(name)) break;
    }
    if (found === undefined) return undefined;
    return {
      path,
      name,
      kind: found.kind,
      layer: found.layer,
      hostPath: this.host(found.layer, path),
      layers: found.kind === 'dir' ? merged : [found.layer],
    };
  }

  /** Host path of view path `path` in layer `layer` (whether or not it exists there). */
  host(layer: number, path: string): string {
    const root = this.layers[layer];
    if (root === undefined) throw new RangeError(`no layer ${layer}`);
    return path === '/' ? root : root + path;
  }

  #listing(layer: number, dirPath: string): LayerListing {
    const key = `${layer}\0${dirPath}`;
    let listing = this.#listings.get(key);
    if (listing === undefined) {
      listing = readLayerListing(this.host(layer, dirPath));
      this.#listings.set(key, listing);
    }
    return listing;
  }

  #isOpaque(layer: number, dirPath: string): boolean {
    return isOpaqueDir(this.host(layer, dirPath));
  }

  /** The layers that contribute to the root: down to the first one whose root is opaque. */
  #rootLayers(): number[] {
    const layers: number[] = [];
    for (let i = 0; i < this.layers.length; i++) {
      layers.push(i);
      if (isOpaqueDir(this.layers[i]!)) break;
    }
    return layers;
  }
}

/** Reads one layer's directory; a missing directory (or a non-directory) lists nothing. */
export function readLayerListing(hostDir: string): LayerListing {
  let dirents: Dirent[];
  try {
    dirents = readdirSync(hostDir, { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return EMPTY_LISTING;
    throw err;
  }
  const entries = new Map<string, EntryKind>();
  const whiteouts = new Set<string>();
  for (const dirent of dirents) {
    const { name } = dirent;
    const nameKind = classifyName(name);
    if (nameKind.kind === 'whiteout') whiteouts.add(nameKind.target);
    // Opaque markers are read with the directory itself (isOpaqueDir); invalid ones are ignored.
    if (nameKind.kind !== 'entry') continue;
    const kind = direntKind(dirent);
    if (kind === 'char' && isOverlayWhiteoutAt(`${hostDir}/${name}`)) whiteouts.add(name);
    else entries.set(name, kind);
  }
  return { entries, whiteouts };
}

function isOverlayWhiteoutAt(hostPath: string): boolean {
  const st = lstatSync(hostPath);
  return isOverlayWhiteout(st.mode, st.rdev);
}

/** True if the directory at `hostDir` hides the layers below it (either marker form). */
export function isOpaqueDir(hostDir: string): boolean {
  if (lstatSync(`${hostDir}/${OPAQUE_MARKER}`, { throwIfNoEntry: false }) !== undefined) return true;
  let names: string[];
  try {
    names = native.llistxattrSync(hostDir);
  } catch (err) {
    if (isErrno(err, 'ENOTSUP', 'EOPNOTSUPP', 'ENOENT', 'ENOTDIR')) return false;
    throw err;
  }
  return OVERLAY_OPAQUE_XATTRS.some((attr) => names.includes(attr) && isOverlayOpaqueValue(native.lgetxattrSync(hostDir, attr)));
}

export function direntKind(d: Dirent): EntryKind {
  if (d.isDirectory()) return 'dir';
  if (d.isFile()) return 'file';
  if (d.isSymbolicLink()) return 'symlink';
  if (d.isCharacterDevice()) return 'char';
  if (d.isBlockDevice()) return 'block';
  if (d.isFIFO()) return 'fifo';
  return 'socket';
}

/** 'a/b', '/a/b/' → ['a', 'b']; '/' → []. `..` is refused: view paths are always absolute. */
export function splitViewPath(path: string): string[] {
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new TypeError(`view paths may not contain "..": ${JSON.stringify(path)}`);
  return parts;
}

export function joinViewPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** Byte order of the UTF-8 names (what `LC_ALL=C sort` gives), not UTF-16 code-unit order. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function sortNames(names: string[]): string[] {
  return names
    .map((name) => ({ name, bytes: Buffer.from(name) }))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes))
    .map((item) => item.name);
}

/**
 * Orders view paths component by component in byte order: a directory comes right before its
 * contents (`/a`, `/a/b`, `/a-b`), the order of a depth-first walk with sorted siblings.
 */
export function comparePaths(a: string, b: string): number {
  const pa = splitViewPath(a);
  const pb = splitViewPath(b);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const order = compareNames(pa[i]!, pb[i]!);
    if (order !== 0) return order;
  }
  return pa.length - pb.length;
}
