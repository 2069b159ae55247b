import type { Ino, OpenResult } from '../union/types.js';

/** The kernel's side of FUSE passthrough: backing ids for host files (FuseInstance's methods). */
export interface BackingFiles {
  openBacking(fd: number): number;
  closeBacking(id: number): void;
}

/** How the kernel is told to do one open's I/O. */
export type OpenMode =
  /** The kernel reads (and maps) the lower file itself: FOPEN_PASSTHROUGH with this backing id. */
  | { kind: 'passthrough'; backingId: number }
  /** Through the page cache and the daemon; kept across opens when the content is immutable. */
  | { kind: 'cached'; keepCache: boolean };

/**
 * One kernel inode. libfuse's path API has one per name (`node`, libfuse's node id), plus a
 * second one for a renewed node (`renewed`, FuseInstance#renewNode); `ino` (the engine's) stands
 * in when the binding cannot tell the node (0).
 */
export interface KernelInode {
  node: number;
  renewed: boolean;
  ino: Ino;
}

function keyOf(inode: KernelInode): string {
  if (inode.node === 0) return `i${inode.ino}`;
  return inode.renewed ? `r${inode.node}` : `n${inode.node}`;
}

interface InodeOpens {
  passthrough: number;
  cached: number;
  /** Write opens and size changes under way: no passthrough open may start meanwhile. */
  changing: number;
  /** Shared by every passthrough open of the inode while there is one. */
  backingId?: number;
}

/**
 * Chooses each open's I/O mode under the kernel's rules for FUSE passthrough (fs/fuse/iomode.c):
 * while an inode has a passthrough open, every open of it must be passthrough with the same
 * backing file, else the caller's open(2) fails with EIO; and an inode with cached opens gets no
 * passthrough open.
 *
 * Read-only opens of lower files go passthrough when they can: the kernel then reads and maps
 * the lower file with no request to us and no second page cache. A backing file is opened with
 * the flags of the open that uses it, so a writable open can never share the lower file's: while
 * an inode has passthrough opens its content cannot change through it (`beginChange` refuses, and
 * the caller renews the node, so that the change is retried on a kernel inode of its own), which
 * also keeps every later read-only open of it right to share the lower file, even after a copy-up
 * of its metadata. A renewed inode exists for a change, so it never takes passthrough itself. A
 * change under way holds off new passthrough opens, so none starts on a lower file that is being
 * copied up.
 *
 * Counts are per kernel inode, as the kernel keeps them. The kernel drops an open's mode before it
 * sends RELEASE, so these counts can only be ahead of it, which is the safe side.
 */
export class KernelIoModes {
  readonly #opens = new Map<string, InodeOpens>();
  readonly #handles = new Map<number, { key: string; kind: OpenMode['kind'] }>();
  /** The last backing failure reported (each new one is reported once). */
  #failure: string | undefined;
  /**
   * Passthrough is off for this mount, or the kernel refused it (EPERM: it did not take it at
   * INIT, or we lack CAP_SYS_ADMIN): opens are then not tracked at all, nothing can conflict.
   */
  #off: boolean;

  /** `backing` undefined: no passthrough on this mount. */
  constructor(
    private readonly backing: BackingFiles | undefined,
    private readonly onBackingFailure: (code: string) => void = () => {},
  ) {
    this.#off = backing === undefined;
  }

  /**
   * Before a write open or a size change through `inode`: false when that kernel inode cannot
   * take it (it has passthrough opens). Otherwise it holds off passthrough until `endChange`.
   */
  beginChange(inode: KernelInode): boolean {
    if (this.#off && this.#opens.size === 0) return true;
    const key = keyOf(inode);
    const opens = this.#inode(key);
    if (opens.passthrough > 0) {
      this.#forgetIfIdle(key, opens);
      return false;
    }
    opens.changing++;
    return true;
  }

  endChange(inode: KernelInode): void {
    const key = keyOf(inode);
    const opens = this.#opens.get(key);
    if (opens === undefined) return;
    opens.changing--;
    this.#forgetIfIdle(key, opens);
  }

  /**
   * The mode for handle `fh`, just opened by the engine with `result` through `inode`. A writable
   * open must be made between beginChange and endChange.
   */
  opened(inode: KernelInode, fh: number, result: Pick<OpenResult, 'keepCache' | 'lowerFd'>, writable = false): OpenMode {
    if (this.#off && this.#opens.size === 0) return { kind: 'cached', keepCache: result.keepCache };
    const key = keyOf(inode);
    const opens = this.#inode(key);
    // Never for a writable open: the kernel would open the lower file for writing.
    const mayStart = opens.cached === 0 && opens.changing === 0 && !inode.renewed && result.lowerFd !== undefined;
    const backingId = writable ? undefined : (opens.backingId ?? (mayStart ? this.#register(result.lowerFd!) : undefined));
    let mode: OpenMode;
    if (backingId !== undefined) {
      opens.backingId = backingId;
      opens.passthrough++;
      mode = { kind: 'passthrough', backingId };
    } else {
      opens.cached++;
      mode = { kind: 'cached', keepCache: result.keepCache };
    }
    this.#handles.set(fh, { key, kind: mode.kind });
    return mode;
  }

  /** Handle `fh` was released (or its open never reached the kernel). */
  released(fh: number): void {
    const handle = this.#handles.get(fh);
    if (handle === undefined) return;
    this.#handles.delete(fh);
    const opens = this.#opens.get(handle.key);
    if (opens === undefined) return;
    if (handle.kind === 'cached') opens.cached--;
    else if (--opens.passthrough === 0 && opens.backingId !== undefined) {
      this.#unregister(opens.backingId);
      opens.backingId = undefined;
    }
    this.#forgetIfIdle(handle.key, opens);
  }

  #inode(key: string): InodeOpens {
    let opens = this.#opens.get(key);
    if (opens === undefined) {
      opens = { passthrough: 0, cached: 0, changing: 0 };
      this.#opens.set(key, opens);
    }
    return opens;
  }

  #forgetIfIdle(key: string, opens: InodeOpens): void {
    if (opens.passthrough === 0 && opens.cached === 0 && opens.changing === 0) this.#opens.delete(key);
  }

  #register(fd: number): number | undefined {
    if (this.#off || this.backing === undefined) return undefined;
    try {
      return this.backing.openBacking(fd);
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'EIO';
      if (code === 'EPERM') this.#off = true;
      if (this.#failure !== code) this.onBackingFailure(code);
      this.#failure = code;
      return undefined;
    }
  }

  #unregister(id: number): void {
    try {
      this.backing?.closeBacking(id);
    } catch {
      // The session is gone (ENOTCONN): the kernel dropped every backing id with it.
    }
  }
}
