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
 * an inode has passthrough opens its content cannot change (`beginChange` refuses, and the caller
 * answers ETXTBSY as for a running program), which also keeps every later read-only open right to
 * share the lower file, even after a copy-up of its metadata. A change under way holds off new
 * passthrough opens, so none starts on a lower file that is being copied up.
 *
 * Counts are per engine inode: every kernel inode of a name maps to one engine inode, so a count
 * here is never below the kernel's. The kernel drops an open's mode before it sends RELEASE, so
 * these counts can only be ahead of it, which is the safe side.
 */
export class KernelIoModes {
  readonly #opens = new Map<Ino, InodeOpens>();
  readonly #handles = new Map<number, { ino: Ino; kind: OpenMode['kind'] }>();
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
   * Before a write open or a size change of `ino`: false when it must be refused (the inode has
   * passthrough opens). Otherwise it holds off passthrough until `endChange`.
   */
  beginChange(ino: Ino): boolean {
    if (this.#off && this.#opens.size === 0) return true;
    const inode = this.#inode(ino);
    if (inode.passthrough > 0) {
      this.#forgetIfIdle(ino, inode);
      return false;
    }
    inode.changing++;
    return true;
  }

  endChange(ino: Ino): void {
    const inode = this.#opens.get(ino);
    if (inode === undefined) return;
    inode.changing--;
    this.#forgetIfIdle(ino, inode);
  }

  /**
   * The mode for handle `fh` of inode `ino`, just opened by the engine with `result`. A writable
   * open must be made between beginChange and endChange.
   */
  opened(ino: Ino, fh: number, result: Pick<OpenResult, 'keepCache' | 'lowerFd'>, writable = false): OpenMode {
    if (this.#off && this.#opens.size === 0) return { kind: 'cached', keepCache: result.keepCache };
    const inode = this.#inode(ino);
    // Never for a writable open: the kernel would open the lower file for writing.
    const mayStart = inode.cached === 0 && inode.changing === 0 && result.lowerFd !== undefined;
    const backingId = writable ? undefined : (inode.backingId ?? (mayStart ? this.#register(result.lowerFd!) : undefined));
    let mode: OpenMode;
    if (backingId !== undefined) {
      inode.backingId = backingId;
      inode.passthrough++;
      mode = { kind: 'passthrough', backingId };
    } else {
      inode.cached++;
      mode = { kind: 'cached', keepCache: result.keepCache };
    }
    this.#handles.set(fh, { ino, kind: mode.kind });
    return mode;
  }

  /** Handle `fh` was released (or its open never reached the kernel). */
  released(fh: number): void {
    const handle = this.#handles.get(fh);
    if (handle === undefined) return;
    this.#handles.delete(fh);
    const inode = this.#opens.get(handle.ino);
    if (inode === undefined) return;
    if (handle.kind === 'cached') inode.cached--;
    else if (--inode.passthrough === 0 && inode.backingId !== undefined) {
      this.#unregister(inode.backingId);
      inode.backingId = undefined;
    }
    this.#forgetIfIdle(handle.ino, inode);
  }

  #inode(ino: Ino): InodeOpens {
    let inode = this.#opens.get(ino);
    if (inode === undefined) {
      inode = { passthrough: 0, cached: 0, changing: 0 };
      this.#opens.set(ino, inode);
    }
    return inode;
  }

  #forgetIfIdle(ino: Ino, inode: InodeOpens): void {
    if (inode.passthrough === 0 && inode.cached === 0 && inode.changing === 0) this.#opens.delete(ino);
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
