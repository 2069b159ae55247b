/**
 * Registry credentials where Docker and Podman keep them, so `docker login` / `podman login`
 * work for layerfs too, and `layerfs login` works for them:
 *
 * 1. the Docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
 *    `credHelpers[registry]` (a `docker-credential-<name>` program), then `auths[key]`, then the
 *    default helper `credsStore`;
 * 2. Podman's auth files, `auths` only: `$REGISTRY_AUTH_FILE` if set, else
 *    `$XDG_RUNTIME_DIR/containers/auth.json` and `$XDG_CONFIG_HOME/containers/auth.json`
 *    (~/.config), the places `podman login` writes to.
 *
 * Docker Hub's key is `https://index.docker.io/v1/` (what `docker login` writes); keys written as
 * `https://host`, `http://host` or `host/v2/` name the same registry. Keys with a repository path
 * (Podman's per-namespace credentials, `quay.io/org`) are not used: they are not for the whole
 * registry.
 *
 * Secrets never go into messages: errors name the file, the JSON path or the helper, never a
 * value, and a helper's output is scrubbed of anything we sent it.
 *
 * Nothing here reads process.env or os.homedir(): the caller passes them, so tests (and a CLI
 * running under sudo) decide where the files are.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { isErrno } from '../errors.js';
import { RegistryError } from '../registry/errors.js';
import { DOCKER_HUB, normalizeRegistry } from '../registry/reference.js';
import { jsonErrorPosition } from './json-text.js';

export interface PasswordCredentials {
  username: string;
  password: string;
  /** Where they came from, for messages: a file path or a helper program's name. */
  from: string;
}

/** An OAuth2 refresh token (`identitytoken`, or a helper's `<token>` user), sent to the token server. */
export interface TokenCredentials {
  identityToken: string;
  username?: string;
  from: string;
}

export type Credentials = PasswordCredentials | TokenCredentials;

/** Environment variables, as `process.env` has them. */
export type Env = Readonly<Record<string, string | undefined>>;

export interface CredentialOptions {
  env: Env;
  /** The user's home directory. */
  home: string;
  /** How long a credential helper may take (default 30 s); a helper may wait for a keyring unlock. */
  helperTimeoutMs?: number;
}

/** What `docker login` calls Docker Hub in config.json and sends to helpers. */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const HELPER_PREFIX = 'docker-credential-';
const HELPER_TIMEOUT_MS = 30_000;
/** Helpers answer with a small JSON object; more than this is not a helper talking. */
const HELPER_OUTPUT_MAX = 1 << 20;
/** How a helper says it has nothing (docker-credential-helpers' errCredentialsNotFoundMessage). */
const NOT_FOUND = /credentials not found/i;
/** The user name by which helpers mark a Secret as an identity token. */
const TOKEN_USER = '<token>';

export function dockerConfigPath(env: Env, home: string): string {
  const dir = env.DOCKER_CONFIG;
  return dir ? join(dir, 'config.json') : join(home, '.docker', 'config.json');
}

/** The auths key and helper ServerURL for a registry: Docker Hub keeps its historical URL. */
export function credentialKey(registry: string): string {
  const normalized = registryOfKey(registry) ?? registry;
  return normalized === DOCKER_HUB ? DOCKER_HUB_KEY : normalized;
}

/** The credentials for `registry` (a normalised name such as 'docker.io' or 'localhost:5000'), if any. */
export async function lookupCredentials(registry: string, opts: CredentialOptions): Promise<Credentials | undefined> {
  const target = registryOfKey(registry) ?? registry;
  const path = dockerConfigPath(opts.env, opts.home);
  const config = await readConfigFile(path, 'docker config file');
  if (config !== undefined) {
    const helper = configuredHelper(config, target, path);
    if (helper?.kind === 'credHelpers') {
      const found = await helperGet(helper.name, target, opts);
      if (found !== undefined) return found;
    }
    const entry = findAuthEntry(config, target, path);
    if (entry !== undefined) return entry;
    if (helper?.kind === 'credsStore') {
      const found = await helperGet(helper.name, target, opts);
      if (found !== undefined) return found;
    }
  }
  for (const authFile of podmanAuthFiles(opts.env, opts.home)) {
    const auth = await readConfigFile(authFile, 'auth file');
    const entry = auth === undefined ? undefined : findAuthEntry(auth, target, authFile);
    if (entry !== undefined) return entry;
  }
  return undefined;
}

/**
 * Stores a user name and password for `registry` (login): through the credential helper that
 * applies to it, else as `auths[key].auth` in the Docker config, written atomically with mode
 * 0600 and every other key kept.
 */
export async function saveCredentials(
  registry: string,
  credentials: { username: string; password: string },
  opts: CredentialOptions,
): Promise<void> {
  const target = registryOfKey(registry) ?? registry;
  const { username, password } = credentials;
  // The stored form is base64("user:password"), split at the first ':' when read back.
  if (username.includes(':')) throw credentialsError(`user names containing ':' cannot be stored`);
  if (username === '' || password === '') throw credentialsError('both a user name and a password are needed');
  const path = dockerConfigPath(opts.env, opts.home);
  const config = (await readConfigFile(path, 'docker config file')) ?? {};
  const helper = configuredHelper(config, target, path);
  if (helper !== undefined) {
    const input = JSON.stringify({ ServerURL: credentialKey(target), Username: username, Secret: password });
    const result = await runHelper(helper.name, 'store', input, opts);
    if (result.code !== 0) throw helperFailed(helper.name, 'store', result, [password, input]);
    return;
  }
  const auths = objectAt(config, 'auths', path) ?? {};
  for (const key of matchingKeys(auths, target)) delete auths[key];
  auths[credentialKey(target)] = { auth: Buffer.from(`${username}:${password}`).toString('base64') };
  config.auths = auths;
  await writeConfigFile(path, config);
}

/**
 * Forgets the credentials for `registry` (logout): erases them from the helper that applies and
 * removes its `auths` entries (every spelling of its key). True when something was removed.
 */
export async function removeCredentials(registry: string, opts: CredentialOptions): Promise<boolean> {
  const target = registryOfKey(registry) ?? registry;
  const path = dockerConfigPath(opts.env, opts.home);
  const config = await readConfigFile(path, 'docker config file');
  if (config === undefined) return false;
  let removed = false;
  const helper = configuredHelper(config, target, path);
  if (helper !== undefined) {
    const result = await runHelper(helper.name, 'erase', credentialKey(target), opts);
    if (result.code === 0) removed = true;
    else if (!NOT_FOUND.test(result.stdout + result.stderr)) throw helperFailed(helper.name, 'erase', result, []);
  }
  const auths = objectAt(config, 'auths', path);
  const keys = auths === undefined ? [] : matchingKeys(auths, target);
  if (auths !== undefined && keys.length > 0) {
    for (const key of keys) delete auths[key];
    await writeConfigFile(path, config);
    removed = true;
  }
  return removed;
}

type JsonObject = Record<string, unknown>;

function podmanAuthFiles(env: Env, home: string): string[] {
  if (env.REGISTRY_AUTH_FILE) return [env.REGISTRY_AUTH_FILE];
  const files: string[] = [];
  if (env.XDG_RUNTIME_DIR && isAbsolute(env.XDG_RUNTIME_DIR)) files.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  const configHome = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(home, '.config');
  files.push(join(configHome, 'containers', 'auth.json'));
  return files;
}

/**
 * The registry an auths key or helper URL names ('https://index.docker.io/v1/' → 'docker.io'),
 * or undefined for keys with a repository path or that are not a host at all.
 */
function registryOfKey(key: string): string | undefined {
  const rest = key.replace(/^https?:\/\//i, '');
  const slash = rest.indexOf('/');
  const host = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (!/^(?:\/(?:v1|v2)?)?\/?$/.test(path)) return undefined;
  return normalizeRegistry(host);
}

/** Keys of `auths` that name `registry`; the canonical key first, as Docker looks it up first. */
function matchingKeys(auths: JsonObject, registry: string): string[] {
  const canonical = credentialKey(registry);
  const keys = Object.keys(auths).filter((key) => key !== canonical && registryOfKey(key) === registry);
  return Object.hasOwn(auths, canonical) ? [canonical, ...keys] : keys;
}

function findAuthEntry(config: JsonObject, registry: string, path: string): Credentials | undefined {
  const auths = objectAt(config, 'auths', path);
  if (auths === undefined) return undefined;
  for (const key of matchingKeys(auths, registry)) {
    const found = parseAuthEntry(auths[key], `auths[${JSON.stringify(key)}]`, path);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * One `auths` entry: `identitytoken`, else `auth` (base64 of user:password), else plain
 * `username`/`password`. An empty entry (what Docker writes next to a credsStore) gives nothing.
 */
function parseAuthEntry(entry: unknown, where: string, path: string): Credentials | undefined {
  if (!isObject(entry)) throw fileError(path, `${where} must be an object`);
  const field = (name: string): string | undefined => {
    const value = entry[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') throw fileError(path, `${where}.${name} must be a string`);
    return value === '' ? undefined : value;
  };
  const token = field('identitytoken');
  const auth = field('auth');
  let username = field('username');
  let password = field('password');
  if (auth !== undefined) [username, password] = decodeAuth(auth, `${where}.auth`, path);
  if (token !== undefined) return username === undefined ? { identityToken: token, from: path } : { identityToken: token, username, from: path };
  if (username !== undefined && password !== undefined) return { username, password, from: path };
  return undefined;
}

function decodeAuth(auth: string, where: string, path: string): [string, string] {
  const problem = fileError(path, `${where} is not the base64 encoding of "user:password"`);
  if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(auth)) throw problem;
  const decoded = Buffer.from(auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) throw problem;
  return [decoded.slice(0, colon), decoded.slice(colon + 1)];
}

/** The helper that applies to `registry`: its own `credHelpers` entry, else the default `credsStore`. */
function configuredHelper(
  config: JsonObject,
  registry: string,
  path: string,
): { kind: 'credHelpers' | 'credsStore'; name: string } | undefined {
  const helpers = objectAt(config, 'credHelpers', path);
  if (helpers !== undefined) {
    const key = matchingKeys(helpers, registry)[0];
    if (key !== undefined) return { kind: 'credHelpers', name: helperName(helpers[key], `credHelpers[${JSON.stringify(key)}]`, path) };
  }
  const store = config.credsStore;
  if (store === undefined || store === '') return undefined;
  return { kind: 'credsStore', name: helperName(store, 'credsStore', path) };
}

function helperName(value: unknown, where: string, path: string): string {
  // The name becomes part of a program name looked up in PATH: no directories, no options.
  if (typeof value !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value)) {
    throw fileError(path, `${where} must be a credential helper name such as "pass" or "secretservice"`);
  }
  return value;
}

async function helperGet(name: string, registry: string, opts: CredentialOptions): Promise<Credentials | undefined> {
  const result = await runHelper(name, 'get', credentialKey(registry), opts);
  if (result.code !== 0) {
    if (NOT_FOUND.test(result.stdout + result.stderr)) return undefined;
    throw helperFailed(name, 'get', result, []);
  }
  let reply: unknown;
  try {
    reply = JSON.parse(result.stdout);
  } catch {
    // Not even a snippet of the output: it may be a secret that failed to parse.
    throw credentialsError(`credential helper ${HELPER_PREFIX}${name} returned output that is not JSON`);
  }
  const username = isObject(reply) ? reply.Username : undefined;
  const secret = isObject(reply) ? reply.Secret : undefined;
  if (typeof secret !== 'string' || (username !== undefined && typeof username !== 'string')) {
    throw credentialsError(`credential helper ${HELPER_PREFIX}${name} returned JSON without a "Secret" string`);
  }
  // Some helpers answer "nothing" with success and empty fields rather than an error.
  if (secret === '') return undefined;
  const from = `${HELPER_PREFIX}${name}`;
  if (username === TOKEN_USER) return { identityToken: secret, from };
  return { username: username ?? '', password: secret, from };
}

interface HelperResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `docker-credential-<name> <action>` with `input` on stdin, found in the PATH of `opts.env`
 * and run with that environment (helpers such as `pass` need GNUPGHOME, DBUS_SESSION_BUS_ADDRESS…).
 * Output is captured, never passed through: it may hold secrets.
 */
function runHelper(name: string, action: 'get' | 'store' | 'erase', input: string, opts: CredentialOptions): Promise<HelperResult> {
  const program = `${HELPER_PREFIX}${name}`;
  const timeoutMs = opts.helperTimeoutMs ?? HELPER_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(program, [action], { env: { ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size > HELPER_OUTPUT_MAX) {
        child.kill('SIGKILL');
        settle(() => reject(credentialsError(`credential helper ${program} wrote more output than a credential`)));
      } else into.push(chunk);
    };
    // Settled without waiting for 'close': a killed helper's own children may keep the pipes open.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      child.stdout.destroy();
      child.stderr.destroy();
      settle(() => reject(credentialsError(`credential helper ${program} did not answer within ${timeoutMs / 1000} s`)));
    }, timeoutMs);
    child.stdout.on('data', collect(out));
    child.stderr.on('data', collect(err));
    child.on('error', (e) =>
      settle(() =>
        reject(
          isErrno(e, 'ENOENT')
            ? credentialsError(`credential helper ${program} not found in PATH`)
            : credentialsError(`credential helper ${program} could not be run: ${(e as NodeJS.ErrnoException).code ?? e.message}`),
        ),
      ),
    );
    child.on('close', (code, signal) =>
      settle(() => resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') })),
    );
    // A helper that exits without reading stdin makes this write fail with EPIPE; its exit status tells.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/**
 * A helper's failure, with the first line of what it said (helpers print their errors on
 * stdout) minus anything we sent it, so a helper echoing its input cannot leak a password.
 */
function helperFailed(name: string, action: string, result: HelperResult, secrets: string[]): RegistryError {
  const status = result.signal !== null ? `killed by ${result.signal}` : `exit status ${result.code}`;
  const said = firstLine(result.stdout) || firstLine(result.stderr);
  const scrubbed = scrub(said, secrets);
  const detail = scrubbed === '' ? '' : `: ${scrubbed}`;
  return credentialsError(`credential helper ${HELPER_PREFIX}${name} ${action} failed (${status})${detail}`);
}

function firstLine(text: string): string {
  const line = text.trim().split('\n', 1)[0]?.trim() ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** `text` with every secret, and its base64 and JSON-escaped forms, replaced. */
function scrub(text: string, secrets: string[]): string {
  let result = text;
  for (const secret of secrets) {
    if (secret === '') continue;
    for (const form of [secret, JSON.stringify(secret).slice(1, -1), Buffer.from(secret).toString('base64')]) {
      result = result.split(form).join('***');
    }
  }
  // A secret cut short by the 200-character limit still leaks its start: drop the line then.
  return secrets.some((s) => s.length > 3 && result.includes(s.slice(0, 4))) ? '' : result;
}

/** A JSON object from `path`, or undefined when there is no such file. */
async function readConfigFile(path: string, what: string): Promise<JsonObject | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined;
    throw credentialsError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
  }
  if (text.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // JSON.parse's message can quote the text around the error, which may be a secret: give the position only.
    throw credentialsError(`${what} ${path} is not valid JSON${jsonErrorPosition(text, err)}`);
  }
  if (!isObject(value)) throw credentialsError(`${what} ${path} must hold a JSON object`);
  return value;
}

/** The JSON object at `config[key]`, or undefined when absent; anything else is an error naming the file. */
function objectAt(config: JsonObject, key: string, path: string): JsonObject | undefined {
  const value = config[key];
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw fileError(path, `"${key}" must be an object`);
  return value;
}

/**
 * Replaces the file atomically (a temp file in the same directory, renamed over it), so a reader
 * or a crash never sees half a config. A symlinked config.json (dotfile managers) is followed and
 * the link kept. Created directories are 0700 and the file 0600: it holds passwords.
 */
async function writeConfigFile(path: string, config: JsonObject): Promise<void> {
  const target = await fsp.realpath(path).catch(() => path);
  const dir = dirname(target);
  const temp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    await fsp.writeFile(temp, `${JSON.stringify(config, null, '\t')}\n`, { mode: 0o600, flush: true });
    await fsp.rename(temp, target);
  } catch (err) {
    await fsp.rm(temp, { force: true }).catch(() => undefined);
    throw credentialsError(`cannot write docker config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fileError(path: string, why: string): RegistryError {
  return credentialsError(`invalid credentials file ${path}: ${why}`);
}

function credentialsError(message: string, cause?: unknown): RegistryError {
  return new RegistryError('ERR_CREDENTIALS', message, cause === undefined ? {} : { cause });
}
