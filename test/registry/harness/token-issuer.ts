// A small token server for the Docker registry token protocol (Bearer auth), the way Docker Hub's
// auth.docker.io answers: GET /token?service=S&scope=repository:NAME:pull,push (scope repeated or
// space separated), optional Basic credentials.
//
//   - wrong or unknown credentials: 401;
//   - anonymous: only `pull` on repositories whose name starts with `public/` (anything else asked
//     for is silently left out of the token, as real issuers do; the registry then answers 401
//     insufficient_scope);
//   - authenticated: whatever was asked for.
//
// Tokens are ES256 JWTs that distribution's token auth (2.8 and 3.x) accepts: the header carries
// the signing certificate in `x5c`, verified against the registry's `rootcertbundle` (the same
// self-signed certificate); claims iss = issuer, aud = service (a string: 2.8 cannot parse an
// array), nbf/exp, and `access`. The registry allows 60 s of clock skew on nbf and exp, so a
// token that should be rejected by the registry needs `lifetime` below -60 (see TokenSettings).
//
// Every request is recorded, so tests can assert that a client caches tokens per scope.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, type KeyObject, randomUUID, sign, X509Certificate } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';

export interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenRequest {
  method: string;
  service: string | undefined;
  /** The scopes asked for, as sent (`repository:name:pull,push`). */
  scopes: string[];
  /** Whether an Authorization header came with the request. */
  credentials: boolean;
  /** The authenticated user, when the credentials were right. */
  user: string | undefined;
  status: number;
  /** What the issued token grants (empty when refused). */
  granted: TokenAccess[];
}

export interface TokenSettings {
  /** `expires_in` of the response, in seconds. Default 300. */
  expiresIn: number;
  /**
   * Seconds from now to the token's `exp` claim. Defaults to `expiresIn`. Make it lower than -60
   * to issue tokens the registry rejects at once (it allows 60 s of skew) while the response
   * still says they are valid for `expiresIn`.
   */
  lifetime: number | undefined;
  /** Which response fields carry the token. Default 'both' (`token` and `access_token`). */
  fields: 'both' | 'token' | 'access_token';
  /** Leave `expires_in` out of the response (clients must then assume 60 s). */
  omitExpiresIn: boolean;
}

export interface TokenIssuerOptions extends Partial<TokenSettings> {
  /** username → password. */
  users?: Record<string, string>;
  /** The `aud` claim and the registry's `auth.token.service`. */
  service?: string;
  /** The `iss` claim and the registry's `auth.token.issuer`. */
  issuer?: string;
}

export interface TokenIssuer {
  /** `http://127.0.0.1:PORT/token`: the registry's `auth.token.realm`. */
  realm: string;
  url: string;
  service: string;
  issuer: string;
  /** PEM certificate of the signing key: the registry's `auth.token.rootcertbundle`. */
  certPath: string;
  requests: TokenRequest[];
  /** How many requests asked for exactly `scope` (one of their scopes). */
  countScope(scope: string): number;
  /** Change response settings from now on. */
  configure(settings: Partial<TokenSettings>): void;
  /** Forget recorded requests. */
  reset(): void;
  stop(): Promise<void>;
}

/** The anonymous grant: pull on `public/...` only. */
const ANONYMOUS_PREFIX = 'public/';

interface SigningKey {
  key: KeyObject;
  /** Base64 (standard, not url) DER of the certificate, for the JWT `x5c` header. */
  certDer: string;
  certPath: string;
  dir: string;
}

/** A fresh P-256 key and a self-signed certificate for it, made with the openssl CLI. */
async function makeSigningKey(): Promise<SigningKey> {
  const dir = await makeTempDir('token-issuer');
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath,
        '-days', '7', '-subj', '/CN=layerfs test token issuer'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (err) {
    await removeTempDir(dir);
    throw new Error(`token issuer: openssl could not make a signing certificate: ${(err as { stderr?: Buffer }).stderr?.toString() ?? err}`);
  }
  const key = createPrivateKey(readFileSync(keyPath));
  const certDer = new X509Certificate(readFileSync(certPath)).raw.toString('base64');
  return { key, certDer, certPath, dir };
}

/** Key directories of issuers not yet stopped, removed on process exit if a caller forgot. */
const liveDirs = new Set<string>();
process.on('exit', () => {
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
});

const base64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/** A compact JWS: base64url(header).base64url(claims).base64url(r||s). */
function signJwt(signing: SigningKey, claims: object): string {
  const header = { typ: 'JWT', alg: 'ES256', x5c: [signing.certDer] };
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  // JWS wants the raw 64-byte r||s, not the DER SEQUENCE node produces by default.
  const signature = sign('sha256', Buffer.from(input), { key: signing.key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${base64url(signature)}`;
}

/** `repository:library/x:pull,push` → { type, name, actions }; the name may itself hold no ':'. */
export function parseScope(scope: string): TokenAccess | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) };
}

/** Scopes from every `scope` parameter; one parameter may hold several, space separated. */
function scopesOf(url: URL): string[] {
  return url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
}

type Credentials = { ok: true; user: string | undefined } | { ok: false };

function checkCredentials(req: IncomingMessage, users: Record<string, string>): Credentials {
  const header = req.headers.authorization;
  if (header === undefined) return { ok: true, user: undefined };
  const [scheme, value] = header.split(' ', 2);
  if (scheme?.toLowerCase() !== 'basic' || value === undefined) return { ok: false };
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return { ok: false };
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  return Object.hasOwn(users, user) && users[user] === password ? { ok: true, user } : { ok: false };
}

function grant(asked: TokenAccess[], user: string | undefined): TokenAccess[] {
  if (user !== undefined) return asked;
  return asked
    .filter((a) => a.type === 'repository' && a.name.startsWith(ANONYMOUS_PREFIX) && a.actions.includes('pull'))
    .map((a) => ({ ...a, actions: ['pull'] }));
}

function sendJson(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': bytes.length, ...headers });
  res.end(bytes);
}

export async function startTokenIssuer(options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
  const users = options.users ?? {};
  const service = options.service ?? 'layerfs-test-registry';
  const issuer = options.issuer ?? 'layerfs-test-issuer';
  const settings: TokenSettings = {
    expiresIn: options.expiresIn ?? 300,
    lifetime: options.lifetime,
    fields: options.fields ?? 'both',
    omitExpiresIn: options.omitExpiresIn ?? false,
  };
  const signing = await makeSigningKey();
  liveDirs.add(signing.dir);
  const requests: TokenRequest[] = [];

  const issue = (access: TokenAccess[], user: string | undefined): object => {
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(signing, {
      iss: issuer,
      sub: user ?? '',
      aud: service,
      exp: now + (settings.lifetime ?? settings.expiresIn),
      nbf: now,
      iat: now,
      jti: randomUUID(),
      access,
    });
    return {
      ...(settings.fields === 'access_token' ? {} : { token }),
      ...(settings.fields === 'token' ? {} : { access_token: token }),
      ...(settings.omitExpiresIn ? {} : { expires_in: settings.expiresIn }),
      issued_at: new Date(now * 1000).toISOString(),
    };
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const record = (status: number, granted: TokenAccess[], user?: string): void => {
      requests.push({
        method: req.method ?? '',
        service: url.searchParams.get('service') ?? undefined,
        scopes: scopesOf(url),
        credentials: req.headers.authorization !== undefined,
        user,
        status,
        granted,
      });
    };
    if (url.pathname !== '/token') {
      record(404, []);
      return sendJson(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'no such endpoint' }] });
    }
    // Only the GET form of the protocol; the OAuth2 POST form answers 405 so clients fall back.
    if (req.method !== 'GET') {
      record(405, []);
      return sendJson(res, 405, { errors: [{ code: 'UNSUPPORTED', message: 'use GET' }] }, { Allow: 'GET' });
    }
    const creds = checkCredentials(req, users);
    if (!creds.ok) {
      record(401, []);
      return sendJson(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'wrong username or password' }] }, {
        'WWW-Authenticate': 'Basic realm="layerfs test token issuer"',
      });
    }
    const asked = scopesOf(url).map(parseScope).filter((a): a is TokenAccess => a !== undefined);
    const granted = grant(asked, creds.user);
    record(200, granted, creds.user);
    sendJson(res, 200, issue(granted, creds.user));
  };

  const server = createServer(handle);
  const url = `http://127.0.0.1:${await listenLocal(server)}`;

  return {
    realm: `${url}/token`,
    url,
    service,
    issuer,
    certPath: signing.certPath,
    requests,
    countScope: (scope) => requests.filter((r) => r.scopes.includes(scope)).length,
    configure: (changes) => void Object.assign(settings, changes),
    reset: () => void requests.splice(0),
    stop: async () => {
      await closeServer(server);
      await removeTempDir(signing.dir);
      liveDirs.delete(signing.dir);
    },
  };
}

/**
 * Listens on 127.0.0.1 at a free port, unref'd: a server a test forgot to stop must not keep the
 * test process alive (node:test would wait forever). Connections in use still hold the loop.
 */
export async function listenLocal(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  server.unref();
  return (server.address() as AddressInfo).port;
}

/** Closes a server, dropping keep-alive connections so close() does not wait for them. */
export async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
