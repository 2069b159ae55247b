// A tree as sorted text lines, one per entry, so two trees compare with deepEqual and a failure
// shows a readable diff:
//
//   path type mode uid gid size sha256 linktarget rdev xattrs
//   /a/b.txt file 0644 0 0 5 2cf24dba... - - user.x=00ff
//
// Fields that do not apply are '-': directories have no size; only files have a sha256, only
// symlinks a target, only devices an rdev (major,minor). xattrs are name=hex, sorted, comma
// separated. Times are not part of a line (cases check them with lstat). Spaces, '%' and
// control characters in paths and link targets are %-escaped.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as native from '../../src/native/index.js';
import { MountClient, type FsClient, type Kind } from './clients.js';
import { DEFAULT_DIR_MODE, DEFAULT_FILE_MODE } from './layers.js';

export interface DumpOptions {
  /** Append `mtime=NS ctime=NS` to every line (to prove that nothing changed at all). */
  times?: boolean;
}

/**
 * Dumps the tree below `root` (default '/') as seen through `client`. A failing operation on an
 * entry does not stop the dump: its field shows `!CODE` (so one diff shows every problem).
 */
export async function dumpTree(client: FsClient, root = '/', options: DumpOptions = {}): Promise<string[]> {
  const lines: string[] = [];
  const walk = async (p: string, shown: string): Promise<void> => {
    const st = await client.lstat(p);
    const xattrs: Record<string, Buffer | string> = {};
    const names = await attempt(() => client.listxattr(p));
    if (typeof names === 'string') xattrs['!listxattr'] = names;
    else for (const name of names) xattrs[name] = await attempt(() => client.getxattr(p, name));
    const entry: DumpEntry = { path: shown, kind: st.kind, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, xattrs };
    if (st.kind === 'file') entry.content = await attempt(() => client.readFile(p));
    if (st.kind === 'symlink') entry.target = await attempt(() => client.readlink(p));
    if (st.kind !== 'dir') entry.size = st.size;
    if (st.kind === 'chr' || st.kind === 'blk') entry.rdev = [native.major(st.rdev), native.minor(st.rdev)];
    const line = formatLine(entry);
    lines.push(options.times === true ? `${line} mtime=${st.mtimeNs} ctime=${st.ctimeNs}` : line);
    // The root is walked even if it claims not to be a directory, so the rest still shows.
    if (st.kind !== 'dir' && p !== root) return;
    const children = await attempt(() => client.readdir(p));
    if (typeof children === 'string') {
      lines.push(`${escapeField(shown)} readdir=${children}`);
      return;
    }
    for (const name of children) {
      await walk(p === '/' ? `/${name}` : `${p}/${name}`, shown === '/' ? `/${name}` : `${shown}/${name}`);
    }
  };
  await walk(root, '/');
  return lines.sort();
}

/** The result of `fn`, or '!CODE' when it fails with an errno error. */
async function attempt<T>(fn: () => Promise<T>): Promise<T | string> {
  try {
    return await fn();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'string') throw err;
    return `!${code}`;
  }
}

/** Dumps a host directory (node:fs and the addon's l*xattr; nothing is followed). */
export function dumpHostDir(path: string, options: DumpOptions = {}): Promise<string[]> {
  return dumpTree(new MountClient(path, 'host'), '/', options);
}

export interface DumpEntry {
  path: string;
  kind: Kind;
  /** Permission bits (mode & 07777). */
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  /** File content, or '!CODE' if it could not be read. */
  content?: Buffer | string;
  target?: string;
  rdev?: [number, number];
  xattrs?: Record<string, Buffer | string>;
}

export function formatLine(e: DumpEntry): string {
  const size = e.kind === 'dir' ? '-' : String(e.size ?? defaultSize(e));
  const sha =
    e.content === undefined ? '-' : typeof e.content === 'string' ? e.content : createHash('sha256').update(e.content).digest('hex');
  const target = e.target === undefined ? '-' : escapeField(e.target);
  const rdev = e.rdev === undefined ? '-' : `${e.rdev[0]},${e.rdev[1]}`;
  const names = Object.keys(e.xattrs ?? {}).sort();
  const xattrs =
    names.length === 0
      ? '-'
      : names.map((n) => `${n}=${toBuf(e.xattrs![n]!).toString('hex')}`).join(',');
  const mode = e.mode.toString(8).padStart(4, '0');
  return [escapeField(e.path), e.kind, mode, e.uid, e.gid, size, sha, target, rdev, xattrs].join(' ');
}

function defaultSize(e: DumpEntry): number {
  if (Buffer.isBuffer(e.content)) return e.content.length;
  if (e.target !== undefined) return Buffer.byteLength(e.target);
  return 0;
}

function toBuf(v: Buffer | string): Buffer {
  return typeof v === 'string' ? Buffer.from(v) : v;
}

function escapeField(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[%\s\x00-\x1f\x7f]/g, (ch) => `%${ch.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
}

/** The path field of a dump line. */
export function linePath(line: string): string {
  return line.slice(0, line.indexOf(' '));
}

// ---- expected lines ------------------------------------------------------------------------------

export interface LineMeta {
  mode?: number;
  uid?: number;
  gid?: number;
  xattrs?: Record<string, Buffer | string>;
}

function base(path: string, meta: LineMeta, defMode: number) {
  return { path, mode: meta.mode ?? defMode, uid: meta.uid ?? 0, gid: meta.gid ?? 0, xattrs: meta.xattrs ?? {} };
}

export const expectDir = (path: string, meta: LineMeta = {}): string =>
  formatLine({ ...base(path, meta, DEFAULT_DIR_MODE), kind: 'dir' });
export const expectFile = (path: string, content: string | Buffer = '', meta: LineMeta = {}): string =>
  formatLine({ ...base(path, meta, DEFAULT_FILE_MODE), kind: 'file', content: toBuf(content) });
export const expectSymlink = (path: string, target: string, meta: LineMeta = {}): string =>
  formatLine({ ...base(path, meta, 0o777), kind: 'symlink', target });
export const expectFifo = (path: string, meta: LineMeta = {}): string =>
  formatLine({ ...base(path, meta, DEFAULT_FILE_MODE), kind: 'fifo', size: 0 });
export const expectChr = (path: string, major: number, minor: number, meta: LineMeta = {}): string =>
  formatLine({ ...base(path, meta, DEFAULT_FILE_MODE), kind: 'chr', size: 0, rdev: [major, minor] });
/** The root line every stack built by the test helpers has. */
export const ROOT_LINE = expectDir('/');

// ---- comparing -------------------------------------------------------------------------------------

export function assertTree(actual: string[], expected: string[], message?: string): void {
  assert.deepEqual(actual, [...expected].sort(), message);
}

/**
 * Each item of `items` is either a full dump line (it must be present exactly) or just a path
 * (some line with that path must be present).
 */
export function assertTreeHas(actual: string[], items: string[], message = ''): void {
  const paths = new Set(actual.map(linePath));
  for (const item of items) {
    if (item.includes(' ')) {
      const samePath = actual.find((l) => linePath(l) === linePath(item));
      assert.equal(samePath, item, `${message} expected line for ${linePath(item)}`);
    } else {
      assert.ok(paths.has(item), `${message} expected ${item} in:\n${actual.join('\n')}`);
    }
  }
}

/** None of `paths` is present. */
export function assertTreeLacks(actual: string[], paths: string[], message = ''): void {
  const present = new Set(actual.map(linePath));
  for (const p of paths) assert.ok(!present.has(p), `${message} did not expect ${p} in:\n${actual.join('\n')}`);
}
