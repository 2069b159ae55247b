/** Formatting for people: sizes, ages and aligned tables. */

export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? Math.round(value) : value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)}${units[unit]}`;
}

export function humanAge(iso: string | undefined, now = Date.now()): string {
  if (iso === undefined) return 'N/A';
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return 'N/A';
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  const steps: Array<[number, string]> = [[60, 'second'], [60, 'minute'], [24, 'hour'], [7, 'day'], [4.35, 'week'], [12, 'month'], [Infinity, 'year']];
  let value = seconds;
  for (const [size, name] of steps) {
    if (value < size) return `${Math.floor(value)} ${name}${Math.floor(value) === 1 ? '' : 's'} ago`;
    value /= size;
  }
  return 'long ago';
}

/** Columns padded to their widest cell, separated by three spaces (as docker prints them). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ');
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** "registry/repo:tag" or "repo@sha256:…" split for display. */
export function splitRef(ref: string): { repository: string; tag: string } {
  const at = ref.indexOf('@');
  if (at >= 0) return { repository: ref.slice(0, at), tag: '<none>' };
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return { repository: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repository: ref, tag: '<none>' };
}
