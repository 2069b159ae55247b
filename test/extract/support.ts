// Shared helpers of the extractor tests: run extractLayer on a buffer, dump a directory tree,
// and list a tar with an independent implementation (Python's tarfile) for round-trip checks.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { extractLayer, type ExtractOptions, type ExtractResult } from '../../src/extract/index.js';
import * as native from '../../src/native/index.js';
import { streamOf } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';

export interface Extracted {
  dir: string;
  indexPath: string;
  result: ExtractResult;
}

/** Extracts `blob` into a fresh temp dir (with an index next to it). */
export async function extractBuffer(temps: TempDirs, blob: Buffer, options: ExtractOptions = {}): Promise<Extracted> {
  const base = await temps.make('extract');
  const dir = await TempDirs.sub(base, 'layer');
  const indexPath = join(base, 'layer.index');
  const result = await extractLayer(streamOf(blob), dir, { indexPath, ...options });
  return { dir, indexPath, result };
}

/** Extracts and expects a failure; returns the error. */
export async function extractError(temps: TempDirs, blob: Buffer, options: ExtractOptions = {}): Promise<Error & { code?: string }> {
  try {
    await extractBuffer(temps, blob, options);
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('extraction succeeded but was expected to fail');
}

export interface DumpEntry {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'other';
  /** Permission bits incl. setuid/setgid/sticky (0 for symlinks). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files only. */
  size?: number;
  sha256?: string;
  linkTarget?: string;
  /** "major,minor" for devices. */
  rdev?: string;
  /** name -> hex value. */
  xattrs: Record<string, string>;
}

/** path type mode uid gid size sha256 linktarget rdev xattrs of every name below `dir` ('' = dir). */
export function dumpTree(dir: string): Map<string, DumpEntry> {
  const out = new Map<string, DumpEntry>();
  const visit = (rel: string): void => {
    const abs = rel === '' ? dir : join(dir, rel);
    const st = lstatSync(abs);
    const type = st.isFile()
      ? 'file'
      : st.isDirectory()
        ? 'dir'
        : st.isSymbolicLink()
          ? 'symlink'
          : st.isCharacterDevice()
            ? 'char'
            : st.isBlockDevice()
              ? 'block'
              : st.isFIFO()
                ? 'fifo'
                : 'other';
    const entry: DumpEntry = { type, mode: type === 'symlink' ? 0 : st.mode & 0o7777, uid: st.uid, gid: st.gid, xattrs: {} };
    if (type === 'file') {
      entry.size = st.size;
      entry.sha256 = createHash('sha256').update(readFileSync(abs)).digest('hex');
    }
    if (type === 'symlink') entry.linkTarget = readlinkSync(abs, { encoding: 'buffer' }).toString('latin1');
    if (type === 'char' || type === 'block') entry.rdev = `${native.major(st.rdev)},${native.minor(st.rdev)}`;
    for (const name of native.llistxattrSync(abs).sort()) entry.xattrs[name] = native.lgetxattrSync(abs, name).toString('hex');
    out.set(rel, entry);
    if (type === 'dir') for (const name of readdirSync(abs).sort()) visit(rel === '' ? name : `${rel}/${name}`);
  };
  visit('');
  return out;
}

/**
 * The listing of a tar by Python's tarfile, in the dump's terms (later entries win, hardlinks
 * resolved to their target's content), keyed by normalised path.
 */
export function pythonListing(tarPath: string): Map<string, DumpEntry> {
  const script = String.raw`
import tarfile, hashlib, json, sys, os
out = {}
with tarfile.open(sys.argv[1]) as t:
    members = t.getmembers()
    content = {}
    for m in members:
        name = os.path.normpath(m.name.lstrip('/'))
        if name == '.': name = ''
        types = {tarfile.REGTYPE: 'file', tarfile.AREGTYPE: 'file', tarfile.DIRTYPE: 'dir', tarfile.SYMTYPE: 'symlink',
                 tarfile.CHRTYPE: 'char', tarfile.BLKTYPE: 'block', tarfile.FIFOTYPE: 'fifo', tarfile.LNKTYPE: 'link',
                 tarfile.GNUTYPE_SPARSE: 'file'}
        kind = types.get(m.type, 'other')
        xattrs = {}
        for k, v in m.pax_headers.items():
            if k.startswith('SCHILY.xattr.'):
                xattrs[k[len('SCHILY.xattr.'):]] = v.encode('utf-8', 'surrogateescape').hex()
        e = {'type': kind, 'mode': m.mode & 0o7777, 'uid': m.uid, 'gid': m.gid, 'xattrs': dict(sorted(xattrs.items()))}
        if kind == 'file' or m.issparse():
            data = t.extractfile(m).read()
            e['type'] = 'file'; e['size'] = len(data); e['sha256'] = hashlib.sha256(data).hexdigest()
            content[name] = e
        elif kind == 'link':
            target = os.path.normpath(m.linkname.lstrip('/'))
            e = dict(content[target])
        elif kind == 'symlink':
            e['mode'] = 0
            e['linkTarget'] = m.linkname.encode('utf-8', 'surrogateescape').decode('latin1')
        elif kind in ('char', 'block'):
            e['rdev'] = '%d,%d' % (m.devmajor, m.devminor)
        out[name] = e
for k in out: print(json.dumps([k, out[k]]))
`;
  const result = spawnSync('python3', ['-c', script, tarPath], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`python tar listing failed: ${result.stderr}`);
  const listing = new Map<string, DumpEntry>();
  for (const line of result.stdout.trim().split('\n')) {
    const [path, entry] = JSON.parse(line) as [string, DumpEntry];
    listing.set(path, entry);
  }
  return listing;
}

/** Runs a shell command (tar, python...) and returns stdout; throws with stderr on failure. */
export function run(command: string, args: string[], options: { cwd?: string; input?: Buffer } = {}): Buffer {
  const result = spawnSync(command, args, { cwd: options.cwd, input: options.input, maxBuffer: 1 << 30 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr?.toString()}`);
  return result.stdout;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}
