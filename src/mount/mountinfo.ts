import { promises as fsp } from 'node:fs';

/** One line of /proc/self/mountinfo that matters to us. */
export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
}

/** The mounts of this process's mount namespace, parsed from /proc/self/mountinfo. */
export async function readMounts(): Promise<MountEntry[]> {
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 0 || fields.length < dash + 3) continue;
    mounts.push({ mountpoint: unescape(fields[4]!), fstype: fields[dash + 1]!, source: unescape(fields[dash + 2]!) });
  }
  return mounts;
}

/** The topmost mount at exactly `path` (an absolute, normalised path), if any. */
export async function mountAt(path: string): Promise<MountEntry | undefined> {
  const mounts = await readMounts();
  for (let i = mounts.length - 1; i >= 0; i--) if (mounts[i]!.mountpoint === path) return mounts[i];
  return undefined;
}

/** The kernel escapes space, tab, newline and backslash as \ooo in mountinfo. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export const LAYERFS_FSTYPE = 'fuse.layerfs';
