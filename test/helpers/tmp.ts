// Temporary directories for tests, under os.tmpdir(), removed again by `cleanup()`.
// Anything still mounted below a temp dir is lazily unmounted first, so a failed test never
// makes `rm -r` walk into (or hang on) a FUSE mount.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Mount points currently listed in /proc/self/mountinfo (octal escapes decoded). */
export function mountPoints(): string[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => decodeMountField(line.split(' ')[4] ?? ''));
}

function decodeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function isMounted(path: string): boolean {
  return mountPoints().includes(path);
}

/** Lazily unmounts every mount at or below `dir`, deepest first. */
export function unmountBelow(dir: string): void {
  const below = mountPoints()
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of below) {
    try {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    } catch {
      // Already gone, or not ours to unmount: rm below will report what is left.
    }
  }
}

/** A fresh directory `os.tmpdir()/layerfs-<prefix>-XXXXXX`, mode 0755 (so other users can traverse it). */
export async function makeTempDir(prefix = 'test'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `layerfs-${prefix}-`));
  await chmod(dir, 0o755);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  unmountBelow(dir);
  await rm(dir, { recursive: true, force: true });
}

/** A set of temp dirs created by one test file or case, removed together. */
export class TempDirs {
  readonly #dirs: string[] = [];

  /** A new temp dir. */
  async make(prefix = 'test'): Promise<string> {
    const dir = await makeTempDir(prefix);
    this.#dirs.push(dir);
    return dir;
  }

  /** A new (0755) subdirectory `name` of `parent`. */
  static async sub(parent: string, name: string): Promise<string> {
    const dir = join(parent, name);
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    return dir;
  }

  async cleanup(): Promise<void> {
    const dirs = this.#dirs.splice(0);
    for (const dir of dirs.reverse()) await removeTempDir(dir);
  }
}
