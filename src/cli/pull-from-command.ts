import type { PullResult } from '../pull/pull.js';
import type { PlatformSpec } from '../registry/platform.js';
import { pullImage } from '../pull/pull.js';
import { openSource } from '../source/open.js';
import type { Store } from '../store/store.js';
import { pullProgress, reportMovedNames } from './pull-progress.js';
import type { RegistryArgs } from './registry-option.js';
import { sourceContext } from './source-context.js';

export interface CommandPull {
  /** What the user typed: a registry reference, `oci:DIR[:REF]`, `docker-archive:FILE[:REF]`. */
  target: string;
  platform: PlatformSpec;
  /** --platform was given: a single-platform image for another platform is refused. */
  strictPlatform: boolean;
  maxConcurrentDownloads: number;
  quiet: boolean;
}

/**
 * A pull as `pull` and `mount` run it: the source opened from the command's options, progress on
 * stderr, names taken from other images reported, connections closed afterwards. Resolves with
 * the names the image got.
 */
export async function pullFromCommand(store: Store, args: RegistryArgs, pull: CommandPull): Promise<PullResult & { names: string[] }> {
  const context = await sourceContext(args);
  const opened = await openSource(pull.target, context);
  const progress = pullProgress(process.stderr, pull.quiet);
  try {
    const result = await pullImage(store, opened.source, opened.reference, {
      platform: pull.platform,
      strictPlatform: pull.strictPlatform,
      maxConcurrentDownloads: pull.maxConcurrentDownloads,
      names: opened.names,
      retry: context.retry,
      onEvent: (event) => progress.onEvent(event),
    });
    progress.stop();
    reportMovedNames(process.stderr, result.moved);
    return { ...result, names: opened.names };
  } finally {
    progress.stop();
    await opened.source.close();
    await context.http.close();
  }
}
