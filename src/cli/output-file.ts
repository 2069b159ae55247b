import { createWriteStream, promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

/**
 * Writes an output file whole or not at all: into a temporary name beside it, fsynced, then
 * renamed over the target. `-` means standard output.
 */
export async function writeOutput(path: string, write: (out: Writable) => Promise<void>): Promise<void> {
  if (path === '-') {
    await write(process.stdout);
    return;
  }
  const target = resolve(path);
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.partial`);
  const out = createWriteStream(temp, { mode: 0o644, flush: true });
  try {
    await write(out);
    if (!out.writableEnded) out.end();
    await finished(out);
    await fsp.rename(temp, target);
  } catch (err) {
    out.destroy();
    await fsp.rm(temp, { force: true });
    throw err;
  }
}
