// Starts and stops a real registry: Debian's docker-registry (CNCF distribution 2.8), filesystem
// storage in a temp dir, listening on 127.0.0.1 only, in one of three auth modes:
//
//   none  : anyone may pull and push;
//   basic : htpasswd (bcrypt, made with `htpasswd -Bbn`); every request needs a user;
//   token : Bearer tokens from a TokenIssuer started alongside (see token-issuer.ts).
//
// Inside a describe(), `useRegistry(auth)` starts one in before() and always stops it in after(),
// failed tests included; `{ skip: registrySkip() }` skips the suite where docker-registry is
// missing (outside CI). Callers of startRegistry() must stop() it themselves; as a last resort
// any registry still running when the process exits is killed then.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTempDir, removeTempDir } from '../../helpers/tmp.js';
import { startTokenIssuer, type TokenIssuer, type TokenIssuerOptions } from './token-issuer.js';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

export type RegistryAuth =
  | { kind: 'none' }
  | { kind: 'basic'; users: Record<string, string> }
  /** `issuer` tunes the token server (service name, expiry, response fields; see TokenIssuerOptions). */
  | { kind: 'token'; users: Record<string, string>; issuer?: Omit<TokenIssuerOptions, 'users'> };

export interface RunningRegistry {
  /** '127.0.0.1:PORT' */
  host: string;
  /** 'http://127.0.0.1:PORT' */
  url: string;
  auth: RegistryAuth;
  /** The token server, in token mode. */
  tokenIssuer?: TokenIssuer;
  /** Storage root (docker/registry/v2/...), for tests that look at or damage what is stored. */
  storageDir: string;
  /** What the registry wrote to stderr so far (the tail of it). */
  stderr(): string;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const PORT_ATTEMPTS = 5;
const STDERR_KEEP = 64 * 1024;

/** Registries not yet stopped, killed on process exit if a caller forgot. */
const live = new Set<{ child: ChildProcess; dir: string }>();
process.on('exit', () => {
  for (const { child, dir } of live) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Why registry tests cannot run here (no docker-registry binary), or undefined when they can. */
export function registryUnavailable(): string | undefined {
  try {
    accessSync(REGISTRY_BINARY, constants.X_OK);
    return undefined;
  } catch {
    return `${REGISTRY_BINARY} is missing: install the docker-registry package (scripts/setup.sh --test, or setup-system.sh with LAYERFS_TEST_PACKAGES=1)`;
  }
}

/**
 * For `describe(name, { skip: registrySkip() }, ...)`: the reason to skip on a machine without
 * docker-registry, but never in CI (CI is set), where the tests must run and fail loudly instead.
 */
export function registrySkip(): string | false {
  return process.env.CI ? false : (registryUnavailable() ?? false);
}

/**
 * A port that was free a moment ago. Another process may take it before the registry binds it:
 * startRegistry() retries with a new one when the registry reports EADDRINUSE.
 */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('freePort: no TCP address');
  return address.port;
}

/** `htpasswd -Bbn` lines: bcrypt is the only hash distribution accepts. */
function htpasswdLines(users: Record<string, string>): string {
  const line = (user: string, password: string): string => {
    try {
      return execFileSync('htpasswd', ['-Bbn', user, password], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    } catch (err) {
      throw new Error(`htpasswd -Bbn failed (is apache2-utils installed?): ${(err as Error).message}`);
    }
  };
  return Object.entries(users)
    .map(([user, password]) => line(user, password))
    .join('\n');
}

/** JSON strings are valid YAML double-quoted scalars, so values need no YAML escaping of our own. */
const q = (value: string): string => JSON.stringify(value);

function authYaml(auth: RegistryAuth, htpasswdPath: string, issuer: TokenIssuer | undefined): string {
  if (auth.kind === 'basic') {
    return `auth:\n  htpasswd:\n    realm: ${q('layerfs-test-registry')}\n    path: ${q(htpasswdPath)}\n`;
  }
  if (auth.kind === 'token' && issuer !== undefined) {
    return [
      'auth:',
      '  token:',
      `    realm: ${q(issuer.realm)}`,
      `    service: ${q(issuer.service)}`,
      `    issuer: ${q(issuer.issuer)}`,
      `    rootcertbundle: ${q(issuer.certPath)}`,
      '',
    ].join('\n');
  }
  return '';
}

function configYaml(storageDir: string, port: number, auth: string): string {
  return `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${q(storageDir)}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ${q(`127.0.0.1:${port}`)}
  secret: ${q('layerfs-test-secret')}
health:
  storagedriver:
    enabled: false
compatibility:
  schema1:
    enabled: false
${auth}`;
}

interface Launched {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

function launch(configPath: string): Launched {
  const child = spawn(REGISTRY_BINARY, ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEEP);
  });
  // A forgotten registry must not keep the test process alive; the exit hook kills it.
  child.unref();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  // 'close' rather than 'exit': by then stderr is drained, so an error message is complete.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  child.once('error', () => undefined); // spawn failures surface through `exited`
  return { child, stderr: () => stderr, exited };
}

/** Polls GET /v2/ until the registry answers (200, or 401 when auth is on). */
async function waitReady(url: string, launched: Launched): Promise<'ready' | 'exited' | 'timeout'> {
  let exited = false;
  void launched.exited.then(() => (exited = true));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited) return 'exited';
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return 'ready';
    } catch {
      // Not listening yet.
    }
    await sleep(20);
  }
  return 'timeout';
}

async function stopChild(launched: Launched): Promise<void> {
  if (launched.child.exitCode !== null || launched.child.signalCode !== null) return;
  launched.child.kill('SIGTERM');
  const timer = setTimeout(() => launched.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await launched.exited;
  clearTimeout(timer);
}

export async function startRegistry(auth: RegistryAuth = { kind: 'none' }): Promise<RunningRegistry> {
  const missing = registryUnavailable();
  if (missing !== undefined) throw new Error(missing);
  const dir = await makeTempDir('registry');
  const storageDir = join(dir, 'storage');
  const configPath = join(dir, 'config.yml');
  const htpasswdPath = join(dir, 'htpasswd');
  let tokenIssuer: TokenIssuer | undefined;
  try {
    if (auth.kind === 'basic') await writeFile(htpasswdPath, `${htpasswdLines(auth.users)}\n`);
    if (auth.kind === 'token') tokenIssuer = await startTokenIssuer({ ...auth.issuer, users: auth.users });

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      await writeFile(configPath, configYaml(storageDir, port, authYaml(auth, htpasswdPath, tokenIssuer)));
      const url = `http://127.0.0.1:${port}`;
      const launched = launch(configPath);
      const entry = { child: launched.child, dir };
      live.add(entry);
      const state = await waitReady(url, launched);
      if (state === 'ready') {
        const issuer = tokenIssuer;
        return {
          host: `127.0.0.1:${port}`,
          url,
          auth,
          ...(issuer === undefined ? {} : { tokenIssuer: issuer }),
          storageDir,
          stderr: launched.stderr,
          stop: async () => {
            await stopChild(launched);
            live.delete(entry);
            await issuer?.stop();
            await removeTempDir(dir);
          },
        };
      }
      await stopChild(launched);
      live.delete(entry);
      if (state === 'timeout') {
        throw new Error(`docker-registry did not answer GET ${url}/v2/ within ${READY_TIMEOUT_MS} ms; stderr:\n${launched.stderr()}`);
      }
      const inUse = /address already in use/i.test(launched.stderr());
      if (!inUse || attempt >= PORT_ATTEMPTS) {
        throw new Error(`docker-registry exited before it was ready (exit ${launched.child.exitCode}); stderr:\n${launched.stderr()}`);
      }
    }
  } catch (err) {
    await tokenIssuer?.stop();
    await removeTempDir(dir);
    throw err;
  }
}

/**
 * Registers before()/after() hooks in the current suite: a registry started before its tests and
 * stopped after them whatever happened. Returns a getter (the registry exists only once before()
 * has run). Call it synchronously inside describe().
 */
export function useRegistry(auth: RegistryAuth = { kind: 'none' }): () => RunningRegistry {
  let registry: RunningRegistry | undefined;
  before(async () => {
    registry = await startRegistry(auth);
  });
  after(async () => {
    await registry?.stop();
    registry = undefined;
  });
  return () => {
    if (registry === undefined) throw new Error('useRegistry: the registry is not running (use it inside tests of the same suite)');
    return registry;
  };
}
