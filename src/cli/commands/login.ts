import type { ArgumentsCamelCase, Argv } from 'yargs';
import { homedir } from 'node:os';
import { removeCredentials, saveCredentials } from '../../config/credentials.js';
import { allowsPlainHttp, endpointsFor } from '../../config/registries.js';
import { UserError } from '../../errors.js';
import { verifyLogin } from '../../registry/login.js';
import { normalizeRegistry } from '../../registry/reference.js';
import { readSecret, readStdin } from '../prompt.js';
import { type RegistryArgs, withRegistryOptions } from '../registry-option.js';
import { sourceContext } from '../source-context.js';
import type { CommandImplementation } from '../lazy-command.js';

interface LoginArgs extends RegistryArgs {
  registry: string;
  username?: string;
  passwordStdin: boolean;
}

/** `layerfs login`: its options and what it does (usage and summary: ./index.ts). */
export const loginCommand: CommandImplementation<LoginArgs> = {
  builder: (y: Argv) =>
    withRegistryOptions(
      y
        .positional('registry', { type: 'string', demandOption: true, describe: 'host[:port], e.g. ghcr.io' })
        .option('username', { alias: 'u', type: 'string' })
        .option('password-stdin', { type: 'boolean', default: false, describe: 'read the password from standard input' }),
    ) as unknown as Argv<LoginArgs>,
  handler: async (args: ArgumentsCamelCase<LoginArgs>) => {
    const registry = registryArgument(args.registry);
    const username = args.username ?? (process.stdin.isTTY && !args.passwordStdin ? await readSecret('Username: ', false) : undefined);
    if (username === undefined || username === '') throw new UserError('a user name is needed: --username NAME', { exitCode: 2 });
    let password: string;
    if (args.passwordStdin) password = (await readStdin()).replace(/\r?\n$/, '');
    else if (process.stdin.isTTY) password = await readSecret('Password: ', true);
    else throw new UserError('no terminal to ask for the password: use --password-stdin', { exitCode: 2 });
    if (password === '') throw new UserError('the password is empty', { exitCode: 2 });

    const context = await sourceContext(args);
    try {
      const upstream = endpointsFor(context.registries, registry).at(-1)!;
      await verifyLogin(context.http, upstream.baseUrl, registry, { username, password }, (host) => allowsPlainHttp(context.registries, host));
    } finally {
      await context.http.close();
    }
    await saveCredentials(registry, { username, password }, { env: process.env, home: homedir() });
    process.stdout.write('Login Succeeded\n');
  },
};

interface LogoutArgs {
  registry: string;
}

/** `layerfs logout`: its options and what it does (usage and summary: ./index.ts). */
export const logoutCommand: CommandImplementation<LogoutArgs> = {
  builder: (y: Argv) => y.positional('registry', { type: 'string', demandOption: true }) as unknown as Argv<LogoutArgs>,
  handler: async (args: ArgumentsCamelCase<LogoutArgs>) => {
    const registry = registryArgument(args.registry);
    const removed = await removeCredentials(registry, { env: process.env, home: homedir() });
    process.stdout.write(removed ? `Removing login credentials for ${registry}\n` : `Not logged in to ${registry}\n`);
  },
};

/** `docker login` also takes a URL: https://host/ is accepted and reduced to the host. */
function registryArgument(input: string): string {
  const host = /^https?:\/\//.test(input) ? new URL(input).host : input.replace(/\/+$/, '');
  const registry = normalizeRegistry(host);
  if (registry === undefined) throw new UserError(`not a registry host: ${JSON.stringify(input)} (expected host[:port])`, { exitCode: 2 });
  return registry;
}
