/**
 * What a container changed, from its upper directory, in the form `docker diff` prints:
 *
 *   C /etc
 *   A /etc/new.conf
 *   D /etc/old.conf
 *
 * Rules (the upper is in OCI marker form, with overlay 0/0 character-device whiteouts for names
 * too long for `.wh.`):
 * - Every real upper entry is `C` if its path exists in the lower view (what the image showed
 *   before), else `A`. That includes the directories an upper change needed (`touch /etc/x` gives
 *   `C /etc` and `A /etc/x`), and a path whose type changed (a file replaced by a directory is `C`).
 * - A whiteout is `D` for the path it hides, only if that path exists in the lower view.
 * - An opaque upper directory (or any upper directory inside one: the opaque one already hides
 *   everything below it) replaces its lower counterpart: every lower child that the upper does
 *   not have is `D`. Only those children are reported, not their contents, as for a whited-out
 *   directory (`rm -r /d` is `D /d`, not one line per file).
 * - Markers never appear; an upper name that has both a marker and a real entry is the entry.
 *
 * Order: a depth-first walk with siblings in byte order, i.e. paths compared component by
 * component (`/a`, `/a/b`, `/a-b`); `comparePaths` in lower-view.ts gives the same order.
 */
import { lstatSync } from 'node:fs';
import { type EntryKind, LowerView, isOpaqueDir, joinViewPath, readLayerListing, sortNames } from './lower-view.js';

export type ChangeKind = 'A' | 'C' | 'D';

export interface Change {
  kind: ChangeKind;
  /** Absolute path in the image: '/etc/passwd'. */
  path: string;
}

export async function computeChanges(lowers: readonly string[], upper: string): Promise<Change[]> {
  if (!lstatSync(upper).isDirectory()) throw new Error(`upper ${upper} is not a directory`);
  const below = lowers.length === 0 ? undefined : new LowerView(lowers);
  const existedBefore = (path: string): boolean => below?.lookup(path) !== undefined;
  const upperRoot = upper.replace(/(.)\/+$/, '$1');
  const changes: Change[] = [];

  const walk = (dirPath: string, insideReplaced: boolean): void => {
    const hostDir = dirPath === '/' ? upperRoot : upperRoot + dirPath;
    const listing = readLayerListing(hostDir);
    const replaces = insideReplaced || isOpaqueDir(hostDir);
    const items = new Map<string, EntryKind | 'deleted'>();
    for (const name of deletedNames(dirPath, listing.whiteouts, replaces)) items.set(name, 'deleted');
    for (const [name, kind] of listing.entries) items.set(name, kind);
    for (const name of sortNames([...items.keys()])) {
      const path = joinViewPath(dirPath, name);
      const item = items.get(name)!;
      if (item === 'deleted') {
        changes.push({ kind: 'D', path });
        continue;
      }
      changes.push({ kind: existedBefore(path) ? 'C' : 'A', path });
      if (item === 'dir') walk(path, replaces);
    }
  };

  /** Lower names of `dirPath` that the upper deletes (entries of the upper itself are dropped by the caller). */
  const deletedNames = (dirPath: string, whiteouts: ReadonlySet<string>, replaces: boolean): string[] => {
    if (below === undefined) return [];
    if (replaces) return below.list(dirPath).map((child) => child.name);
    return [...whiteouts].filter((name) => existedBefore(joinViewPath(dirPath, name)));
  };

  walk('/', false);
  return changes;
}
