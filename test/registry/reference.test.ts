// Image references: Docker's normalisation rules, canonical formatting, and an error that names
// the problem for each kind of invalid input.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Digest } from '../../src/oci/digest.js';
import { isRegistryError } from '../../src/registry/errors.js';
import {
  apiHost,
  formatReference,
  isLoopbackRegistry,
  manifestReference,
  normalizeRegistry,
  parseReference,
  parseRepository,
  registryHostname,
  repositoryName,
} from '../../src/registry/reference.js';

const D: Digest = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  const valid: Array<[input: string, canonical: string]> = [
    ['ubuntu', 'docker.io/library/ubuntu:latest'],
    ['ubuntu:22.04', 'docker.io/library/ubuntu:22.04'],
    ['user/app', 'docker.io/user/app:latest'],
    ['docker.io/ubuntu', 'docker.io/library/ubuntu:latest'],
    ['docker.io/library/ubuntu:1', 'docker.io/library/ubuntu:1'],
    ['index.docker.io/ubuntu', 'docker.io/library/ubuntu:latest'],
    ['registry-1.docker.io/user/app:v1', 'docker.io/user/app:v1'],
    ['Docker.IO/user/app', 'docker.io/user/app:latest'],
    ['localhost/a', 'localhost/a:latest'],
    ['localhost:5000/a', 'localhost:5000/a:latest'],
    ['localhost:5000/a:b', 'localhost:5000/a:b'],
    ['127.0.0.1:5000/a/b:c', '127.0.0.1:5000/a/b:c'],
    ['[::1]:5000/a', '[::1]:5000/a:latest'],
    ['[::1]/a', '[::1]/a:latest'],
    ['[fe80::1]:5000/a:b', '[fe80::1]:5000/a:b'],
    ['ghcr.io/org/app:1.2.3', 'ghcr.io/org/app:1.2.3'],
    ['a/b/c/d:tag', 'docker.io/a/b/c/d:tag'],
    ['host.example/a/b/c/d:tag', 'host.example/a/b/c/d:tag'],
    ['MyHost/app', 'MyHost/app:latest'], // uppercase first component: a host, as in Docker
    [`ubuntu@${D}`, `docker.io/library/ubuntu@${D}`],
    [`ubuntu:22.04@${D}`, `docker.io/library/ubuntu:22.04@${D}`],
    [`host:5000/a/b@${D}`, `host:5000/a/b@${D}`],
    ['ab-c__d/e--f.g_h', 'docker.io/ab-c__d/e--f.g_h:latest'],
    ['app:V1_x.Y-z', 'docker.io/library/app:V1_x.Y-z'],
    ['localhost:5000', 'docker.io/library/localhost:5000'], // no '/': the ':' starts a tag, as in Docker
    [`a:${'t'.repeat(128)}`, `docker.io/library/a:${'t'.repeat(128)}`],
  ];
  for (const [input, canonical] of valid) {
    it(`${input} → ${canonical}`, () => {
      assert.equal(formatReference(parseReference(input)), canonical);
      assert.equal(formatReference(parseReference(canonical)), canonical, 'the canonical form parses to itself');
    });
  }

  const invalid: Array<[input: string, problem: RegExp]> = [
    ['', /it is empty/],
    [':tag', /repository name is missing/],
    [`@${D}`, /repository name is missing/],
    ['Foo', /^invalid reference "Foo": repository name must be lowercase$/],
    ['user/App', /must be lowercase/],
    ['ghcr.io/Org/app', /must be lowercase/],
    ['a@sha256:short', /invalid digest "sha256:short": expected "sha256:" and 64 lowercase hexadecimal digits/],
    [`a@sha256:${'A'.repeat(64)}`, /invalid digest/],
    [`a@sha512:${'a'.repeat(128)}`, /digest algorithm "sha512" is not supported \(only sha256 is\)/],
    ['a@', /invalid digest ""/],
    ['a/', /must not end with '\/'/],
    ['ghcr.io/org/', /must not end with '\/'/],
    ['a//b', /empty component/],
    ['/a', /empty component/],
    ['ubuntu:', /the tag after ':' is empty/],
    [`a:${'t'.repeat(129)}`, /the tag is longer than 128 characters/],
    ['a:.x', /invalid tag "\.x"/],
    ['a:-x', /invalid tag "-x"/],
    ['a:x!y', /invalid tag "x!y"/],
    ['a-/b', /invalid repository name component "a-"/],
    ['a_/b', /invalid repository name component "a_"/],
    ['a___b', /invalid repository name component "a___b"/],
    ['ubu ntu', /invalid repository name component "ubu ntu"/],
    ['fe80::1/a', /IPv6 addresses must be written in brackets/],
    ['[fe80::1/a', /closing '\]'/],
    ['[zz::1]:5000/a', /"zz::1" is not an IPv6 address/],
    ['[::1]x/a', /expected ':port'/],
    ['host:99999/a', /"99999" is not a port number/],
    ['host:/a', /"" is not a port number/],
    ['-host.io/a', /invalid registry host "-host.io"/],
    ['ho_st.io/a', /invalid registry host "ho_st.io"/],
    ['a'.repeat(64), /64 hexadecimal digits/],
    [`ghcr.io/${'a'.repeat(250)}`, /longer than 255 characters/],
    [`${'a'.repeat(250)}`, /longer than 255 characters/], // docker.io/library/ counts too
  ];
  for (const [input, problem] of invalid) {
    it(`rejects ${JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input)}`, () => {
      assert.throws(
        () => parseReference(input),
        (err: unknown) => {
          assert.ok(isRegistryError(err, 'ERR_REFERENCE_INVALID'), String(err));
          assert.ok(err.message.startsWith(`invalid reference ${JSON.stringify(input)}: `), err.message);
          assert.match(err.message, problem);
          return true;
        },
      );
    });
  }

  it('defaults the tag to latest only when neither tag nor digest is given', () => {
    assert.deepEqual(parseReference('ubuntu'), { registry: 'docker.io', repository: 'library/ubuntu', tag: 'latest' });
    assert.deepEqual(parseReference(`ubuntu@${D}`), { registry: 'docker.io', repository: 'library/ubuntu', digest: D });
    assert.deepEqual(parseReference(`ghcr.io/o/a:1@${D}`), { registry: 'ghcr.io', repository: 'o/a', tag: '1', digest: D });
  });

  it('accepts a name of exactly 255 characters', () => {
    const path = 'a'.repeat(255 - 'ghcr.io/'.length);
    assert.equal(repositoryName(parseReference(`ghcr.io/${path}`)).length, 255);
  });
});

describe('parseRepository', () => {
  it('normalises like a reference, without a tag', () => {
    assert.deepEqual(parseRepository('ubuntu'), { registry: 'docker.io', repository: 'library/ubuntu' });
    assert.deepEqual(parseRepository('localhost:5000/a/b'), { registry: 'localhost:5000', repository: 'a/b' });
  });
  it('rejects a tag or a digest, and invalid names, saying "repository"', () => {
    assert.throws(() => parseRepository('ubuntu:22.04'), {
      code: 'ERR_REFERENCE_INVALID',
      message: 'invalid repository "ubuntu:22.04": expected a repository name without a tag or digest, but a tag is given',
    });
    assert.throws(() => parseRepository(`ubuntu@${D}`), { code: 'ERR_REFERENCE_INVALID', message: /but a digest is given/ });
    assert.throws(() => parseRepository('Foo'), { message: 'invalid repository "Foo": repository name must be lowercase' });
  });
});

describe('formatting and helpers', () => {
  it('formats tag and digest together, and names the repository', () => {
    const ref = { registry: 'r', repository: 'x', tag: 'tag', digest: D } as const;
    assert.equal(formatReference(ref), `r/x:tag@${D}`);
    assert.equal(repositoryName(ref), 'r/x');
  });
  it('fetches by digest when there is one', () => {
    assert.equal(manifestReference(parseReference(`a:1@${D}`)), D);
    assert.equal(manifestReference(parseReference('a:1')), '1');
    assert.equal(manifestReference({ registry: 'r', repository: 'x' }), 'latest');
  });
  it('knows where Docker Hub lives', () => {
    assert.equal(apiHost('docker.io'), 'registry-1.docker.io');
    assert.equal(apiHost('ghcr.io'), 'ghcr.io');
    assert.equal(apiHost('localhost:5000'), 'localhost:5000');
  });
  it('normalizeRegistry folds aliases and rejects non-hosts', () => {
    assert.equal(normalizeRegistry('Index.Docker.io'), 'docker.io');
    assert.equal(normalizeRegistry('GHCR.io'), 'ghcr.io');
    assert.equal(normalizeRegistry('[::1]:5000'), '[::1]:5000');
    assert.equal(normalizeRegistry('https://ghcr.io'), undefined);
    assert.equal(normalizeRegistry('ghcr.io/x'), undefined);
    assert.equal(normalizeRegistry(''), undefined);
  });
  it('registryHostname drops the port and IPv6 brackets', () => {
    assert.equal(registryHostname('host:5000'), 'host');
    assert.equal(registryHostname('host'), 'host');
    assert.equal(registryHostname('[fe80::1]:5000'), 'fe80::1');
    assert.equal(registryHostname('[::1]'), '::1');
  });
});

describe('isLoopbackRegistry', () => {
  const cases: Array<[string, boolean]> = [
    ['localhost', true],
    ['localhost:5000', true],
    ['LocalHost:5000', true],
    ['127.0.0.1', true],
    ['127.0.0.1:5000', true],
    ['127.255.3.4:80', true],
    ['[::1]', true],
    ['[::1]:5000', true],
    ['[0:0:0:0:0:0:0:1]:5000', true],
    ['::1', false], // unbracketed IPv6 is not a registry name
    ['128.0.0.1:5000', false],
    ['10.0.0.1', false],
    ['localhost.example.com', false],
    ['mylocalhost:5000', false],
    ['[fe80::1]:5000', false],
    ['docker.io', false],
    ['127.0.0.1.nip.io', false],
  ];
  for (const [registry, loopback] of cases) {
    it(`${registry} → ${loopback}`, () => assert.equal(isLoopbackRegistry(registry), loopback));
  }
});
