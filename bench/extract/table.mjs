// Markdown table of run.sh's results: per target, the median wall time of each tool, its
// throughput, its ratio to GNU tar on the same compression (> 1: faster than GNU tar), median CPU
// time and the highest peak RSS.
//   node table.mjs RESULTS_TSV UNCOMPRESSED_BYTES
import { readFileSync } from 'node:fs';

const [file, size] = process.argv.slice(2);
const rows = readFileSync(file, 'utf8')
  .trim()
  .split('\n')
  .map((line) => line.split('\t'));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const baseline = { gzip: 'GNU tar -xzf (gzip)', zstd: 'GNU tar --zstd -xf (zstd)' };

console.log('| target | tool | wall (s) | MiB/s | vs GNU tar | CPU user+sys (s) | peak RSS (MiB) |');
console.log('|---|---|---:|---:|---:|---:|---:|');
for (const place of new Set(rows.map((r) => r[0]))) {
  const stats = new Map();
  for (const name of new Set(rows.filter((r) => r[0] === place).map((r) => r[1]))) {
    const runs = rows.filter((r) => r[0] === place && r[1] === name);
    stats.set(name, {
      wall: median(runs.map((r) => Number(r[2]))),
      rss: Math.max(...runs.map((r) => Number(r[3]))),
      cpu: median(runs.map((r) => Number(r[4]) + Number(r[5]))),
    });
  }
  for (const [name, s] of stats) {
    const base = stats.get(baseline[name.endsWith('(zstd)') ? 'zstd' : 'gzip']);
    const ratio = base === undefined ? '' : `${(base.wall / s.wall).toFixed(2)}x`;
    const mibs = (Number(size) / 2 ** 20 / s.wall).toFixed(0);
    console.log(`| ${place} | ${name} | ${s.wall.toFixed(2)} | ${mibs} | ${ratio} | ${s.cpu.toFixed(1)} | ${(s.rss / 1024).toFixed(0)} |`);
  }
}
