import { homedir } from 'node:os';
import { loadRegistriesConfig } from '../config/registries.js';
import { HttpTransport } from '../registry/http.js';
import type { SourceContext } from '../source/open.js';
import type { RegistryArgs } from './registry-option.js';

/** Everything opening a source needs, from the process's environment and options. */
export async function sourceContext(args: RegistryArgs): Promise<SourceContext> {
  const registries = await loadRegistriesConfig({ path: args.registriesConfig, env: process.env, uid: process.getuid?.() ?? 0, home: homedir() });
  return { http: new HttpTransport(), registries, env: process.env, home: homedir() };
}
