/**
 * layerfs's registries configuration: mirrors and which registries may be spoken to over plain
 * HTTP. The names follow Docker's daemon.json where it has them, so settings can be copied over.
 *
 * WHERE: the file named on the command line; else `$LAYERFS_CONFIG`; else, for root,
 * `/etc/layerfs/registries.json`, and for other users `$XDG_CONFIG_HOME/layerfs/registries.json`
 * (`~/.config/layerfs/registries.json` when XDG_CONFIG_HOME is unset or not absolute). A missing
 * default file means "no settings"; a missing file named on the command line or by
 * `$LAYERFS_CONFIG` is an error. An empty file is the same as `{}`.
 *
 * FORMAT: one JSON object (no comments); every key is optional and unknown keys are errors, so a
 * typo is not silently ignored:
 *
 *     {
 *       "registry-mirrors": ["https://mirror.example"],
 *       "insecure-registries": ["myhost:5000", "10.0.0.0/8"],
 *       "registries": {
 *         "ghcr.io": { "mirrors": ["https://m1", "http://127.0.0.1:5001/ghcr"], "insecure": false }
 *       }
 *     }
 *
 * - `registry-mirrors` (array of URLs): mirrors of Docker Hub only, as in daemon.json. They are
 *   tried before `registries["docker.io"].mirrors`, if both are given.
 * - `insecure-registries` (array): registries that may be reached over plain HTTP, each
 *   `host[:port]` (matched exactly: `myhost` does not cover `myhost:5000`) or an IP network in CIDR
 *   form (`10.0.0.0/8`, matching registries named by an IP address in it; names are not resolved).
 *   Unlike Docker, which tries HTTPS first and falls back to HTTP for these, layerfs uses plain
 *   HTTP for them directly: one predictable behaviour, no silent downgrade of a working HTTPS.
 * - `registries` (object keyed by registry `host[:port]`; `index.docker.io` means `docker.io`):
 *   - `mirrors` (array of URLs): tried in order before the registry itself, for pulls. A mirror
 *     that fails or lacks the content is skipped; the registry is always asked last.
 *   - `insecure` (boolean, default false): as if listed in `insecure-registries`.
 *
 * Mirror URLs are `http(s)://host[:port][/path-prefix]`; the distribution API is expected under
 * `<url>/v2/`, so a prefix is kept (`https://m/prefix` → `https://m/prefix/v2/...`) and a trailing
 * `/v2` is dropped. They may not carry credentials, a query or a fragment (credentials belong in
 * `layerfs login <mirror host>`). A plain-HTTP mirror is accepted only when its host is loopback or
 * insecure (listed in `insecure-registries` or `registries[host].insecure`).
 *
 * Loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`, any port) always use plain HTTP, as
 * local test registries do; everything else uses HTTPS.
 */
import { promises as fsp } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { isErrno } from '../errors.js';
import { RegistryError } from '../registry/errors.js';
import { DOCKER_HUB, apiHost, isLoopbackRegistry, normalizeRegistry, registryHostname } from '../registry/reference.js';
import { jsonErrorPosition } from './json-text.js';

export interface RegistrySettings {
  /** Mirror base URLs, in order of preference. */
  mirrors: string[];
  insecure: boolean;
}

export interface RegistriesConfig {
  /** The file the settings came from; undefined when there was none. */
  path: string | undefined;
  /** `registry-mirrors`: Docker Hub's mirrors, as base URLs. */
  registryMirrors: string[];
  /** `insecure-registries`: normalised `host[:port]` names and `ip/prefix` networks. */
  insecureRegistries: string[];
  /** `registries`, keyed by normalised registry name. */
  registries: Map<string, RegistrySettings>;
}

/** One place to fetch a registry's content from: a mirror, or the registry itself. */
export interface RegistryEndpoint {
  /** The registry whose content this is (normalised name, e.g. 'docker.io'). */
  registry: string;
  /** 'https://host[:port][/prefix]' or 'http://…', no trailing slash; the API is under `${baseUrl}/v2/`. */
  baseUrl: string;
  mirror: boolean;
  /** How progress output names it: 'mirror https://m1', 'registry docker.io'. */
  label: string;
}

export interface RegistriesConfigOptions {
  /** The file named on the command line, when one was. */
  path?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  uid: number;
  home: string;
}

const SYSTEM_CONFIG = '/etc/layerfs/registries.json';
const TOP_KEYS = ['registry-mirrors', 'insecure-registries', 'registries'];
const REGISTRY_KEYS = ['mirrors', 'insecure'];

/** Settings that change nothing: what a missing default file means. */
export function emptyRegistriesConfig(): RegistriesConfig {
  return { path: undefined, registryMirrors: [], insecureRegistries: [], registries: new Map() };
}

/** Which file to read, and who named it (a missing file is only an error when someone did). */
export function registriesConfigPath(opts: RegistriesConfigOptions): { path: string; namedBy?: 'command line' | 'LAYERFS_CONFIG' } {
  if (opts.path) return { path: opts.path, namedBy: 'command line' };
  if (opts.env.LAYERFS_CONFIG) return { path: opts.env.LAYERFS_CONFIG, namedBy: 'LAYERFS_CONFIG' };
  if (opts.uid === 0) return { path: SYSTEM_CONFIG };
  const xdg = opts.env.XDG_CONFIG_HOME;
  // The XDG spec says relative values are invalid and must be ignored.
  const configHome = xdg && isAbsolute(xdg) ? xdg : join(opts.home, '.config');
  return { path: join(configHome, 'layerfs', 'registries.json') };
}

export async function loadRegistriesConfig(opts: RegistriesConfigOptions): Promise<RegistriesConfig> {
  const { path, namedBy } = registriesConfigPath(opts);
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT') && namedBy === undefined) return emptyRegistriesConfig();
    if (isErrno(err, 'ENOENT')) {
      const by = namedBy === 'command line' ? 'on the command line' : `by ${namedBy}`;
      throw configError(`registries config file ${path} (named ${by}) does not exist`);
    }
    throw configError(`cannot read registries config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
  }
  if (text.trim() === '') return { ...emptyRegistriesConfig(), path };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw configError(`registries config file ${path} is not valid JSON${jsonErrorPosition(text, err)}`);
  }
  return parseRegistriesConfig(value, path);
}

/** Validates and normalises the file's parsed content; `path` names the file in errors. */
export function parseRegistriesConfig(value: unknown, path: string): RegistriesConfig {
  const bad = (why: string) => configError(`invalid registries config ${path}: ${why}`);
  if (!isObject(value)) throw bad('expected a JSON object at the top level');
  checkKeys(value, TOP_KEYS, '', bad);
  const config: RegistriesConfig = { path, registryMirrors: [], insecureRegistries: [], registries: new Map() };

  // Insecure hosts first: whether an http:// mirror is allowed depends on them.
  config.insecureRegistries = stringArray(value['insecure-registries'], 'insecure-registries', bad).map((entry, i) =>
    parseInsecureEntry(entry, `insecure-registries[${i}]`, bad),
  );
  const rawMirrors = new Map<string, unknown>();
  const registries = value.registries;
  if (registries !== undefined) {
    if (!isObject(registries)) throw bad('"registries" must be an object keyed by registry host[:port]');
    for (const [name, settings] of Object.entries(registries)) {
      const where = `registries[${JSON.stringify(name)}]`;
      const registry = normalizeRegistry(name);
      if (registry === undefined) throw bad(`${where}: a registry is named by host[:port], without scheme or path, e.g. "ghcr.io" or "myhost:5000"`);
      if (config.registries.has(registry)) throw bad(`${where}: ${registry} is configured twice`);
      if (!isObject(settings)) throw bad(`${where} must be an object`);
      checkKeys(settings, REGISTRY_KEYS, where, bad);
      const insecure = settings.insecure ?? false;
      if (typeof insecure !== 'boolean') throw bad(`${where}.insecure must be true or false`);
      config.registries.set(registry, { mirrors: [], insecure });
      rawMirrors.set(registry, settings.mirrors);
    }
  }
  config.registryMirrors = stringArray(value['registry-mirrors'], 'registry-mirrors', bad).map((url, i) =>
    parseMirrorUrl(url, `registry-mirrors[${i}]`, config, bad),
  );
  for (const [registry, mirrors] of rawMirrors) {
    const where = `registries[${JSON.stringify(registry)}].mirrors`;
    config.registries.get(registry)!.mirrors = stringArray(mirrors, where, bad).map((url, i) => parseMirrorUrl(url, `${where}[${i}]`, config, bad));
  }
  return config;
}

/**
 * Where to fetch `registry`'s content from: its mirrors in order (for docker.io `registry-mirrors`
 * first), then the registry itself, over HTTPS unless plain HTTP is allowed for it.
 */
export function endpointsFor(config: RegistriesConfig, registry: string): RegistryEndpoint[] {
  const name = normalizeRegistry(registry) ?? registry;
  const mirrors = [...(name === DOCKER_HUB ? config.registryMirrors : []), ...(config.registries.get(name)?.mirrors ?? [])];
  const endpoints: RegistryEndpoint[] = [...new Set(mirrors)].map((baseUrl) => ({ registry: name, baseUrl, mirror: true, label: `mirror ${baseUrl}` }));
  const host = apiHost(name);
  const scheme = allowsPlainHttp(config, name) ? 'http' : 'https';
  endpoints.push({ registry: name, baseUrl: `${scheme}://${host}`, mirror: false, label: `registry ${name}` });
  return endpoints;
}

/**
 * Whether plain HTTP may be used with `registry` (any `host[:port]`: a registry, a mirror's host,
 * a token server's): loopback hosts, and hosts made insecure by the configuration.
 */
export function allowsPlainHttp(config: RegistriesConfig, registry: string): boolean {
  if (isLoopbackRegistry(registry)) return true;
  const name = normalizeRegistry(registry);
  if (name === undefined) return false;
  if (config.registries.get(name)?.insecure === true) return true;
  if (config.insecureRegistries.includes(name)) return true;
  return inInsecureNetwork(config, registryHostname(name));
}

function inInsecureNetwork(config: RegistriesConfig, host: string): boolean {
  const family = isIP(host);
  if (family === 0) return false;
  const networks = new BlockList();
  let any = false;
  for (const entry of config.insecureRegistries) {
    const [address, prefix] = entry.split('/');
    if (prefix === undefined) continue;
    const entryFamily = isIP(address!) === 4 ? 'ipv4' : 'ipv6';
    networks.addSubnet(address!, Number(prefix), entryFamily);
    any = true;
  }
  return any && networks.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

/** `host[:port]` (normalised) or `ip/prefix`. */
function parseInsecureEntry(entry: string, where: string, bad: (why: string) => RegistryError): string {
  if (entry.includes('://')) throw bad(`${where} must be host[:port] without a scheme, e.g. "myhost:5000"`);
  const slash = entry.indexOf('/');
  if (slash !== -1) {
    const address = entry.slice(0, slash);
    const prefix = entry.slice(slash + 1);
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    if (family === 0 || !/^[0-9]{1,3}$/.test(prefix) || Number(prefix) > max) {
      throw bad(`${where} must be host[:port] or an IP network such as "10.0.0.0/8"`);
    }
    return `${address.toLowerCase()}/${Number(prefix)}`;
  }
  const name = normalizeRegistry(entry);
  if (name === undefined) throw bad(`${where} must be host[:port] or an IP network such as "10.0.0.0/8"`);
  return name;
}

/**
 * A mirror's base URL: scheme, host, port and path prefix, without a trailing slash or `/v2`.
 * The URL itself is never quoted in errors: it might carry a password.
 */
function parseMirrorUrl(value: string, where: string, config: RegistriesConfig, bad: (why: string) => RegistryError): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad(`${where} is not a URL (expected e.g. "https://mirror.example")`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw bad(`${where} must be an https:// or http:// URL`);
  if (url.username !== '' || url.password !== '') {
    throw bad(`${where} must not contain credentials; use \`layerfs login ${url.host}\``);
  }
  if (url.search !== '' || url.hash !== '') throw bad(`${where} must not have a query or fragment`);
  const prefix = url.pathname.replace(/\/+$/, '').replace(/\/v2$/, '');
  const baseUrl = `${url.protocol}//${url.host}${prefix}`;
  if (url.protocol === 'http:' && !allowsPlainHttp(config, url.host)) {
    throw bad(
      `${where}: plain HTTP mirror ${baseUrl} is only allowed for loopback or insecure hosts; use https, or add "${url.host}" to "insecure-registries"`,
    );
  }
  return baseUrl;
}

function stringArray(value: unknown, where: string, bad: (why: string) => RegistryError): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw bad(`${where} must be an array of strings`);
  return value.map((item, i) => {
    if (typeof item !== 'string') throw bad(`${where}[${i}] must be a string`);
    return item;
  });
}

function checkKeys(value: Record<string, unknown>, known: string[], where: string, bad: (why: string) => RegistryError): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      const place = where === '' ? '' : ` in ${where}`;
      throw bad(`unknown key ${JSON.stringify(key)}${place} (known keys: ${known.join(', ')})`);
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function configError(message: string, cause?: unknown): RegistryError {
  return new RegistryError('ERR_CONFIG', message, cause === undefined ? {} : { cause });
}
