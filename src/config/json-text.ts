/**
 * Where JSON.parse failed, as "(line L, column C)". Its own message is not used because it can
 * quote the text around the error, and these files hold secrets.
 */
export function jsonErrorPosition(text: string, err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  if (/end of JSON/i.test(message)) return ' (it ends too early)';
  const match = /position (\d+)/.exec(message);
  if (match === null) return '';
  const before = text.slice(0, Number(match[1]));
  return ` (line ${before.split('\n').length}, column ${before.length - before.lastIndexOf('\n')})`;
}
