/**
 * verifyLayerAgainstIndex (for `layerfs check`): does an extracted layer directory still match the
 * metadata index written when it was extracted? Detects missing, extra and changed names (type,
 * size, mode, owner, mtime, symlink target, device numbers, xattrs, hardlink groups) and, with
 * `content: true`, changed file contents (when sha256s were recorded at extraction:
 * ExtractOptions.indexContentDigests).
 *
 * What the disk is expected to hold follows the index header's `privileged`: an unprivileged
 * extraction has our own uid/gid on disk, owner-accessible modes and placeholder files for devices,
 * so only what it could apply is compared.
 */
import { createHash } from 'node:crypto';
import { createReadStream, type BigIntStats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import * as native from '../native/index.js';
import { readLayerIndex, readLayerIndexHeader, type IndexEntryType, type LayerIndexRecord } from './layer-index.js';

export interface VerifyOptions {
  /**
   * Also hash regular files and compare with the sha256 in the index. Only files extracted with
   * `indexContentDigests` have one: see VerifyReport.contentChecked.
   */
  content?: boolean;
  /** Report names on disk that the index does not know (default true). */
  extras?: boolean;
}

export type VerifyProblemKind =
  | 'missing'
  | 'extra'
  | 'type'
  | 'size'
  | 'mode'
  | 'owner'
  | 'mtime'
  | 'link-target'
  | 'device'
  | 'xattr'
  | 'hardlink'
  | 'content';

export interface VerifyProblem {
  path: string;
  kind: VerifyProblemKind;
  expected?: string;
  actual?: string;
}

export interface VerifyReport {
  ok: boolean;
  /** Records checked. */
  checked: number;
  /** Regular files whose content was hashed and compared (0 if the index has no digests). */
  contentChecked: number;
  problems: VerifyProblem[];
}

export async function verifyLayerAgainstIndex(dir: string, indexPath: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const header = await readLayerIndexHeader(indexPath);
  const problems: VerifyProblem[] = [];
  const known = new Set<string>();
  // Hardlink groups: names sharing an inode in the index must share one on disk, and vice versa.
  const diskInoOfGroup = new Map<number, bigint>();
  const groupOfDiskIno = new Map<bigint, number>();
  let checked = 0;
  let contentChecked = 0;
  for await (const record of readLayerIndex(indexPath)) {
    checked++;
    known.add(record.path);
    const abs = record.path === '' ? dir : `${dir}/${record.path}`;
    let st: BigIntStats;
    try {
      st = await lstat(abs, { bigint: true });
    } catch {
      problems.push({ path: record.path, kind: 'missing' });
      continue;
    }
    const report = (kind: VerifyProblemKind, expected: unknown, actual: unknown): void => {
      problems.push({ path: record.path, kind, expected: String(expected), actual: String(actual) });
    };
    const expectedType: IndexEntryType = record.placeholder === true ? 'file' : record.type;
    const actualType = typeOf(st);
    if (actualType !== expectedType) {
      report('type', expectedType, actualType);
      continue;
    }
    const expectedSize = record.placeholder === true ? 0 : record.size;
    if ((record.type === 'file' || record.type === 'symlink') && st.size !== BigInt(expectedSize)) {
      report('size', expectedSize, st.size);
    }
    if (record.type !== 'symlink') {
      const [expectedMode, mask] = diskMode(record, header.privileged);
      const actualMode = Number(st.mode) & mask;
      if (actualMode !== expectedMode) report('mode', expectedMode.toString(8), actualMode.toString(8));
    }
    if (header.privileged && (Number(st.uid) !== record.uid || Number(st.gid) !== record.gid)) {
      report('owner', `${record.uid}:${record.gid}`, `${st.uid}:${st.gid}`);
    }
    if (st.mtimeNs !== record.mtimeNs) report('mtime', record.mtimeNs, st.mtimeNs);
    if (record.linkTarget !== undefined) {
      const target = await readlink(abs, { encoding: 'buffer' });
      if (!target.equals(record.linkTarget)) report('link-target', record.linkTarget.toString(), target.toString());
    }
    if ((record.type === 'char' || record.type === 'block') && record.placeholder !== true) {
      const major = native.major(st.rdev);
      const minor = native.minor(st.rdev);
      if (major !== record.devMajor || minor !== record.devMinor) report('device', `${record.devMajor},${record.devMinor}`, `${major},${minor}`);
    }
    await checkXattrs(abs, record, report);
    checkGroup(record, st.ino, diskInoOfGroup, groupOfDiskIno, report);
    if (options.content === true && record.type === 'file' && record.sha256 !== undefined && record.placeholder !== true) {
      const actual = await sha256File(abs);
      contentChecked++;
      if (actual !== record.sha256) report('content', record.sha256, actual);
    }
  }
  if (options.extras !== false) {
    for await (const path of walk(dir, '')) if (!known.has(path)) problems.push({ path, kind: 'extra' });
  }
  return { ok: problems.length === 0, checked, contentChecked, problems };
}

function typeOf(st: BigIntStats): IndexEntryType | 'socket' | 'unknown' {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return st.isSocket() ? 'socket' : 'unknown';
}

/** The mode bits expected on disk, and which bits to compare (mirrors layer-writer.ts). */
function diskMode(record: LayerIndexRecord, privileged: boolean): [number, number] {
  if (privileged) return [record.mode, 0o7777];
  if (record.placeholder === true) return [0o600, 0o777];
  // Unprivileged: setuid/setgid may have been dropped by the kernel (foreign group), so only the
  // permission bits are compared, with the owner access the writer adds.
  return [(record.mode | (record.type === 'dir' ? 0o700 : 0o400)) & 0o777, 0o777];
}

async function checkXattrs(
  abs: string,
  record: LayerIndexRecord,
  report: (kind: VerifyProblemKind, expected: unknown, actual: unknown) => void,
): Promise<void> {
  if (record.xattrs === undefined) return;
  const notApplied = new Set(record.xattrsNotApplied ?? []);
  for (const [name, value] of record.xattrs) {
    if (notApplied.has(name)) continue;
    let actual: Buffer | undefined;
    try {
      actual = await native.lgetxattr(abs, name);
    } catch {
      actual = undefined;
    }
    if (actual === undefined || !actual.equals(value)) {
      report('xattr', `${name}=${value.toString('hex')}`, actual === undefined ? `${name} missing` : `${name}=${actual.toString('hex')}`);
    }
  }
}

function checkGroup(
  record: LayerIndexRecord,
  diskIno: bigint,
  diskInoOfGroup: Map<number, bigint>,
  groupOfDiskIno: Map<bigint, number>,
  report: (kind: VerifyProblemKind, expected: unknown, actual: unknown) => void,
): void {
  if (record.type === 'dir') return;
  const knownDisk = diskInoOfGroup.get(record.ino);
  const knownGroup = groupOfDiskIno.get(diskIno);
  if (knownDisk === undefined && knownGroup === undefined) {
    diskInoOfGroup.set(record.ino, diskIno);
    groupOfDiskIno.set(diskIno, record.ino);
  } else if (knownDisk !== diskIno || knownGroup !== record.ino) {
    report('hardlink', `inode group ${record.ino}`, `disk inode ${diskIno}`);
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every name below `dir`, relative, without following symlinks. */
async function* walk(dir: string, rel: string): AsyncGenerator<string> {
  const entries = await readdir(rel === '' ? dir : `${dir}/${rel}`, { withFileTypes: true });
  for (const entry of entries) {
    const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
    yield path;
    if (entry.isDirectory()) yield* walk(dir, path);
  }
}
