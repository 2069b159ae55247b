/**
 * Registry authentication: the `WWW-Authenticate` challenge (Bearer or Basic) decides the scheme.
 * Bearer tokens come from the challenge's realm, anonymously or with the user's credentials, and
 * are cached per scope until shortly before they expire; a 401 on a cached token drops it and asks
 * once more. Nothing here ever puts a secret into a message or a log line.
 */
import { log } from '../log.js';
import { RegistryError } from './errors.js';
import { type HttpTransport, discard, header, readCapped, redact } from './http.js';

export type AuthCredentials = { username: string; password: string } | { identityToken: string; username?: string };

export type CredentialsProvider = () => Promise<AuthCredentials | undefined>;

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const TOKEN_RESPONSE_LIMIT = 1024 * 1024;
/** What Docker assumes when the token server does not say. */
const DEFAULT_TOKEN_LIFETIME_S = 60;

interface CachedToken {
  header: string;
  expiresAt: number;
}

export class Authenticator {
  readonly #http: HttpTransport;
  readonly #registry: string;
  readonly #credentials: CredentialsProvider;
  readonly #allowPlainHttp: (host: string) => boolean;
  readonly #tokens = new Map<string, CachedToken>();
  #basic: string | undefined;
  #loaded: Promise<AuthCredentials | undefined> | undefined;

  constructor(http: HttpTransport, registry: string, credentials: CredentialsProvider, allowPlainHttp: (host: string) => boolean) {
    this.#http = http;
    this.#registry = registry;
    this.#credentials = credentials;
    this.#allowPlainHttp = allowPlainHttp;
  }

  /** The Authorization header known to work for `scope`, if any. */
  headerFor(scope: string): string | undefined {
    if (this.#basic !== undefined) return this.#basic;
    const token = this.#tokens.get(scope);
    if (token === undefined) return undefined;
    if (Date.now() >= token.expiresAt) {
      this.#tokens.delete(scope);
      return undefined;
    }
    return token.header;
  }

  /** Forgets what was sent for `scope` (it was refused). */
  invalidate(scope: string): void {
    this.#tokens.delete(scope);
  }

  /**
   * Answers a 401: returns the Authorization header to retry with. `scopes` are the scopes the
   * request needs (a cross-repository mount needs two); the first one keys the cache.
   */
  async respond(wwwAuthenticate: string | undefined, scopes: string[]): Promise<string> {
    const challenges = parseChallenges(wwwAuthenticate ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    const credentials = await this.#loadCredentials();
    if (bearer !== undefined) {
      const token = await this.#fetchToken(bearer, scopes, credentials);
      this.#tokens.set(scopes[0] ?? '', token);
      return token.header;
    }
    if (basic !== undefined) {
      if (credentials === undefined || !('password' in credentials)) {
        throw this.#authError(`${this.#registry} requires a user name and password; run \`layerfs login ${this.#registry}\``);
      }
      this.#basic = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
      return this.#basic;
    }
    throw this.#authError(`${this.#registry} asks for authentication with an unsupported scheme (${challenges.map((c) => c.scheme).join(', ') || 'none given'})`);
  }

  /** Whether credentials were configured for this registry (for error messages). */
  async hasCredentials(): Promise<boolean> {
    return (await this.#loadCredentials()) !== undefined;
  }

  #loadCredentials(): Promise<AuthCredentials | undefined> {
    this.#loaded ??= this.#credentials();
    return this.#loaded;
  }

  async #fetchToken(challenge: Challenge, scopes: string[], credentials: AuthCredentials | undefined): Promise<CachedToken> {
    const realm = challenge.params.realm;
    if (realm === undefined) throw this.#authError(`${this.#registry} sent a Bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw this.#authError(`${this.#registry} sent a Bearer challenge with an invalid realm`);
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && this.#allowPlainHttp(url.host))) {
      throw new RegistryError('ERR_REGISTRY_INSECURE', `the token server of ${this.#registry} (${redact(realm)}) is not https; refusing to send credentials there`);
    }
    const service = challenge.params.service;
    const wanted = scopes.length > 0 ? scopes : challenge.params.scope === undefined ? [] : [challenge.params.scope];
    const started = Date.now();
    const response =
      credentials !== undefined && 'identityToken' in credentials
        ? await this.#http.send({
            method: 'POST',
            url: url.href,
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: Buffer.from(
              new URLSearchParams({
                grant_type: 'refresh_token',
                refresh_token: credentials.identityToken,
                client_id: 'layerfs',
                ...(service === undefined ? {} : { service }),
                scope: wanted.join(' '),
              }).toString(),
            ),
          })
        : await this.#http.send({
            method: 'GET',
            url: tokenUrl(url, service, wanted).href,
            headers: credentials === undefined ? {} : { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` },
          });
    if (response.status === 401 || response.status === 403) {
      await discard(response);
      throw this.#authError(
        credentials === undefined
          ? `${this.#registry} refused anonymous access to ${wanted.join(' ') || 'the registry'}; run \`layerfs login ${this.#registry}\``
          : `${this.#registry} refused the stored credentials (token server answered ${response.status}); check them with \`layerfs login ${this.#registry}\``,
        response.status,
      );
    }
    if (response.status !== 200) {
      await discard(response);
      throw new RegistryError('ERR_REGISTRY_AUTH', `token server of ${this.#registry} answered HTTP ${response.status}`, {
        status: response.status,
        temporary: response.status === 429 || response.status >= 500,
      });
    }
    const body = await readCapped(response, TOKEN_RESPONSE_LIMIT, 'token response');
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      throw this.#authError(`the token server of ${this.#registry} sent something that is not JSON`);
    }
    const token = typeof parsed.token === 'string' ? parsed.token : typeof parsed.access_token === 'string' ? parsed.access_token : undefined;
    if (token === undefined || token === '') throw this.#authError(`the token server of ${this.#registry} sent no token`);
    const lifetime = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_TOKEN_LIFETIME_S;
    log.debug('registry token obtained', { registry: this.#registry, scopes: wanted, lifetime });
    // Renewed a little early so a request never leaves with a token about to expire.
    return { header: `Bearer ${token}`, expiresAt: started + lifetime * 900 };
  }

  #authError(message: string, status = 401): RegistryError {
    return new RegistryError('ERR_REGISTRY_AUTH', message, { status });
  }
}

function tokenUrl(realm: URL, service: string | undefined, scopes: string[]): URL {
  const url = new URL(realm.href);
  if (service !== undefined) url.searchParams.set('service', service);
  for (const scope of scopes) url.searchParams.append('scope', scope);
  return url;
}

/** The scope a request on `repository` needs, in the token protocol's words. */
export function repositoryScope(repository: string, actions: 'pull' | 'pull,push'): string {
  return `repository:${repository}:${actions}`;
}

/**
 * Parses `WWW-Authenticate` (RFC 7235): several challenges, each a scheme and comma-separated
 * `key=value` or `key="quoted value"` parameters. Scheme names are returned in lower case.
 */
export function parseChallenges(value: string): Challenge[] {
  const challenges: Challenge[] = [];
  let current: Challenge | undefined;
  let i = 0;
  const skipSpaceAndCommas = () => {
    while (i < value.length && (value[i] === ' ' || value[i] === ',' || value[i] === '\t')) i++;
  };
  while (i < value.length) {
    skipSpaceAndCommas();
    const tokenMatch = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/.exec(value.slice(i));
    if (tokenMatch === null) break;
    const token = tokenMatch[0];
    i += token.length;
    while (value[i] === ' ') i++;
    if (value[i] === '=') {
      // A parameter of the current challenge.
      i++;
      while (value[i] === ' ') i++;
      let paramValue = '';
      if (value[i] === '"') {
        i++;
        while (i < value.length && value[i] !== '"') {
          if (value[i] === '\\' && i + 1 < value.length) i++;
          paramValue += value[i];
          i++;
        }
        i++;
      } else {
        const raw = /^[^,\s]*/.exec(value.slice(i))![0];
        paramValue = raw;
        i += raw.length;
      }
      if (current !== undefined) current.params[token.toLowerCase()] = paramValue;
    } else {
      current = { scheme: token.toLowerCase(), params: {} };
      challenges.push(current);
    }
  }
  return challenges;
}

/** The challenge header of a 401 response. */
export function challengeOf(headers: Record<string, string | string[] | undefined>): string | undefined {
  const values = headers['www-authenticate'];
  return Array.isArray(values) ? values.join(', ') : header(headers, 'www-authenticate');
}
