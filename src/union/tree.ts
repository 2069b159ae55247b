import { promises as fsp } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { type HostStat, compactStat } from './host-stat.js';
import { FsError, isErrno } from '../errors.js';
import { log } from '../log.js';
import * as native from '../native/index.js';
import {
  OPAQUE_MARKER,
  OVERLAY_OPAQUE_XATTRS,
  classifyName,
  isOverlayOpaqueValue,
  isOverlayWhiteout,
  isReservedName,
  whiteoutName,
} from '../oci/whiteout.js';
import { LayerDir, type LayerListing, S_IFCHR, S_IFDIR, fileType, readLayerListing } from './layer-dir.js';
import { InodeNumbers, NO_LOWERS, Node, NodeTable, lowerList, onlyLower } from './node.js';
import { type Ino, ROOT_INO } from './types.js';

/** Longest name a directory entry may have (NAME_MAX); FUSE itself would let 1024 through. */
export const NAME_MAX = 255;

/** Where a node's visible content lives on the host. */
export interface Backing {
  layer: LayerDir;
  source: 'upper' | number;
  path: string;
}

/**
 * The merged tree: which layer provides each name, read lazily and cached. Lower layers are
 * immutable, so what is learned about them is kept for the life of the mount; the upper is changed
 * only by this engine, which invalidates exactly the directories it changes.
 */
export class MergedTree {
  readonly upper: LayerDir | undefined;
  readonly lowers: readonly LayerDir[];
  readonly nodes = new NodeTable();
  readonly numbers = new InodeNumbers();
  /** Inode numbers kept by copied-up entries, by the real inode number of their upper copy. */
  readonly upperInos = new Map<bigint, Ino>();
  /** How many times a listed inode number has changed (a hardlink broken by copy-up). */
  listedInoChanges = 0;
  /**
   * lstat results of lower entries. Lower layers never change, but the kernel caches attributes
   * itself, so a bounded LRU is enough here: memory stays flat however large the image is.
   */
  readonly #lowerStats = new LRUCache<Node, HostStat>({ max: 16384 });
  readonly root: Node;
  readonly #warnedInvalid = new Set<string>();

  constructor(upper: LayerDir | undefined, lowers: readonly LayerDir[], rootOpaqueBelow: number) {
    this.upper = upper;
    this.lowers = lowers;
    this.root = new Node({
      ino: ROOT_INO,
      parent: null,
      name: '',
      type: S_IFDIR,
      inUpper: upper !== undefined,
      lowers: lowers.map((_, i) => i).slice(0, rootOpaqueBelow),
      lowerPresent: false,
    });
    this.nodes.add(this.root);
  }

  /**
   * Builds the tree, honouring opaque markers on the layer roots themselves (a layer whose root is
   * opaque hides every layer below it).
   */
  static async create(upper: LayerDir | undefined, lowers: readonly LayerDir[]): Promise<MergedTree> {
    const sources: Array<{ layer: LayerDir; source: 'upper' | number }> = [];
    if (upper !== undefined) sources.push({ layer: upper, source: 'upper' });
    lowers.forEach((layer, i) => sources.push({ layer, source: i }));
    let visibleLowers = lowers.length;
    for (const { layer, source } of sources) {
      if (await isOpaqueDir(layer.host(''))) {
        visibleLowers = source === 'upper' ? 0 : source + 1;
        break;
      }
    }
    return new MergedTree(upper, lowers, visibleLowers);
  }

  layerOf(source: 'upper' | number): LayerDir {
    if (source === 'upper') {
      if (this.upper === undefined) throw new FsError('EROFS', 'write');
      return this.upper;
    }
    const layer = this.lowers[source];
    if (layer === undefined) throw new Error(`no lower layer ${source}`);
    return layer;
  }

  /** The layer and host path whose content users see at `node`. */
  backing(node: Node): Backing {
    if (node.inUpper) return { layer: this.layerOf('upper'), source: 'upper', path: this.layerOf('upper').host(node.relPath) };
    const source = node.lowers[0];
    if (source === undefined) throw new Error(`node ${node.relPath} has no backing`);
    const layer = this.layerOf(source);
    return { layer, source, path: layer.host(node.relPath) };
  }

  upperPath(rel: string): string {
    return this.layerOf('upper').host(rel);
  }

  /** One layer's entries in directory `dir`, with overlay-form whiteouts recognised. */
  async listing(dir: Node, source: 'upper' | number): Promise<LayerListing> {
    const cached = dir.listings.get(source);
    if (cached !== undefined) return cached;
    const hostDir = this.layerOf(source).host(dir.relPath);
    let listing: LayerListing;
    try {
      listing = await readLayerListing(hostDir);
    } catch (err) {
      // A lower directory that vanished or is not a directory contributes nothing.
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) listing = new Map();
      else throw err;
    }
    for (const [name, type] of listing) {
      if (type !== S_IFCHR) continue;
      const st = await fsp.lstat(`${hostDir}/${name}`);
      if (isOverlayWhiteout(st.mode, st.rdev)) listing.set(name, WHITEOUT_TYPE);
    }
    dir.listings.set(source, listing);
    return listing;
  }

  /** The layers of `dir`, top first, that contribute entries. */
  sourcesOf(dir: Node): Array<'upper' | number> {
    return dir.inUpper ? ['upper', ...dir.lowers] : [...dir.lowers];
  }

  /**
   * Finds `name` in directory `dir`: top-down through the directory's layers, stopping at the
   * first non-directory, at a whiteout, or below an opaque directory.
   */
  async lookup(dir: Node, name: string): Promise<Node | undefined> {
    if (fileType(dir.type) !== S_IFDIR) throw new FsError('ENOTDIR', 'lookup', dir.childPath(name));
    checkName(name, 'lookup', dir);
    const cached = dir.children.get(name);
    if (cached !== undefined) return cached;
    if (isReservedName(name)) return undefined;
    if (dir.merged !== undefined && !dir.merged.has(name)) return undefined;

    let found: { type: number; source: 'upper' | number } | undefined;
    const dirLowers: number[] = [];
    let lowerPresent = false;
    let collecting = true;

    for (const source of this.sourcesOf(dir)) {
      const listing = await this.listing(dir, source);
      const type = listing.get(name);
      const markerHere = listing.has(whiteoutName(name));
      if (type !== undefined && type !== WHITEOUT_TYPE) {
        if (found === undefined) {
          found = { type, source };
          if (type === S_IFDIR && source !== 'upper') dirLowers.push(source);
          if (type !== S_IFDIR) collecting = false;
          else if (await this.isOpaque(dir, name, source)) collecting = false;
        } else {
          lowerPresent = true;
          if (collecting && type === S_IFDIR) {
            dirLowers.push(source as number);
            if (await this.isOpaque(dir, name, source)) collecting = false;
          } else {
            collecting = false;
          }
          if (!collecting) break;
        }
      } else if (type !== undefined && found === undefined) {
        break; // overlay-form whiteout: nothing of the name shows below it
      }
      if (markerHere) break; // a marker hides the layers below, never its own layer
      if (type === WHITEOUT_TYPE) break;
      if (found !== undefined && found.source !== 'upper' && !collecting) break;
    }
    if (found === undefined) return undefined;

    const inUpper = found.source === 'upper';
    const lowers = found.type === S_IFDIR ? lowerList(dirLowers) : inUpper ? NO_LOWERS : onlyLower(found.source as number);
    const hostPath = this.layerOf(found.source).host(dir.childPath(name));
    const st = compactStat(await fsp.lstat(hostPath, { bigint: true }));
    if (fileType(st.mode) !== found.type) {
      // The listing and the entry disagree only if the upper changed behind our back.
      dir.invalidateListing();
      return this.lookup(dir, name);
    }
    const slot = inUpper ? 0 : (found.source as number) + 1;
    // A lower file with several names: one node id per name, one inode number shown for all.
    const lowerHardlink = !inUpper && found.type !== S_IFDIR && st.nlink > 1;
    const node = new Node({
      ino: lowerHardlink ? this.numbers.fresh() : ((inUpper ? this.upperInos.get(st.ino) : undefined) ?? this.numbers.forEntry(slot, st.ino)),
      parent: dir,
      name,
      type: found.type,
      inUpper,
      lowers,
      lowerPresent: lowerPresent || !inUpper,
    });
    if (lowerHardlink) node.statIno = this.numbers.forEntry(slot, st.ino);
    if (!inUpper) this.#lowerStats.set(node, st);
    else node.upperIno = st.ino;
    dir.children.set(name, node);
    this.nodes.add(node);
    return node;
  }

  async isOpaque(dir: Node, name: string, source: 'upper' | number): Promise<boolean> {
    return isOpaqueDir(this.layerOf(source).host(dir.childPath(name)));
  }

  /** The names of `dir`'s merged listing: no duplicates, markers and hidden names left out. */
  async merged(dir: Node): Promise<Set<string>> {
    if (dir.merged !== undefined) return dir.merged;
    const result = new Set<string>();
    const hidden = new Set<string>();
    for (const source of this.sourcesOf(dir)) {
      const listing = await this.listing(dir, source);
      const hiddenBelow: string[] = [];
      for (const [name, type] of listing) {
        const kind = classifyName(name);
        if (kind.kind === 'whiteout') {
          hiddenBelow.push(kind.target);
          continue;
        }
        if (kind.kind === 'invalid') {
          this.#warnInvalid(dir, source, name, kind.reason);
          continue;
        }
        if (kind.kind === 'opaque') continue;
        if (result.has(name) || hidden.has(name)) continue;
        if (type === WHITEOUT_TYPE) {
          hiddenBelow.push(name);
          continue;
        }
        result.add(name);
        // A non-directory (or a directory) here hides everything of that name further down;
        // `result.has` already takes care of that.
      }
      for (const name of hiddenBelow) hidden.add(name);
    }
    dir.merged = result;
    return result;
  }

  #warnInvalid(dir: Node, source: 'upper' | number, name: string, reason: string): void {
    const key = `${source}:${dir.childPath(name)}`;
    if (this.#warnedInvalid.has(key)) return;
    this.#warnedInvalid.add(key);
    log.warn(`ignoring invalid marker in layer ${source}: ${reason}`, { path: dir.childPath(name) });
  }

  /** Host lstat of what users see at `node` (upper entries are read fresh, lower ones cached). */
  async lstat(node: Node): Promise<HostStat> {
    if (!node.inUpper) {
      const cached = this.#lowerStats.get(node);
      if (cached !== undefined) return cached;
    }
    if (node.unlinked && node.inUpper) {
      if (node.lastStat !== undefined) return node.lastStat;
      throw new FsError('ESTALE', 'getattr', node.relPath);
    }
    const st = compactStat(await fsp.lstat(this.backing(node).path, { bigint: true }));
    if (!node.inUpper) this.#lowerStats.set(node, st);
    else node.lastStat = st;
    return st;
  }

  /**
   * Called before the upper entry of `node` is removed: once its last host link is gone the host
   * may reuse its inode number for a new file, which must not inherit the node's number.
   */
  async releaseUpperIno(node: Node): Promise<void> {
    if (node.upperIno === undefined) return;
    const st = await fsp.lstat(this.upperPath(node.relPath), { bigint: true }).catch(() => undefined);
    if (st === undefined || st.nlink <= 1n || fileType(Number(st.mode)) === S_IFDIR) this.upperInos.delete(node.upperIno);
  }

  /** Forgets a cached lower lstat (after the node stopped being backed by that entry). */
  forgetLowerStat(node: Node): void {
    this.#lowerStats.delete(node);
  }

  /** Drops a name from the caches after it was removed from the merged view. */
  forgetChild(dir: Node, name: string): void {
    this.#detachChild(dir, name);
    dir.merged?.delete(name);
    dir.entries = undefined;
  }

  /** After a new upper entry `name` was made in `dir`: drop any stale node, list the new one. */
  noteCreated(dir: Node, name: string, type: number): void {
    this.#detachChild(dir, name);
    dir.noteUpperAdded(name, type);
  }

  #detachChild(dir: Node, name: string): void {
    const child = dir.children.get(name);
    if (child === undefined) return;
    dir.children.delete(name);
    // The node stays in the table: a transport may still name it until it forgets it.
    child.unlinked = true;
  }
}

/** Listing type used for overlay-form (0/0 character device) whiteouts. */
export const WHITEOUT_TYPE = -1;

export function checkName(name: string, syscall: string, dir: Node): void {
  if (Buffer.byteLength(name) > NAME_MAX) throw new FsError('ENAMETOOLONG', syscall, dir.childPath(name));
}

async function isOpaqueDir(hostDir: string): Promise<boolean> {
  try {
    await fsp.lstat(`${hostDir}/${OPAQUE_MARKER}`);
    return true;
  } catch (err) {
    if (!isErrno(err, 'ENOENT', 'ENOTDIR')) throw err;
  }
  let names: string[];
  try {
    names = await native.llistxattr(hostDir);
  } catch (err) {
    if (isErrno(err, 'ENOTSUP', 'EOPNOTSUPP', 'ENOENT')) return false;
    throw err;
  }
  for (const attr of OVERLAY_OPAQUE_XATTRS) {
    if (!names.includes(attr)) continue;
    if (isOverlayOpaqueValue(await native.lgetxattr(hostDir, attr))) return true;
  }
  return false;
}
