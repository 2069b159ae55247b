// Decompression bombs: 2 GiB of zeros as one file, compressed to a few MiB (gzip) or KiB (zstd).
// Memory must stay bounded by backpressure, with no size limit that would refuse an honest layer:
// the layer is extracted completely, in a child process whose peak RSS (VmHWM) is measured.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createWriteStream, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { after, describe, it } from 'node:test';
import { rawHeader } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { run } from './support.js';

const temps = new TempDirs();
after(() => temps.cleanup());

const SIZE = 2 * 1024 * 1024 * 1024;
const RSS_LIMIT = 200 * 1024 * 1024;
const here = dirname(fileURLToPath(import.meta.url));

/** A tar holding one file of SIZE zero bytes, generated lazily. */
function zeroTar(): Readable {
  return Readable.from(
    (function* () {
      yield rawHeader({ name: 'zeros', size: SIZE });
      const block = Buffer.alloc(1024 * 1024);
      for (let done = 0; done < SIZE; done += block.length) yield block;
      yield Buffer.alloc(1024);
    })(),
  );
}

/** Extracts `blob` in a fresh node process; returns its result and peak RSS in bytes. */
function extractInChild(blob: string, target: string): { result: { entries: number; uncompressedSize: number }; peakRss: number } {
  const script = `
    import { createReadStream, readFileSync } from 'node:fs';
    import { extractLayer } from ${JSON.stringify(join(here, '../../src/extract/index.ts'))};
    const result = await extractLayer(createReadStream(${JSON.stringify(blob)}), ${JSON.stringify(target)}, {
      indexPath: ${JSON.stringify(`${target}.index`)},
    });
    const hwm = /VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1];
    console.log(JSON.stringify({ result, peakRss: Number(hwm) * 1024 }));`;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: join(here, '../..'),
    encoding: 'utf8',
  });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!) as ReturnType<typeof extractInChild>;
}

describe('decompression bombs', { timeout: 600_000 }, () => {
  it('gzip: 2 GiB of zeros from ~2 MiB, RSS < 200 MiB', async (t) => {
    const base = await temps.make('bomb');
    const blob = join(base, 'layer.tar.gz');
    await pipeline(zeroTar(), createGzip({ level: 1 }), createWriteStream(blob));
    assert.ok(statSync(blob).size < 16 * 1024 * 1024);
    const target = await TempDirs.sub(base, 'layer');
    const { result, peakRss } = extractInChild(blob, target);
    t.diagnostic(`blob ${statSync(blob).size} bytes, peak RSS ${(peakRss / 2 ** 20).toFixed(1)} MiB`);
    assert.equal(result.entries, 1);
    assert.equal(statSync(join(target, 'zeros')).size, SIZE);
    assert.ok(peakRss < RSS_LIMIT, `peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`);
  });

  it('zstd: 2 GiB of zeros from a few KiB, RSS < 200 MiB', async (t) => {
    const base = await temps.make('bomb');
    const tar = join(base, 'layer.tar');
    await pipeline(zeroTar(), createWriteStream(tar));
    run('zstd', ['-q', '-1', '--rm', tar]);
    const blob = `${tar}.zst`;
    assert.ok(statSync(blob).size < 1024 * 1024);
    const target = await TempDirs.sub(base, 'layer');
    const { result, peakRss } = extractInChild(blob, target);
    t.diagnostic(`blob ${statSync(blob).size} bytes, peak RSS ${(peakRss / 2 ** 20).toFixed(1)} MiB`);
    assert.equal(result.uncompressedSize, 512 + SIZE + 1024);
    assert.equal(statSync(join(target, 'zeros')).size, SIZE);
    assert.ok(peakRss < RSS_LIMIT, `peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`);
  });
});
