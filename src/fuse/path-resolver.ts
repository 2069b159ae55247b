import { FsError } from '../errors.js';
import { ROOT_INO, type Ino, type UnionFs } from '../union/types.js';

/**
 * Turns the full paths of a path-based FUSE binding into the engine's inode numbers.
 *
 * libfuse's high-level API keeps a file that is unlinked while open alive by renaming it to
 * `.fuse_hiddenXXXXXXXXXXXXXXXX` in the same directory and unlinking that name on the last
 * release. The resolver turns that rename into a real unlink in the engine (which keeps the open
 * node alive and reports st_nlink 0) and remembers the hidden name as an alias of the node, so the
 * name never appears in the tree or in listings.
 */
export class PathResolver {
  readonly #fs: UnionFs;
  readonly #hidden = new Map<string, Ino>();

  constructor(fs: UnionFs) {
    this.#fs = fs;
  }

  async ino(path: string): Promise<Ino> {
    const alias = this.#hidden.get(path);
    if (alias !== undefined) return alias;
    let ino = ROOT_INO;
    if (path === '/') return ino;
    for (const name of components(path)) ino = await this.#fs.resolve(ino, name);
    return ino;
  }

  /** The directory's inode number and the last component of `path`. */
  async parentOf(path: string): Promise<{ parent: Ino; name: string }> {
    const cut = path.lastIndexOf('/');
    const name = path.slice(cut + 1);
    if (name === '' || cut < 0) throw new FsError('EINVAL', 'resolve', path);
    return { parent: await this.ino(cut === 0 ? '/' : path.slice(0, cut)), name };
  }

  isHiddenName(path: string): boolean {
    return HIDDEN.test(path.slice(path.lastIndexOf('/') + 1));
  }

  hiddenAlias(path: string): Ino | undefined {
    return this.#hidden.get(path);
  }

  addHidden(path: string, ino: Ino): void {
    this.#hidden.set(path, ino);
  }

  dropHidden(path: string): boolean {
    return this.#hidden.delete(path);
  }
}

const HIDDEN = /^\.fuse_hidden[0-9a-f]{16}$/;

function components(path: string): string[] {
  return path.split('/').filter((part) => part !== '');
}
