// Builds layer directories in code from a spec, exactly as an extracted image layer (OCI markers)
// or an overlayfs upper (0/0 char devices, opaque xattrs) would look on disk.
//
//   await buildLayer(dir, [file('a/b.txt', 'hello', { mode: 0o4755, uid: 1000 }), whiteout('x'), opaque('d')]);
//
// Parent directories are created implicitly (0755, root-owned, DEFAULT_MTIME_NS) unless listed with
// dir(). Metadata (owner, mode, xattrs, times) is applied after every entry exists, deepest first,
// so creating children never disturbs a directory's mtime. Needs root (chown, mknod, trusted.*).
import { constants as fsc } from 'node:fs';
import { chmod, lchown, link, mkdir, symlink as fsSymlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as native from '../../src/native/index.js';

/** Default mtime/atime of everything a layer spec creates: 2020-09-13T12:26:40.123456789Z. */
export const DEFAULT_MTIME_NS = 1_600_000_000_123_456_789n;
export const DEFAULT_FILE_MODE = 0o644;
export const DEFAULT_DIR_MODE = 0o755;

export interface Meta {
  /** Permission bits including setuid/setgid/sticky (no file type bits). */
  mode?: number;
  uid?: number;
  gid?: number;
  mtimeNs?: bigint;
  atimeNs?: bigint;
  /** Extended attributes, set with lsetxattr (strings are UTF-8). */
  xattrs?: Record<string, Buffer | string>;
}

export type LayerEntry =
  | { kind: 'file'; path: string; content: Buffer; meta: Meta }
  | { kind: 'dir'; path: string; meta: Meta }
  | { kind: 'symlink'; path: string; target: string; meta: Meta }
  | { kind: 'hardlink'; path: string; target: string }
  | { kind: 'fifo'; path: string; meta: Meta }
  | { kind: 'chardev' | 'blockdev'; path: string; major: number; minor: number; meta: Meta }
  | { kind: 'whiteout'; path: string }
  | { kind: 'opaque'; path: string }
  | { kind: 'overlayWhiteout'; path: string }
  | { kind: 'overlayOpaque'; path: string; namespace: 'trusted' | 'user' };

/** One layer: its entries in creation order. */
export type LayerSpec = LayerEntry[];

export const file = (path: string, content: string | Buffer = '', meta: Meta = {}): LayerEntry => ({
  kind: 'file',
  path,
  content: typeof content === 'string' ? Buffer.from(content) : content,
  meta,
});
export const dir = (path: string, meta: Meta = {}): LayerEntry => ({ kind: 'dir', path, meta });
export const symlink = (path: string, target: string, meta: Meta = {}): LayerEntry => ({ kind: 'symlink', path, target, meta });
/** A second name `path` for the (earlier) entry `target` of the same layer. */
export const hardlink = (path: string, target: string): LayerEntry => ({ kind: 'hardlink', path, target });
export const fifo = (path: string, meta: Meta = {}): LayerEntry => ({ kind: 'fifo', path, meta });
export const chardev = (path: string, major: number, minor: number, meta: Meta = {}): LayerEntry => ({
  kind: 'chardev',
  path,
  major,
  minor,
  meta,
});
export const blockdev = (path: string, major: number, minor: number, meta: Meta = {}): LayerEntry => ({
  kind: 'blockdev',
  path,
  major,
  minor,
  meta,
});
/** OCI whiteout: an empty file `.wh.NAME` next to `path` hides `path` of the layers below. */
export const whiteout = (path: string): LayerEntry => ({ kind: 'whiteout', path });
/** OCI opaque marker `path/.wh..wh..opq` ('' is the layer root). */
export const opaque = (path: string): LayerEntry => ({ kind: 'opaque', path });
/** overlayfs whiteout: a 0/0 character device at `path`. */
export const overlayWhiteout = (path: string): LayerEntry => ({ kind: 'overlayWhiteout', path });
/** overlayfs opaque directory: xattr `<namespace>.overlay.opaque` = "y" on `path`. */
export const overlayOpaque = (path: string, namespace: 'trusted' | 'user' = 'trusted'): LayerEntry => ({
  kind: 'overlayOpaque',
  path,
  namespace,
});

/** 'a/b', '/a/b/' → 'a/b'; '' and '/' → '' (the layer root). */
export function normalize(path: string): string {
  return path.split('/').filter((part) => part !== '' && part !== '.').join('/');
}

interface Pending {
  rel: string;
  meta: Meta;
  isDir: boolean;
  isLink: boolean;
}

/** Writes `spec` into the existing (usually empty) directory `root`. */
export async function buildLayer(root: string, spec: LayerSpec): Promise<void> {
  const host = (rel: string) => (rel === '' ? root : join(root, rel));
  const pending = new Map<string, Pending>();
  const dirs = new Set<string>(['']);
  pending.set('', { rel: '', meta: {}, isDir: true, isLink: false });

  const ensureDir = async (rel: string): Promise<void> => {
    if (dirs.has(rel)) return;
    const parent = parentOf(rel);
    await ensureDir(parent);
    await mkdir(host(rel), { mode: 0o700 });
    dirs.add(rel);
    if (!pending.has(rel)) pending.set(rel, { rel, meta: {}, isDir: true, isLink: false });
  };

  for (const entry of spec) {
    const rel = normalize(entry.path);
    switch (entry.kind) {
      case 'dir':
        await ensureDir(rel);
        pending.set(rel, { rel, meta: entry.meta, isDir: true, isLink: false });
        break;
      case 'file':
        await ensureDir(parentOf(rel));
        await writeFile(host(rel), entry.content, { flag: 'wx', mode: 0o600 });
        pending.set(rel, { rel, meta: entry.meta, isDir: false, isLink: false });
        break;
      case 'symlink':
        await ensureDir(parentOf(rel));
        await fsSymlink(entry.target, host(rel));
        pending.set(rel, { rel, meta: entry.meta, isDir: false, isLink: true });
        break;
      case 'hardlink':
        await ensureDir(parentOf(rel));
        await link(host(normalize(entry.target)), host(rel));
        break;
      case 'fifo':
        await ensureDir(parentOf(rel));
        await native.mknod(host(rel), fsc.S_IFIFO | 0o600, 0);
        pending.set(rel, { rel, meta: entry.meta, isDir: false, isLink: false });
        break;
      case 'chardev':
      case 'blockdev': {
        await ensureDir(parentOf(rel));
        const type = entry.kind === 'chardev' ? fsc.S_IFCHR : fsc.S_IFBLK;
        await native.mknod(host(rel), type | 0o600, native.makedev(entry.major, entry.minor));
        pending.set(rel, { rel, meta: entry.meta, isDir: false, isLink: false });
        break;
      }
      case 'whiteout': {
        const parent = parentOf(rel);
        await ensureDir(parent);
        await writeFile(host(join(parent, `.wh.${baseOf(rel)}`)), '', { flag: 'wx', mode: 0o644 });
        break;
      }
      case 'opaque':
        await ensureDir(rel);
        await writeFile(join(host(rel), '.wh..wh..opq'), '', { flag: 'wx', mode: 0o644 });
        break;
      case 'overlayWhiteout':
        await ensureDir(parentOf(rel));
        await native.mknod(host(rel), fsc.S_IFCHR | 0o600, 0);
        break;
      case 'overlayOpaque':
        await ensureDir(rel);
        await native.lsetxattr(host(rel), `${entry.namespace}.overlay.opaque`, Buffer.from('y'));
        break;
    }
  }

  // Deepest first: a directory's times are set after everything inside it is done.
  const ordered = [...pending.values()].sort((a, b) => depth(b.rel) - depth(a.rel) || (a.rel < b.rel ? -1 : 1));
  for (const item of ordered) await applyMeta(host(item.rel), item);
}

async function applyMeta(path: string, item: Pending): Promise<void> {
  const { meta } = item;
  await lchown(path, meta.uid ?? 0, meta.gid ?? 0);
  // chmod after chown: chown clears setuid/setgid.
  if (!item.isLink) await chmod(path, meta.mode ?? (item.isDir ? DEFAULT_DIR_MODE : DEFAULT_FILE_MODE));
  for (const [name, value] of Object.entries(meta.xattrs ?? {})) {
    await native.lsetxattr(path, name, typeof value === 'string' ? Buffer.from(value) : value);
  }
  const mtime = meta.mtimeNs ?? DEFAULT_MTIME_NS;
  await native.lutimens(path, native.timespecFromNs(meta.atimeNs ?? mtime), native.timespecFromNs(mtime));
}

function parentOf(rel: string): string {
  const parent = dirname(rel);
  return parent === '.' ? '' : parent;
}

function baseOf(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1);
}

function depth(rel: string): number {
  return rel === '' ? 0 : rel.split('/').length;
}
