import type { HostStat } from './host-stat.js';
import type { LayerListing } from './layer-dir.js';
import type { DirEntry, Ino } from './types.js';

/** The `lowers` of a name no lower layer shows through (shared: never modified, only replaced). */
export const NO_LOWERS: readonly number[] = Object.freeze([]);
const onlyLowers: Array<readonly number[]> = [];

/**
 * `lowers` for a name that one lower layer provides: one shared frozen array per layer, as most
 * names of an image are files from a single layer (an array each cost megabytes).
 */
export function onlyLower(index: number): readonly number[] {
  return (onlyLowers[index] ??= Object.freeze([index]));
}

/** `lowers` as given, or the shared array when it is the common single layer or none. */
export function lowerList(indices: number[]): readonly number[] {
  if (indices.length === 0) return NO_LOWERS;
  return indices.length === 1 ? onlyLower(indices[0]!) : indices;
}

/**
 * What only some names need: unlinked ones, lower hardlinks and copied-up ones. Kept
 * apart so that the many nodes that need none of it stay small.
 */
class SeldomState {
  unlinked = false;
  lastStat: HostStat | undefined = undefined;
  orphanPath: string | undefined = undefined;
  statIno: Ino | undefined = undefined;
  generation = 0;
}

/**
 * A name in the merged tree (a dentry): where it lives in the stack and what the engine has
 * learned about it. Hardlinked names are separate nodes that share an inode number.
 */
export class Node {
  ino: Ino;
  parent: Node | null;
  name: string;
  /** S_IFMT bits; fixed for the life of the node. */
  readonly type: number;
  /** The name exists in the upper directory (then the upper entry is what users see). */
  inUpper: boolean;
  /**
   * Lower layers (indices into the stack's lowers, top first) that show through at this name:
   * for a directory every layer that merges into it; for anything else the one layer that
   * provides it while it is not in the upper.
   */
  lowers: readonly number[];
  /**
   * Some lower layer has an entry at this name that would show if the upper entry went away:
   * removing the name must then leave a whiteout behind.
   */
  lowerPresent: boolean;
  // Made on first use: most nodes are files, which never need them.
  #children: Map<string, Node> | undefined;
  #listings: Map<'upper' | number, LayerListing> | undefined;
  #seldom: SeldomState | undefined;

  /** Positive lookups below this directory. */
  get children(): Map<string, Node> {
    return (this.#children ??= new Map());
  }

  /** Per-layer listings of this directory: key 'upper' or the lower index. */
  get listings(): Map<'upper' | number, LayerListing> {
    return (this.#listings ??= new Map());
  }
  /** The names of this directory's merged listing (markers and hidden names left out). */
  merged: Set<string> | undefined;
  /** The last readdir answer (names with inode numbers), while nothing in the directory changed. */
  entries: DirEntry[] | undefined;
  /** Real inode number of the upper entry, once the node is in the upper. */
  upperIno: bigint | undefined = undefined;
  /** Open handles on this node. */
  openCount = 0;

  #seldomState(): SeldomState {
    return (this.#seldom ??= new SeldomState());
  }

  /** Removed from the tree while still open (reported with st_nlink 0). */
  get unlinked(): boolean {
    return this.#seldom?.unlinked ?? false;
  }
  set unlinked(unlinked: boolean) {
    this.#seldomState().unlinked = unlinked;
  }

  /** Last attributes read for an upper node: what an unlinked node reports once its file is gone. */
  get lastStat(): HostStat | undefined {
    return this.#seldom?.lastStat;
  }
  set lastStat(st: HostStat | undefined) {
    this.#seldomState().lastStat = st;
  }

  /** Where an open file that was unlinked from the upper now lives (in the work directory). */
  get orphanPath(): string | undefined {
    return this.#seldom?.orphanPath;
  }
  set orphanPath(path: string | undefined) {
    this.#seldomState().orphanPath = path;
  }

  /**
   * The inode number `stat` shows when it differs from `ino`: each name of a file hardlinked in a
   * lower layer is a node of its own (writing one name copies up that name alone, so the engine
   * must always know which name an operation means), yet all of them show the one inode number.
   */
  get statIno(): Ino | undefined {
    return this.#seldom?.statIno;
  }
  set statIno(ino: Ino | undefined) {
    this.#seldomState().statIno = ino;
  }

  /** Bumped at copy-up, so read-only handles opened on the lower copy switch to the upper one. */
  get generation(): number {
    return this.#seldom?.generation ?? 0;
  }
  set generation(generation: number) {
    this.#seldomState().generation = generation;
  }

  constructor(init: { ino: Ino; parent: Node | null; name: string; type: number; inUpper: boolean; lowers: readonly number[]; lowerPresent: boolean }) {
    this.ino = init.ino;
    this.parent = init.parent;
    this.name = init.name;
    this.type = init.type;
    this.inUpper = init.inUpper;
    this.lowers = init.lowers;
    this.lowerPresent = init.lowerPresent;
  }

  /** Path of this node relative to the mount root: '' for the root, '/a/b' otherwise. */
  get relPath(): string {
    if (this.parent === null) return '';
    const parts: string[] = [];
    for (let n: Node | null = this; n !== null && n.parent !== null; n = n.parent) parts.push(n.name);
    return '/' + parts.reverse().join('/');
  }

  childPath(name: string): string {
    return `${this.relPath}/${name}`;
  }

  /** Forgets what is cached about this directory's own entries (after the upper part changed). */
  invalidateListing(): void {
    this.listings.delete('upper');
    this.merged = undefined;
    this.entries = undefined;
  }

  /**
   * Records that the upper part of this directory gained `name` (of `type`), visible as such in
   * the merged view unless `visible` is false (a marker). Cheaper than invalidating: the listings
   * of a directory being filled are not read again for every new entry.
   */
  noteUpperAdded(name: string, type: number, visible = true): void {
    this.listings.get('upper')?.set(name, type);
    if (visible) {
      this.merged?.add(name);
      this.entries = undefined;
    }
  }

  /** Records that `name` left the upper part; `gone` also removes it from the merged view. */
  noteUpperRemoved(name: string, gone = true): void {
    this.listings.get('upper')?.delete(name);
    if (gone) {
      this.merged?.delete(name);
      this.entries = undefined;
    }
  }
}

/**
 * Inode numbers: a lower entry gets (layer slot << 48) | its real inode number, so names that are
 * hardlinked within one layer share a number without any bookkeeping, and the numbers of different
 * layers never collide. Numbers that do not fit come from a counter above that range.
 */
export class InodeNumbers {
  static readonly SLOT_BITS = 48;
  #next = 2 ** 53 - 2 ** 40;

  forEntry(slot: number, realIno: bigint): Ino {
    if (slot < 31 && realIno < 2n ** 48n && realIno > 1n) {
      return slot * 2 ** InodeNumbers.SLOT_BITS + Number(realIno);
    }
    return this.fresh();
  }

  fresh(): Ino {
    return this.#next++;
  }
}

/**
 * Nodes by inode number. Almost every inode has one name, so the table holds the node itself and
 * an array only for names that share a number (hardlinks): a Set per entry cost megabytes.
 */
export class NodeTable {
  readonly #byIno = new Map<Ino, Node | Node[]>();

  add(node: Node): void {
    const current = this.#byIno.get(node.ino);
    if (current === undefined) this.#byIno.set(node.ino, node);
    else if (Array.isArray(current)) {
      if (!current.includes(node)) current.push(node);
    } else if (current !== node) this.#byIno.set(node.ino, [current, node]);
  }

  remove(node: Node): void {
    const current = this.#byIno.get(node.ino);
    if (current === node) this.#byIno.delete(node.ino);
    else if (Array.isArray(current)) {
      const rest = current.filter((n) => n !== node);
      if (rest.length === 0) this.#byIno.delete(node.ino);
      else this.#byIno.set(node.ino, rest.length === 1 ? rest[0]! : rest);
    }
  }

  /** Any live name of the inode; names still in the tree are preferred over unlinked ones. */
  get(ino: Ino): Node | undefined {
    const current = this.#byIno.get(ino);
    if (!Array.isArray(current)) return current;
    return current.find((node) => !node.unlinked) ?? current[current.length - 1];
  }

  names(ino: Ino): Node[] {
    const current = this.#byIno.get(ino);
    return current === undefined ? [] : Array.isArray(current) ? [...current] : [current];
  }

  renumber(node: Node, ino: Ino): void {
    this.remove(node);
    node.ino = ino;
    this.add(node);
  }
}
