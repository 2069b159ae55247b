import type { Argv } from 'yargs';

export interface RegistryArgs {
  registriesConfig?: string;
}

/**
 * `--registries-config`: mirrors, insecure registries (env LAYERFS_CONFIG). What the option
 * leads to is in ./source-context.ts, so that declaring it (`mount` does) loads no registry code.
 */
export function withRegistryOptions<T>(y: Argv<T>): Argv<T & RegistryArgs> {
  return y.option('registries-config', {
    type: 'string',
    describe: 'registries configuration file: mirrors and insecure registries (default /etc/layerfs/registries.json as root, ~/.config/layerfs/registries.json otherwise; env LAYERFS_CONFIG)',
  }) as Argv<T & RegistryArgs>;
}
