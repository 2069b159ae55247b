import type { Argv } from 'yargs';

export interface RegistryArgs {
  registriesConfig?: string;
  retry?: number;
  stallTimeout?: number;
}

/**
 * `--registries-config` (mirrors, insecure registries; env LAYERFS_CONFIG), `--retry` and
 * `--stall-timeout`. What the options lead to is in ./source-context.ts, so that declaring them
 * (`mount` does) loads no registry code.
 */
export function withRegistryOptions<T>(y: Argv<T>): Argv<T & RegistryArgs> {
  return y
    .option('registries-config', {
      type: 'string',
      describe: 'registries configuration file: mirrors and insecure registries (default /etc/layerfs/registries.json as root, ~/.config/layerfs/registries.json otherwise; env LAYERFS_CONFIG)',
    })
    .option('retry', {
      type: 'number',
      describe: 'times a request or download that failed for a passing reason (network, timeout, 429, 5xx) is tried again, with backoff (default 4; mirrors are tried once)',
    })
    .option('stall-timeout', {
      type: 'number',
      describe: 'seconds a connection may go without a byte before it counts as failed (default 30)',
    }) as Argv<T & RegistryArgs>;
}
