/**
 * `exportRootfs`: the flattened root filesystem of an image (or a container: its upper on top) as
 * one plain tar, what `docker export` gives. Whiteouts and opaque directories are applied, no
 * marker appears, and hardlinks stay hardlinks.
 *
 * Hardlinks are decided on the merged view, not copied from the layers' tars: two visible names
 * are links of one file exactly when the same layer provides both and they are one inode there.
 * So when a higher layer or the upper deletes one name of a lower hardlink group, the first name
 * still visible (in walk order) carries the data and the others link to it; and a name changed in
 * the upper is a file of its own (its copy-up is another inode), no longer in the group. A layer is
 * part of the key because layer directories are separate trees even if a store shared inodes.
 *
 * The format and order are layer-tar.ts's: depth-first, siblings in byte order, ustar with PAX only
 * where needed, mtime in whole seconds, the root not included, sockets skipped, overlay bookkeeping
 * xattrs left out. Directories shown merged from several layers carry the topmost one's metadata,
 * as the mount shows them.
 */
import { lstatSync } from 'node:fs';
import { type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  END_OF_ARCHIVE,
  HardlinkTable,
  type TarWriteOptions,
  batchChunks,
  checkedDirectory,
  describeHostEntry,
  hostEntry,
  inodeKey,
  pipelineOptions,
  tarReadable,
  tarTypeOf,
} from './layer-tar.js';
import { LowerView, type ViewEntry } from './lower-view.js';

/**
 * Writes the merged view of `lowers` (top first) and `upper` (if any) to `out` as a tar. On
 * failure `out` is destroyed (stream.pipeline semantics) and the promise rejects.
 */
export async function exportRootfs(
  lowers: readonly string[],
  upper: string | undefined,
  out: Writable,
  options: TarWriteOptions = {},
): Promise<void> {
  const layers = (upper === undefined ? [...lowers] : [upper, ...lowers]).map(checkedDirectory);
  if (layers.length === 0) throw new TypeError('exportRootfs needs at least one layer');
  const view = new LowerView(layers);
  await pipeline(tarReadable(batchChunks(rootfsArchive(view))), out, pipelineOptions(options));
}

async function* rootfsArchive(view: LowerView): AsyncGenerator<Buffer> {
  const links = new HardlinkTable();
  yield* directoryEntries(view, view.root(), links);
  yield END_OF_ARCHIVE;
}

async function* directoryEntries(view: LowerView, dir: ViewEntry, links: HardlinkTable): AsyncGenerator<Buffer> {
  for (const child of view.list(dir)) {
    const st = lstatSync(child.hostPath, { bigint: true });
    const type = tarTypeOf(st.mode);
    if (type === undefined) continue; // a socket
    const path = child.path.slice(1);
    const linkTo = type === 'directory' ? undefined : links.previousName(`${child.layer}:${inodeKey(st)}`, path, st);
    yield* hostEntry(describeHostEntry(path, child.hostPath, st, linkTo), child.hostPath);
    if (type === 'directory') yield* directoryEntries(view, child, links);
  }
}
