// Docker and Podman credentials on real files, with real credential helper programs (shell
// scripts on a PATH of our own): lookup order, key spellings, login/logout writes, and that no
// secret ever reaches an error message.
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  type CredentialOptions,
  credentialKey,
  dockerConfigPath,
  lookupCredentials,
  removeCredentials,
  saveCredentials,
} from '../../src/config/credentials.js';
import { isRegistryError } from '../../src/registry/errors.js';
import { TempDirs } from '../helpers/tmp.js';

const SECRET = 'hunter2-S3cret';
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A helper speaking the docker-credential-helpers protocol, keeping entries as files in $TEST_CRED_STORE. */
const FILE_HELPER = `#!/bin/sh
store="$TEST_CRED_STORE"
echo "$1" >> "$store/calls"
file_for() { printf '%s' "$store/entry-$(printf '%s' "$1" | tr -c 'A-Za-z0-9' '_')"; }
case "$1" in
  get)
    f=$(file_for "$(cat)")
    if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store)
    input=$(cat)
    url=$(printf '%s' "$input" | sed -n 's/.*"ServerURL":"\\([^"]*\\)".*/\\1/p')
    printf '%s' "$input" > "$(file_for "$url")" ;;
  erase)
    f=$(file_for "$(cat)")
    if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  *) echo "unknown action $1"; exit 1 ;;
esac
`;

const HELPERS: Record<string, string> = {
  test: FILE_HELPER,
  token: `#!/bin/sh\ncat >/dev/null\nprintf '%s' '{"ServerURL":"x","Username":"<token>","Secret":"refresh-${SECRET}"}'\n`,
  // Not exec: the shell is killed on timeout while its sleeping child still holds the pipes.
  slow: `#!/bin/sh\ncat >/dev/null\nsleep 3\n`,
  leaky: `#!/bin/sh\ninput=$(cat)\necho "cannot store $input"\necho "stderr: $input" >&2\nexit 1\n`,
  garbage: `#!/bin/sh\ncat >/dev/null\necho "${SECRET} is not json"\n`,
  fails: `#!/bin/sh\ncat >/dev/null\necho "keyring is locked" >&2\nexit 3\n`,
  empty: `#!/bin/sh\ncat >/dev/null\nprintf '%s' '{"ServerURL":"","Username":"","Secret":""}'\n`,
};

describe('credentials', () => {
  const temps = new TempDirs();
  let root = '';
  let bin = '';
  let home = '';
  let store = '';
  let opts: CredentialOptions;
  let configPath = '';

  const writeConfig = async (value: unknown, path = configPath) => {
    await fsp.mkdir(join(path, '..'), { recursive: true });
    await fsp.writeFile(path, typeof value === 'string' ? value : JSON.stringify(value));
  };
  const readConfig = async () => JSON.parse(await fsp.readFile(configPath, 'utf8')) as Record<string, unknown>;
  const calls = async () => (await fsp.readFile(join(store, 'calls'), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);
  const noSecret = (err: unknown, ...secrets: string[]) => {
    assert.ok(isRegistryError(err, 'ERR_CREDENTIALS'), String(err));
    for (const s of [SECRET, b64(`user:${SECRET}`), ...secrets]) assert.ok(!err.message.includes(s), `secret in: ${err.message}`);
    return true;
  };

  before(async () => {
    root = await temps.make('creds');
    bin = join(root, 'bin');
    await fsp.mkdir(bin);
    for (const [name, script] of Object.entries(HELPERS)) {
      await fsp.writeFile(join(bin, `docker-credential-${name}`), script, { mode: 0o755 });
    }
  });
  beforeEach(async () => {
    home = await fsp.mkdtemp(join(root, 'home-'));
    store = await fsp.mkdtemp(join(root, 'store-'));
    opts = { env: { PATH: `${bin}:/usr/bin:/bin`, TEST_CRED_STORE: store }, home };
    configPath = join(home, '.docker', 'config.json');
  });
  after(() => temps.cleanup());

  describe('paths and keys', () => {
    it('uses $DOCKER_CONFIG, else ~/.docker', () => {
      assert.equal(dockerConfigPath({ DOCKER_CONFIG: '/etc/dc' }, '/home/u'), '/etc/dc/config.json');
      assert.equal(dockerConfigPath({}, '/home/u'), '/home/u/.docker/config.json');
      assert.equal(dockerConfigPath({ DOCKER_CONFIG: '' }, '/home/u'), '/home/u/.docker/config.json');
    });
    it('keys Docker Hub by its historical URL', () => {
      assert.equal(credentialKey('docker.io'), 'https://index.docker.io/v1/');
      assert.equal(credentialKey('index.docker.io'), 'https://index.docker.io/v1/');
      assert.equal(credentialKey('ghcr.io'), 'ghcr.io');
      assert.equal(credentialKey('localhost:5000'), 'localhost:5000');
    });
  });

  describe('lookup from files', () => {
    it('finds nothing without a config file', async () => {
      assert.equal(await lookupCredentials('ghcr.io', opts), undefined);
    });
    it('decodes auths[key].auth; Docker Hub under https://index.docker.io/v1/', async () => {
      await writeConfig({ auths: { 'https://index.docker.io/v1/': { auth: b64(`hub:${SECRET}`) }, 'ghcr.io': { auth: b64('gh:p:with:colons') } } });
      assert.deepEqual(await lookupCredentials('docker.io', opts), { username: 'hub', password: SECRET, from: configPath });
      assert.deepEqual(await lookupCredentials('index.docker.io', opts), { username: 'hub', password: SECRET, from: configPath });
      assert.deepEqual(await lookupCredentials('ghcr.io', opts), { username: 'gh', password: 'p:with:colons', from: configPath });
      assert.equal(await lookupCredentials('quay.io', opts), undefined);
    });
    it('accepts other spellings of a key, but not namespaced keys', async () => {
      const spellings = ['https://a.io', 'http://b.io', 'c.io/v2/', 'https://D.io/v1/', 'docker.io'];
      const auths: Record<string, unknown> = { 'quay.io/org': { auth: b64('ns:pw') } };
      for (const [i, key] of spellings.entries()) auths[key] = { auth: b64(`u${i}:p${i}`) };
      await writeConfig({ auths });
      for (const [i, registry] of ['a.io', 'b.io', 'c.io', 'd.io', 'docker.io'].entries()) {
        assert.deepEqual(await lookupCredentials(registry, opts), { username: `u${i}`, password: `p${i}`, from: configPath }, registry);
      }
      assert.equal(await lookupCredentials('quay.io', opts), undefined);
    });
    it('prefers the canonical key over other spellings', async () => {
      await writeConfig({ auths: { 'https://ghcr.io': { auth: b64('old:x') }, 'ghcr.io': { auth: b64('new:y') } } });
      assert.deepEqual(await lookupCredentials('ghcr.io', opts), { username: 'new', password: 'y', from: configPath });
    });
    it('reads username/password fields and identity tokens', async () => {
      await writeConfig({
        auths: {
          'a.io': { username: 'plain', password: SECRET },
          'b.io': { auth: b64('tokuser:'), identitytoken: 'refresh-1' },
          'c.io': { identitytoken: 'refresh-2' },
        },
      });
      assert.deepEqual(await lookupCredentials('a.io', opts), { username: 'plain', password: SECRET, from: configPath });
      assert.deepEqual(await lookupCredentials('b.io', opts), { identityToken: 'refresh-1', username: 'tokuser', from: configPath });
      assert.deepEqual(await lookupCredentials('c.io', opts), { identityToken: 'refresh-2', from: configPath });
    });
    it('reads Podman auth files after the Docker config', async () => {
      const runtime = join(home, 'run');
      await writeConfig({ auths: { 'x.io': { auth: b64('dock:er') } } });
      await writeConfig({ auths: { 'x.io': { auth: b64('pod:man') }, 'y.io': { auth: b64('pod:y') } } }, join(runtime, 'containers', 'auth.json'));
      await writeConfig({ auths: { 'z.io': { auth: b64('cfg:z') } } }, join(home, '.config', 'containers', 'auth.json'));
      const env = { ...opts.env, XDG_RUNTIME_DIR: runtime };
      assert.deepEqual(await lookupCredentials('x.io', { ...opts, env }), { username: 'dock', password: 'er', from: configPath });
      assert.equal((await lookupCredentials('y.io', { ...opts, env }))?.from, join(runtime, 'containers', 'auth.json'));
      assert.equal((await lookupCredentials('z.io', { ...opts, env }))?.from, join(home, '.config', 'containers', 'auth.json'));
      const authFile = join(home, 'my-auth.json');
      await writeConfig({ auths: { 'y.io': { auth: b64('explicit:y') } } }, authFile);
      const explicit = await lookupCredentials('y.io', { ...opts, env: { ...env, REGISTRY_AUTH_FILE: authFile } });
      assert.deepEqual(explicit, { username: 'explicit', password: 'y', from: authFile });
      assert.equal(await lookupCredentials('z.io', { ...opts, env: { ...env, REGISTRY_AUTH_FILE: authFile } }), undefined, 'REGISTRY_AUTH_FILE replaces the defaults');
    });
  });

  describe('malformed files', () => {
    it('names the file and position of invalid JSON, without quoting it', async () => {
      await writeConfig(`{\n  "auths": {"a.io": {"auth": "${b64(`user:${SECRET}`)}" x}}\n}`);
      await assert.rejects(lookupCredentials('a.io', opts), (err: unknown) => {
        noSecret(err);
        assert.match((err as Error).message, new RegExp(`^docker config file ${configPath} is not valid JSON \\(line 2, column \\d+\\)$`));
        return true;
      });
      await writeConfig(`{"auths": {"a.io": {"auth": "${SECRET}`);
      await assert.rejects(lookupCredentials('a.io', opts), (err: unknown) => noSecret(err) && /is not valid JSON \(line 1, column \d+\)$/.test((err as Error).message));
    });
    it('names the JSON path of a bad value, without the value', async () => {
      await writeConfig({ auths: { 'a.io': { auth: `not base64 ${SECRET}` } } });
      await assert.rejects(lookupCredentials('a.io', opts), (err: unknown) => {
        noSecret(err);
        assert.equal((err as Error).message, `invalid credentials file ${configPath}: auths["a.io"].auth is not the base64 encoding of "user:password"`);
        return true;
      });
      await writeConfig({ auths: { 'a.io': { auth: b64(SECRET) } } });
      await assert.rejects(lookupCredentials('a.io', opts), (err: unknown) => noSecret(err, b64(SECRET)));
      await writeConfig({ auths: [] });
      await assert.rejects(lookupCredentials('a.io', opts), { code: 'ERR_CREDENTIALS', message: `invalid credentials file ${configPath}: "auths" must be an object` });
      await writeConfig({ auths: { 'a.io': { password: 5 } } });
      await assert.rejects(lookupCredentials('a.io', opts), { message: /auths\["a.io"\]\.password must be a string/ });
      await writeConfig('[1]');
      await assert.rejects(lookupCredentials('a.io', opts), { message: `docker config file ${configPath} must hold a JSON object` });
    });
    it('refuses helper names that are paths', async () => {
      await writeConfig({ credHelpers: { 'a.io': '../../bin/sh' } });
      await assert.rejects(lookupCredentials('a.io', opts), { code: 'ERR_CREDENTIALS', message: /credHelpers\["a.io"\] must be a credential helper name/ });
    });
  });

  describe('credential helpers', () => {
    it('credHelpers comes before auths, which comes before credsStore', async () => {
      await fsp.writeFile(join(store, 'entry-a_io'), JSON.stringify({ ServerURL: 'a.io', Username: 'helper', Secret: SECRET }));
      await writeConfig({ credHelpers: { 'a.io': 'test' }, auths: { 'a.io': { auth: b64('file:pw') } } });
      assert.deepEqual(await lookupCredentials('a.io', opts), { username: 'helper', password: SECRET, from: 'docker-credential-test' });
      await writeConfig({ credsStore: 'test', auths: { 'a.io': { auth: b64('file:pw') } } });
      assert.deepEqual(await lookupCredentials('a.io', opts), { username: 'file', password: 'pw', from: configPath });
      await writeConfig({ credsStore: 'test', auths: { 'a.io': {} } });
      assert.deepEqual(await lookupCredentials('a.io', opts), { username: 'helper', password: SECRET, from: 'docker-credential-test' });
    });
    it('"credentials not found" from a helper means none, and the search goes on', async () => {
      await writeConfig({ credHelpers: { 'a.io': 'test' }, auths: { 'a.io': { auth: b64('file:pw') } } });
      assert.deepEqual(await lookupCredentials('a.io', opts), { username: 'file', password: 'pw', from: configPath });
      await writeConfig({ credsStore: 'test' });
      assert.equal(await lookupCredentials('b.io', opts), undefined);
      assert.deepEqual(await calls(), ['get', 'get']);
    });
    it('sends Docker Hub as https://index.docker.io/v1/', async () => {
      await fsp.writeFile(join(store, 'entry-https___index_docker_io_v1_'), JSON.stringify({ ServerURL: 'x', Username: 'hub', Secret: SECRET }));
      await writeConfig({ credsStore: 'test' });
      assert.deepEqual(await lookupCredentials('docker.io', opts), { username: 'hub', password: SECRET, from: 'docker-credential-test' });
    });
    it('turns the <token> user into an identity token, and empty answers into none', async () => {
      await writeConfig({ credHelpers: { 'a.io': 'token', 'b.io': 'empty' } });
      assert.deepEqual(await lookupCredentials('a.io', opts), { identityToken: `refresh-${SECRET}`, from: 'docker-credential-token' });
      assert.equal(await lookupCredentials('b.io', opts), undefined);
    });
    it('reports a helper missing from PATH', async () => {
      await writeConfig({ credsStore: 'nonexistent' });
      await assert.rejects(lookupCredentials('a.io', opts), {
        code: 'ERR_CREDENTIALS',
        message: 'credential helper docker-credential-nonexistent not found in PATH',
      });
    });
    it('gives up on a helper that does not answer', async () => {
      await writeConfig({ credsStore: 'slow' });
      const started = Date.now();
      await assert.rejects(lookupCredentials('a.io', { ...opts, helperTimeoutMs: 300 }), {
        code: 'ERR_CREDENTIALS',
        message: 'credential helper docker-credential-slow did not answer within 0.3 s',
      });
      assert.ok(Date.now() - started < 2500, 'did not wait for the orphaned sleep');
    });
    it('reports a failing helper with what it said', async () => {
      await writeConfig({ credsStore: 'fails' });
      await assert.rejects(lookupCredentials('a.io', opts), {
        code: 'ERR_CREDENTIALS',
        message: 'credential helper docker-credential-fails get failed (exit status 3): keyring is locked',
      });
    });
    it('does not quote output that is not JSON', async () => {
      await writeConfig({ credsStore: 'garbage' });
      await assert.rejects(lookupCredentials('a.io', opts), (err: unknown) => {
        noSecret(err);
        assert.equal((err as Error).message, 'credential helper docker-credential-garbage returned output that is not JSON');
        return true;
      });
    });
  });

  describe('login (save)', () => {
    it('writes auths[key].auth with mode 0600 in a new 0700 directory', async () => {
      await saveCredentials('docker.io', { username: 'user', password: SECRET }, opts);
      assert.equal((await fsp.stat(configPath)).mode & 0o777, 0o600);
      assert.equal((await fsp.stat(join(home, '.docker'))).mode & 0o777, 0o700);
      assert.deepEqual(await readConfig(), { auths: { 'https://index.docker.io/v1/': { auth: b64(`user:${SECRET}`) } } });
      assert.deepEqual(await lookupCredentials('docker.io', opts), { username: 'user', password: SECRET, from: configPath });
      assert.deepEqual(await fsp.readdir(join(home, '.docker')), ['config.json'], 'no temp file left');
    });
    it('keeps every other key and replaces other spellings of the same registry', async () => {
      const original = {
        auths: { 'other.io': { auth: b64('o:p'), email: 'x@y' }, 'https://ghcr.io': { auth: b64('old:old') } },
        proxies: { default: { httpProxy: 'http://proxy:3128' } },
        psFormat: 'table {{.ID}}',
        plugins: { foo: { bar: 'baz' } },
      };
      await writeConfig(original);
      await fsp.chmod(configPath, 0o644);
      await saveCredentials('ghcr.io', { username: 'new', password: 'pw' }, opts);
      assert.deepEqual(await readConfig(), {
        ...original,
        auths: { 'other.io': original.auths['other.io'], 'ghcr.io': { auth: b64('new:pw') } },
      });
      assert.equal((await fsp.stat(configPath)).mode & 0o777, 0o600);
    });
    it('follows a symlinked config.json and keeps the link', async () => {
      const real = join(home, 'dotfiles', 'docker.json');
      await writeConfig({ psFormat: 'x' }, real);
      await fsp.mkdir(join(home, '.docker'));
      await fsp.symlink(real, configPath);
      await saveCredentials('a.io', { username: 'u', password: 'p' }, opts);
      assert.ok((await fsp.lstat(configPath)).isSymbolicLink());
      assert.deepEqual(JSON.parse(await fsp.readFile(real, 'utf8')), { psFormat: 'x', auths: { 'a.io': { auth: b64('u:p') } } });
    });
    it('uses $DOCKER_CONFIG', async () => {
      const dir = join(home, 'custom');
      await saveCredentials('a.io', { username: 'u', password: 'p' }, { ...opts, env: { ...opts.env, DOCKER_CONFIG: dir } });
      assert.ok((await fsp.readFile(join(dir, 'config.json'), 'utf8')).includes(b64('u:p')));
    });
    it('stores through credsStore or credHelpers, leaving the file alone', async () => {
      await writeConfig({ credsStore: 'test' });
      await saveCredentials('docker.io', { username: 'hub', password: SECRET }, opts);
      assert.deepEqual(await readConfig(), { credsStore: 'test' });
      assert.deepEqual(JSON.parse(await fsp.readFile(join(store, 'entry-https___index_docker_io_v1_'), 'utf8')), {
        ServerURL: 'https://index.docker.io/v1/',
        Username: 'hub',
        Secret: SECRET,
      });
      assert.deepEqual(await lookupCredentials('docker.io', opts), { username: 'hub', password: SECRET, from: 'docker-credential-test' });
      await writeConfig({ credHelpers: { 'ghcr.io': 'test' } });
      await saveCredentials('ghcr.io', { username: 'gh', password: 'pw' }, opts);
      assert.deepEqual((await lookupCredentials('ghcr.io', opts)) as unknown, { username: 'gh', password: 'pw', from: 'docker-credential-test' });
    });
    it('never repeats the password when a helper fails', async () => {
      await writeConfig({ credsStore: 'leaky' });
      await assert.rejects(saveCredentials('a.io', { username: 'user', password: SECRET }, opts), (err: unknown) => {
        noSecret(err);
        assert.match((err as Error).message, /^credential helper docker-credential-leaky store failed \(exit status 1\)/);
        return true;
      });
    });
    it('rejects user names with a colon and empty fields', async () => {
      await assert.rejects(saveCredentials('a.io', { username: 'a:b', password: SECRET }, opts), (err: unknown) => noSecret(err));
      await assert.rejects(saveCredentials('a.io', { username: 'a', password: '' }, opts), { code: 'ERR_CREDENTIALS' });
    });
    it('reports a config directory that cannot be created, without the secret', async () => {
      const file = join(home, 'a-file');
      await fsp.writeFile(file, '');
      await assert.rejects(
        saveCredentials('a.io', { username: 'u', password: SECRET }, { ...opts, env: { ...opts.env, DOCKER_CONFIG: join(file, 'docker') } }),
        (err: unknown) => noSecret(err) && /^cannot write docker config file .*: ENOTDIR$/.test((err as Error).message),
      );
    });
  });

  describe('logout (remove)', () => {
    it('removes every spelling of the key and says whether it removed anything', async () => {
      await writeConfig({ auths: { 'ghcr.io': { auth: b64('a:b') }, 'https://ghcr.io/v2/': { auth: b64('c:d') }, 'x.io': { auth: b64('e:f') } }, psFormat: 'p' });
      assert.equal(await removeCredentials('ghcr.io', opts), true);
      assert.deepEqual(await readConfig(), { auths: { 'x.io': { auth: b64('e:f') } }, psFormat: 'p' });
      assert.equal(await removeCredentials('ghcr.io', opts), false);
      assert.equal(await removeCredentials('y.io', { ...opts, home: join(home, 'nowhere') }), false);
    });
    it('erases from the helper too', async () => {
      await writeConfig({ credsStore: 'test', auths: { 'https://index.docker.io/v1/': {} } });
      await saveCredentials('docker.io', { username: 'hub', password: SECRET }, opts);
      assert.equal(await removeCredentials('docker.io', opts), true);
      assert.equal(await lookupCredentials('docker.io', opts), undefined);
      assert.deepEqual(await readConfig(), { credsStore: 'test', auths: {} });
      assert.equal(await removeCredentials('docker.io', opts), false, 'helper says not found');
      assert.deepEqual(await calls(), ['store', 'erase', 'get', 'erase']);
    });
  });
});
