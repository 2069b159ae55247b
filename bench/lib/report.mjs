// Turns the raw rows run.sh recorded into the Markdown table and a JSON file.
//   node report.mjs RUN_DIR CACHE_DIR RESULTS_DIR
// RUN_DIR holds results.tsv (impl, metric, rep, value, note), workloads.tsv (metric, label) and
// notes.txt; CACHE_DIR the layer stats; the rest comes from BENCH_* variables set by run.sh.
// Writes RESULTS_DIR/latest.{md,json,tsv} and prints the Markdown.
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const [runDir, cacheDir, resultsDir] = process.argv.slice(2);
const IMPLS = ['overlay', 'fuse-overlayfs', 'layerfs', 'layerfs-passthrough'];
const LABELS = { overlay: 'kernel overlayfs', 'fuse-overlayfs': 'fuse-overlayfs', layerfs: 'layerfs', 'layerfs-passthrough': 'layerfs --passthrough' };
const BASELINE = 'overlay';
const selected = (process.env.BENCH_IMPLS ?? IMPLS.join(' ')).split(' ');
const mode = process.env.BENCH_MODE ?? 'full';
const reps = Number(process.env.BENCH_REPS ?? 3);

const rows = readLines(join(runDir, 'results.tsv')).map((line) => {
  const [impl, metric, rep, value, note = ''] = line.split('\t');
  return { impl, metric, rep: Number(rep), value, note };
});
const workloads = readLines(join(runDir, 'workloads.tsv')).map((line) => line.split('\t'));
const notes = existsSync(join(runDir, 'notes.txt')) ? readLines(join(runDir, 'notes.txt')) : [];

function readLines(path) {
  return readFileSync(path, 'utf8').split('\n').filter((line) => line !== '');
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** What one implementation did on one metric: samples, or why there are none. */
function summarize(impl, metric) {
  const mine = rows.filter((r) => r.impl === impl && r.metric === metric);
  const samples = mine.filter((r) => /^[0-9.]+$/.test(r.value)).map((r) => Number(r.value));
  const failed = mine.find((r) => r.value === 'timeout' || r.value === 'error');
  const notRun = rows.find((r) => r.impl === impl && r.metric === '*');
  const summary = { samples, checks: [...new Set(mine.filter((r) => r.note).map((r) => r.note))] };
  if (failed) return { ...summary, status: failed.value, reason: failed.note };
  if (samples.length > 0) return { ...summary, status: 'ok', median: median(samples), min: Math.min(...samples), max: Math.max(...samples) };
  if (!selected.includes(impl)) return { ...summary, status: 'notrun', reason: 'not selected' };
  return { ...summary, status: 'notrun', reason: notRun?.note ?? 'no result' };
}

function formatSeconds(s) {
  return s < 1 ? s.toFixed(3) : s < 100 ? s.toFixed(2) : s.toFixed(0);
}

function formatRatio(r) {
  return r < 10 ? `${r.toFixed(2)}×` : `${r.toFixed(0)}×`;
}

function cell(impl, result, base) {
  if (result.status === 'timeout') return `timeout (${result.reason})`;
  if (result.status === 'error') return `error¹`;
  if (result.status === 'notrun') return result.reason === 'not selected' ? 'not run (not selected)' : 'not run²';
  const time = formatSeconds(result.median);
  // Fewer samples than repetitions: the workload ran over the long-run cap and was not repeated.
  const runs = result.samples.length < reps ? `${result.samples.length} run${result.samples.length > 1 ? 's' : ''}` : '';
  if (impl === BASELINE) return runs ? `${time} (${runs})` : time;
  const ratio = base?.status !== 'ok' || base.median === 0 ? '—' : formatRatio(result.median / base.median);
  return `${time} (${[ratio, runs].filter(Boolean).join(', ')})`;
}

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

function machine() {
  const repo = process.env.BENCH_REPO ?? '.';
  const dirty = sh('git', ['-C', repo, 'status', '--porcelain', '--', 'src', 'bin', 'native-bindings']) !== '';
  return {
    date: new Date().toISOString(),
    cpus: Number(sh('nproc', [])),
    kernel: sh('uname', ['-r']),
    debian: sh('cat', ['/etc/debian_version']),
    node: process.version,
    fuseOverlayfs: sh('fuse-overlayfs', ['--version']).match(/fuse-overlayfs: version (\S+)/)?.[1] ?? '',
    // Other work on the machine skews every number: the 5- and 15-minute averages cover the run.
    loadAverageAtEnd: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    layerfsCommit: sh('git', ['-C', repo, 'rev-parse', '--short', 'HEAD']) + (dirty ? ' (with uncommitted changes)' : ''),
  };
}

function layerStats() {
  const path = join(cacheDir, 'stats');
  if (!existsSync(path)) return {};
  return Object.fromEntries(readLines(path).map((line) => line.split('=')).map(([k, v]) => [k, Number(v)]));
}

// Per implementation: the highest VmHWM any of its daemons reached, and during which workload.
function peakRss(impl) {
  const rss = rows.filter((r) => r.impl === impl && r.metric === 'rss');
  if (impl === 'overlay') return { status: 'na' };
  if (rss.length === 0) return { status: 'notrun' };
  const top = rss.reduce((a, b) => (Number(b.value) > Number(a.value) ? b : a));
  return { status: 'ok', kb: Number(top.value), workload: top.note, byWorkload: Object.fromEntries(workloads.map(([m]) => [m, Math.max(0, ...rss.filter((r) => r.note === m).map((r) => Number(r.value)))]).filter(([, v]) => v > 0)) };
}

function rssCell(impl, peak) {
  if (peak.status === 'na') return 'n/a (in the kernel)';
  if (peak.status === 'notrun') return selected.includes(impl) ? 'not run²' : 'not run (not selected)';
  return `${(peak.kb / 1024).toFixed(1)} MiB (${peak.workload})`;
}

const results = {};
for (const [metric] of workloads) {
  results[metric] = Object.fromEntries(IMPLS.map((impl) => [impl, summarize(impl, metric)]));
}
const rss = Object.fromEntries(IMPLS.map((impl) => [impl, peakRss(impl)]));
const info = machine();
const stats = layerStats();

// Mismatched sanity counts (entries walked, bytes tarred...) hint that an implementation showed a
// different tree than the kernel did.
const mismatches = [];
for (const [metric, label] of workloads) {
  if (metric === 'mount') continue;
  const base = results[metric][BASELINE];
  for (const impl of IMPLS) {
    const r = results[metric][impl];
    if (impl === BASELINE || r.status !== 'ok' || base.status !== 'ok') continue;
    if (r.checks.join() !== base.checks.join()) mismatches.push(`${LABELS[impl]}, ${label}: output ${r.checks.join(', ')} where kernel overlayfs gave ${base.checks.join(', ')}`);
  }
}
const errors = [];
for (const [metric, label] of workloads) {
  for (const impl of IMPLS) {
    const r = results[metric][impl];
    if (r.status === 'error') errors.push(`${LABELS[impl]}, ${label}: ${r.reason}`);
  }
}

const walkEntries = IMPLS.map((impl) => results.walk?.[impl]).find((r) => r?.status === 'ok')?.checks[0] ?? '?';
const mib = (bytes) => `${Math.round(bytes / 2 ** 20)} MiB`;
const md = [];
md.push(`### ${mode === 'full' ? 'Full' : 'Quick'} run, ${info.date.slice(0, 10)}`);
md.push('');
md.push(`Machine: ${info.cpus} vCPU, kernel ${info.kernel}, Debian ${info.debian}, Node ${info.node}, fuse-overlayfs ${info.fuseOverlayfs}; layerfs at ${info.layerfsCommit}.`);
md.push(`Layers: base ${stats.base_entries ?? '?'} entries (${mib(stats.base_bytes ?? 0)}, /usr/{${(process.env.BENCH_USR_DIRS ?? '').split(' ').join(',')}} plus synthetic trees), mid ${stats.mid_entries ?? '?'} (whiteouts, opaque directories), top ${stats.top_entries ?? '?'}; the merged tree has ${walkEntries} entries.`);
md.push(`Median of ${reps} run${reps > 1 ? 's' : ''} each; ratio = time ÷ kernel overlayfs time (higher is slower). Whole benchmark took ${Math.round(Number(process.env.BENCH_SECONDS ?? 0) / 60)} min; load average at the end ${info.loadAverageAtEnd} (1, 5, 15 min; the benchmark's own work included).`);
md.push('');
md.push(`| workload | ${IMPLS.map((impl) => (impl === BASELINE ? `${LABELS[impl]} (s)` : `${LABELS[impl]} (s, ratio)`)).join(' | ')} |`);
md.push(`| --- | ${IMPLS.map(() => "---:").join(" | ")} |`);
for (const [metric, label] of workloads) {
  const r = results[metric];
  md.push(`| ${label} | ${IMPLS.map((impl) => cell(impl, r[impl], r[BASELINE])).join(' | ')} |`);
}
md.push(`| daemon peak RSS (VmHWM, highest over all mounts; during) | ${IMPLS.map((impl) => rssCell(impl, rss[impl])).join(' | ')} |`);
if (errors.length > 0) {
  md.push('');
  md.push('¹ Errors:');
  for (const e of errors) md.push(`- ${e}`);
}
const notRun = IMPLS.filter((impl) => selected.includes(impl))
  .map((impl) => [impl, rows.find((r) => r.impl === impl && r.metric === '*')])
  .filter(([, row]) => row !== undefined);
if (notRun.length > 0) {
  md.push('');
  md.push('² Not run:');
  for (const [impl, row] of notRun) md.push(`- ${LABELS[impl]}: ${row.note}`);
}
if (mismatches.length > 0 || notes.length > 0) {
  md.push('');
  md.push('Notes:');
  for (const n of [...notes, ...mismatches]) md.push(`- ${n}`);
}
const markdown = md.join('\n') + '\n';

const json = {
  mode,
  repetitions: reps,
  stepTimeoutSeconds: Number(process.env.BENCH_TIMEOUT ?? 0),
  totalSeconds: Number(process.env.BENCH_SECONDS ?? 0),
  machine: info,
  layers: stats,
  workloads: Object.fromEntries(workloads.map(([metric, label]) => [metric, { label, ...results[metric] }])),
  peakRssKb: rss,
  errors,
  mismatches,
  notes,
  notRun: Object.fromEntries(notRun.map(([impl, row]) => [impl, row.note])),
};
writeFileSync(join(resultsDir, 'latest.md'), markdown);
writeFileSync(join(resultsDir, 'latest.json'), JSON.stringify(json, null, 2) + '\n');
copyFileSync(join(runDir, 'results.tsv'), join(resultsDir, 'latest.tsv'));
process.stdout.write(`\n${markdown}\nWritten to ${join(resultsDir, 'latest.md')} and latest.json\n`);
