/**
 * A small levelled logger writing to stderr. The level comes from whoever starts the process
 * (the CLI reads LAYERFS_LOG / --debug); library code only calls it.
 */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const order: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

let threshold: LogLevel = 'warn';

export function setLogLevel(level: LogLevel): void {
  threshold = level;
}

export function logEnabled(level: LogLevel): boolean {
  return order[level] <= order[threshold];
}

function write(level: LogLevel, message: string, context?: Record<string, unknown>): void {
  if (!logEnabled(level)) return;
  const extra = context === undefined ? '' : ' ' + formatContext(context);
  process.stderr.write(`layerfs ${level}: ${message}${extra}\n`);
}

function formatContext(context: Record<string, unknown>): string {
  return Object.entries(context)
    .map(([key, value]) => `${key}=${value instanceof Error ? (value.stack ?? value.message) : JSON.stringify(value)}`)
    .join(' ');
}

export const log = {
  error: (message: string, context?: Record<string, unknown>) => write('error', message, context),
  warn: (message: string, context?: Record<string, unknown>) => write('warn', message, context),
  info: (message: string, context?: Record<string, unknown>) => write('info', message, context),
  debug: (message: string, context?: Record<string, unknown>) => write('debug', message, context),
};
