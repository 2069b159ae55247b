// The registries configuration: where it is looked for, what it accepts (and the errors for what
// it does not), and the endpoints and plain-HTTP decisions that follow from it.
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  allowsPlainHttp,
  emptyRegistriesConfig,
  endpointsFor,
  loadRegistriesConfig,
  parseRegistriesConfig,
  type RegistriesConfig,
  registriesConfigPath,
} from '../../src/config/registries.js';
import { TempDirs } from '../helpers/tmp.js';

const FILE = '/cfg/registries.json';
const parse = (value: unknown): RegistriesConfig => parseRegistriesConfig(value, FILE);

describe('registriesConfigPath', () => {
  const home = '/home/u';
  it('--config, then LAYERFS_CONFIG, then the default for the user', () => {
    assert.deepEqual(registriesConfigPath({ path: '/x.json', env: { LAYERFS_CONFIG: '/y.json' }, uid: 0, home }), { path: '/x.json', namedBy: 'command line' });
    assert.deepEqual(registriesConfigPath({ env: { LAYERFS_CONFIG: '/y.json' }, uid: 0, home }), { path: '/y.json', namedBy: 'LAYERFS_CONFIG' });
    assert.deepEqual(registriesConfigPath({ path: undefined, env: {}, uid: 0, home }), { path: '/etc/layerfs/registries.json' });
    assert.deepEqual(registriesConfigPath({ env: {}, uid: 1000, home }), { path: '/home/u/.config/layerfs/registries.json' });
    assert.deepEqual(registriesConfigPath({ env: { XDG_CONFIG_HOME: '/xdg' }, uid: 1000, home }), { path: '/xdg/layerfs/registries.json' });
    assert.deepEqual(registriesConfigPath({ env: { XDG_CONFIG_HOME: 'relative' }, uid: 1000, home }), { path: '/home/u/.config/layerfs/registries.json' });
  });
});

describe('loadRegistriesConfig', () => {
  const temps = new TempDirs();
  let dir = '';
  before(async () => {
    dir = await temps.make('registries');
  });
  after(() => temps.cleanup());

  it('a missing default file is an empty configuration', async () => {
    assert.deepEqual(await loadRegistriesConfig({ env: {}, uid: 1000, home: join(dir, 'nohome') }), emptyRegistriesConfig());
  });
  it('a missing file named on the command line or by LAYERFS_CONFIG is an error', async () => {
    const missing = join(dir, 'missing.json');
    await assert.rejects(loadRegistriesConfig({ path: missing, env: {}, uid: 1000, home: dir }), {
      code: 'ERR_CONFIG',
      message: `registries config file ${missing} (named on the command line) does not exist`,
    });
    await assert.rejects(loadRegistriesConfig({ env: { LAYERFS_CONFIG: missing }, uid: 1000, home: dir }), {
      message: `registries config file ${missing} (named by LAYERFS_CONFIG) does not exist`,
    });
  });
  it('reads the default file under XDG_CONFIG_HOME', async () => {
    const file = join(dir, 'xdg', 'layerfs', 'registries.json');
    await fsp.mkdir(join(file, '..'), { recursive: true });
    await fsp.writeFile(file, JSON.stringify({ 'registry-mirrors': ['https://m.example/'] }));
    const config = await loadRegistriesConfig({ env: { XDG_CONFIG_HOME: join(dir, 'xdg') }, uid: 1000, home: dir });
    assert.equal(config.path, file);
    assert.deepEqual(config.registryMirrors, ['https://m.example']);
  });
  it('an empty file is {}', async () => {
    const file = join(dir, 'empty.json');
    await fsp.writeFile(file, '\n');
    assert.deepEqual(await loadRegistriesConfig({ path: file, env: {}, uid: 0, home: dir }), { ...emptyRegistriesConfig(), path: file });
  });
  it('names the file and position of invalid JSON', async () => {
    const file = join(dir, 'bad.json');
    await fsp.writeFile(file, '{\n  "registry-mirrors": ["https://m"],\n  x\n}');
    await assert.rejects(loadRegistriesConfig({ path: file, env: {}, uid: 0, home: dir }), {
      code: 'ERR_CONFIG',
      message: new RegExp(`^registries config file ${file} is not valid JSON \\(line 3, column \\d+\\)$`),
    });
  });
  it('reports an unreadable path', async () => {
    await assert.rejects(loadRegistriesConfig({ path: dir, env: {}, uid: 0, home: dir }), {
      code: 'ERR_CONFIG',
      message: `cannot read registries config file ${dir}: EISDIR`,
    });
  });
});

describe('parseRegistriesConfig', () => {
  it('normalises names and URLs', () => {
    const config = parse({
      'registry-mirrors': ['https://mirror.example/', 'https://Hub.Mirror:443/v2/'],
      'insecure-registries': ['MyHost:5000', '10.0.0.0/8', 'fd00::/8'],
      registries: {
        'GHCR.io': { mirrors: ['https://m1/prefix/', 'http://127.0.0.1:5001'], insecure: false },
        'index.docker.io': { mirrors: ['https://m2'] },
        'myhost:5000': { mirrors: ['http://myhost:5000/cache'] },
      },
    });
    assert.deepEqual(config, {
      path: FILE,
      registryMirrors: ['https://mirror.example', 'https://hub.mirror'],
      insecureRegistries: ['myhost:5000', '10.0.0.0/8', 'fd00::/8'],
      registries: new Map([
        ['ghcr.io', { mirrors: ['https://m1/prefix', 'http://127.0.0.1:5001'], insecure: false }],
        ['docker.io', { mirrors: ['https://m2'], insecure: false }],
        ['myhost:5000', { mirrors: ['http://myhost:5000/cache'], insecure: false }],
      ]),
    });
  });

  const invalid: Array<[name: string, value: unknown, message: string]> = [
    ['a non-object', [], 'expected a JSON object at the top level'],
    ['an unknown key', { 'registry-mirror': [] }, 'unknown key "registry-mirror" (known keys: registry-mirrors, insecure-registries, registries)'],
    ['an unknown registry key', { registries: { 'ghcr.io': { mirror: [] } } }, 'unknown key "mirror" in registries["ghcr.io"] (known keys: mirrors, insecure)'],
    ['mirrors not an array', { 'registry-mirrors': 'https://m' }, 'registry-mirrors must be an array of strings'],
    ['a mirror not a string', { registries: { 'ghcr.io': { mirrors: ['https://m', 5] } } }, 'registries["ghcr.io"].mirrors[1] must be a string'],
    ['insecure not a boolean', { registries: { 'ghcr.io': { insecure: 'yes' } } }, 'registries["ghcr.io"].insecure must be true or false'],
    ['registries not an object', { registries: ['ghcr.io'] }, '"registries" must be an object keyed by registry host[:port]'],
    ['a registry settings not an object', { registries: { 'ghcr.io': true } }, 'registries["ghcr.io"] must be an object'],
    ['a registry with a scheme', { registries: { 'https://ghcr.io': {} } }, 'registries["https://ghcr.io"]: a registry is named by host[:port], without scheme or path, e.g. "ghcr.io" or "myhost:5000"'],
    ['a registry twice', { registries: { 'docker.io': {}, 'index.docker.io': {} } }, 'registries["index.docker.io"]: docker.io is configured twice'],
    ['an insecure entry with a scheme', { 'insecure-registries': ['http://h:5000'] }, 'insecure-registries[0] must be host[:port] without a scheme, e.g. "myhost:5000"'],
    ['a bad insecure network', { 'insecure-registries': ['h', '10.0.0.0/33'] }, 'insecure-registries[1] must be host[:port] or an IP network such as "10.0.0.0/8"'],
    ['a bad insecure host', { 'insecure-registries': ['bad host'] }, 'insecure-registries[0] must be host[:port] or an IP network such as "10.0.0.0/8"'],
    ['a mirror that is not a URL', { 'registry-mirrors': ['mirror.example'] }, 'registry-mirrors[0] is not a URL (expected e.g. "https://mirror.example")'],
    ['a mirror with another scheme', { 'registry-mirrors': ['ftp://m'] }, 'registry-mirrors[0] must be an https:// or http:// URL'],
    ['a mirror with a query', { 'registry-mirrors': ['https://m/?x=1'] }, 'registry-mirrors[0] must not have a query or fragment'],
    [
      'a plain-HTTP mirror on a secure host',
      { registries: { 'ghcr.io': { mirrors: ['http://m.example:5001/p'] } } },
      'registries["ghcr.io"].mirrors[0]: plain HTTP mirror http://m.example:5001/p is only allowed for loopback or insecure hosts; use https, or add "m.example:5001" to "insecure-registries"',
    ],
  ];
  for (const [name, value, message] of invalid) {
    it(`rejects ${name}`, () => {
      assert.throws(() => parse(value), { code: 'ERR_CONFIG', message: `invalid registries config ${FILE}: ${message}` });
    });
  }
  it('never quotes a mirror URL with credentials', () => {
    assert.throws(
      () => parse({ 'registry-mirrors': ['https://user:s3cret-pw@m.example'] }),
      (err: Error) => {
        assert.equal(err.message, `invalid registries config ${FILE}: registry-mirrors[0] must not contain credentials; use \`layerfs login m.example\``);
        assert.ok(!err.message.includes('s3cret-pw'));
        return true;
      },
    );
    assert.throws(() => parse({ 'registry-mirrors': ['https//user:s3cret-pw@m'] }), (err: Error) => !err.message.includes('s3cret-pw'));
  });
  it('allows plain-HTTP mirrors on loopback and insecure hosts', () => {
    const config = parse({
      'insecure-registries': ['cache.lan:5000', '192.168.0.0/16'],
      registries: { 'ghcr.io': { mirrors: ['http://localhost:5001', 'http://[::1]:5002/x', 'http://cache.lan:5000', 'http://192.168.1.9'] }, 'other.lan': { insecure: true } },
      'registry-mirrors': ['http://other.lan/hub'],
    });
    assert.deepEqual(config.registries.get('ghcr.io')!.mirrors, ['http://localhost:5001', 'http://[::1]:5002/x', 'http://cache.lan:5000', 'http://192.168.1.9']);
    assert.deepEqual(config.registryMirrors, ['http://other.lan/hub']);
  });
});

describe('endpointsFor', () => {
  it('a registry without settings is its own only endpoint, over HTTPS', () => {
    assert.deepEqual(endpointsFor(emptyRegistriesConfig(), 'ghcr.io'), [
      { registry: 'ghcr.io', baseUrl: 'https://ghcr.io', mirror: false, label: 'registry ghcr.io' },
    ]);
    assert.deepEqual(endpointsFor(emptyRegistriesConfig(), 'docker.io'), [
      { registry: 'docker.io', baseUrl: 'https://registry-1.docker.io', mirror: false, label: 'registry docker.io' },
    ]);
  });
  it('loopback and insecure registries use plain HTTP', () => {
    const config = parse({ 'insecure-registries': ['myhost:5000', '10.1.0.0/16'], registries: { 'lan.example': { insecure: true } } });
    const upstream = (registry: string) => endpointsFor(config, registry).at(-1)!.baseUrl;
    assert.equal(upstream('localhost:5000'), 'http://localhost:5000');
    assert.equal(upstream('127.0.0.1:5000'), 'http://127.0.0.1:5000');
    assert.equal(upstream('[::1]:5000'), 'http://[::1]:5000');
    assert.equal(upstream('myhost:5000'), 'http://myhost:5000');
    assert.equal(upstream('myhost:5001'), 'https://myhost:5001', 'ports are matched exactly');
    assert.equal(upstream('myhost'), 'https://myhost');
    assert.equal(upstream('10.1.2.3:5000'), 'http://10.1.2.3:5000');
    assert.equal(upstream('10.2.0.1'), 'https://10.2.0.1');
    assert.equal(upstream('lan.example'), 'http://lan.example');
  });
  it('mirrors come first, in order; registry-mirrors before registries["docker.io"]', () => {
    const config = parse({
      'registry-mirrors': ['https://hub1', 'https://shared'],
      registries: { 'docker.io': { mirrors: ['https://shared/', 'https://hub2/p'] }, 'ghcr.io': { mirrors: ['https://gh/prefix'] } },
    });
    assert.deepEqual(endpointsFor(config, 'docker.io'), [
      { registry: 'docker.io', baseUrl: 'https://hub1', mirror: true, label: 'mirror https://hub1' },
      { registry: 'docker.io', baseUrl: 'https://shared', mirror: true, label: 'mirror https://shared' },
      { registry: 'docker.io', baseUrl: 'https://hub2/p', mirror: true, label: 'mirror https://hub2/p' },
      { registry: 'docker.io', baseUrl: 'https://registry-1.docker.io', mirror: false, label: 'registry docker.io' },
    ]);
    assert.deepEqual(
      endpointsFor(config, 'ghcr.io').map((e) => e.label),
      ['mirror https://gh/prefix', 'registry ghcr.io'],
    );
    assert.equal(endpointsFor(config, 'quay.io').length, 1, 'registry-mirrors are for Docker Hub only');
  });
});

describe('allowsPlainHttp', () => {
  it('answers for registries, mirror hosts and token servers alike', () => {
    const config = parse({ 'insecure-registries': ['myhost:5000', 'fd00::/8'], registries: { 'lan.example': { insecure: true, mirrors: [] } } });
    const cases: Array<[string, boolean]> = [
      ['localhost', true],
      ['localhost:5000', true],
      ['127.0.0.1:1', true],
      ['[::1]:5000', true],
      ['myhost:5000', true],
      ['MYHOST:5000', true],
      ['myhost', false],
      ['lan.example', true],
      ['[fd00::5]:5000', true],
      ['[fe80::5]:5000', false],
      ['docker.io', false],
      ['registry-1.docker.io', false],
      ['not a host', false],
    ];
    for (const [host, allowed] of cases) assert.equal(allowsPlainHttp(config, host), allowed, host);
  });
});
