// One extraction with layerfs's extractLayer, as the store runs it (metadata index, diffID
// verified; --content-digests adds per-file sha256 to the index). Used by run.sh under /usr/bin/time.
//   node extract.mjs DIST_DIR BLOB TARGET_DIR INDEX_PATH DIFF_ID [--content-digests]
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dist, blob, target, indexPath, diffId, ...flags] = process.argv.slice(2);
const { extractLayer } = await import(pathToFileURL(join(dist, 'extract', 'index.js')).href);
const started = process.hrtime.bigint();
const result = await extractLayer(createReadStream(blob, { highWaterMark: 1024 * 1024 }), target, {
  indexPath,
  expectedDiffId: diffId || undefined,
  indexContentDigests: flags.includes('--content-digests'),
});
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.error(`extractLayer: ${result.entries} entries, ${result.uncompressedSize} bytes in ${seconds.toFixed(2)} s`);
