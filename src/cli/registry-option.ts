import { homedir } from 'node:os';
import type { Argv } from 'yargs';
import { loadRegistriesConfig } from '../config/registries.js';
import { HttpTransport } from '../registry/http.js';
import type { SourceContext } from '../source/open.js';

export interface RegistryArgs {
  registriesConfig?: string;
}

/** `--registries-config`: mirrors, insecure registries (env LAYERFS_CONFIG). */
export function withRegistryOptions<T>(y: Argv<T>): Argv<T & RegistryArgs> {
  return y.option('registries-config', {
    type: 'string',
    describe: 'registries configuration file: mirrors and insecure registries (default /etc/layerfs/registries.json as root, ~/.config/layerfs/registries.json otherwise; env LAYERFS_CONFIG)',
  }) as Argv<T & RegistryArgs>;
}

/** Everything opening a source needs, from the process's environment and options. */
export async function sourceContext(args: RegistryArgs): Promise<SourceContext> {
  const registries = await loadRegistriesConfig({ path: args.registriesConfig, env: process.env, uid: process.getuid?.() ?? 0, home: homedir() });
  return { http: new HttpTransport(), registries, env: process.env, home: homedir() };
}
