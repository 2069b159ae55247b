import { type AuthCredentials, Authenticator, challengeOf } from './auth.js';
import { RegistryError } from './errors.js';
import { type HttpTransport, discard } from './http.js';

/**
 * Checks credentials against a registry the way `docker login` does: GET /v2/, answer the
 * challenge with the credentials (a token for no particular repository, or Basic), and expect
 * the registry to accept the retry.
 */
export async function verifyLogin(
  http: HttpTransport,
  baseUrl: string,
  host: string,
  credentials: AuthCredentials,
  allowPlainHttp: (host: string) => boolean,
): Promise<void> {
  const url = `${baseUrl.replace(/\/+$/, '')}/v2/`;
  const first = await http.send({ method: 'GET', url });
  await discard(first);
  if (first.status === 200) return; // no authentication at all: nothing to check
  if (first.status !== 401) throw new RegistryError('ERR_REGISTRY_HTTP', `${host} answered HTTP ${first.status} to GET /v2/; is it a registry?`, { status: first.status });
  const auth = new Authenticator(http, host, async () => credentials, allowPlainHttp);
  const authorization = await auth.respond(challengeOf(first.headers), []);
  const second = await http.send({ method: 'GET', url, headers: { authorization } });
  await discard(second);
  if (second.status !== 200) {
    throw new RegistryError('ERR_REGISTRY_AUTH', `login to ${host} failed: the registry refused the credentials (HTTP ${second.status})`, { status: second.status });
  }
}
