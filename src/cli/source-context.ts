import { homedir } from 'node:os';
import { loadRegistriesConfig } from '../config/registries.js';
import { UserError } from '../errors.js';
import { DEFAULT_RETRY, HttpTransport, type RetryPolicy } from '../registry/http.js';
import type { SourceContext } from '../source/open.js';
import type { RegistryArgs } from './registry-option.js';

/** The longest --stall-timeout: undici keeps timers in milliseconds in a 32-bit range. */
const MAX_STALL_SECONDS = 24 * 3600;

/** Everything opening a source needs, from the process's environment and options. */
export async function sourceContext(args: RegistryArgs): Promise<SourceContext & { retry: RetryPolicy }> {
  const retry = retryPolicy(args.retry);
  const stallTimeoutMs = stallTimeout(args.stallTimeout);
  const registries = await loadRegistriesConfig({ path: args.registriesConfig, env: process.env, uid: process.getuid?.() ?? 0, home: homedir() });
  return { http: new HttpTransport({ stallTimeoutMs }), registries, env: process.env, home: homedir(), retry };
}

function retryPolicy(retries: number | undefined): RetryPolicy {
  if (retries === undefined) return DEFAULT_RETRY;
  if (!Number.isInteger(retries) || retries < 0 || retries > 100) {
    throw new UserError(`--retry must be a whole number from 0 to 100, not ${shown(retries)}`, { exitCode: 2 });
  }
  return { ...DEFAULT_RETRY, attempts: retries + 1 };
}

function stallTimeout(seconds: number | undefined): number | undefined {
  if (seconds === undefined) return undefined;
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_STALL_SECONDS) {
    throw new UserError(`--stall-timeout must be a number of seconds above 0 and at most ${MAX_STALL_SECONDS}, not ${shown(seconds)}`, { exitCode: 2 });
  }
  return Math.round(seconds * 1000);
}

/** yargs turns what is not a number into NaN. */
const shown = (value: number): string => (Number.isNaN(value) ? 'something that is not a number' : String(value));
