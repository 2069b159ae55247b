// Source strings, split the way skopeo's transports are (see src/source/spec.ts for the rules).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSourceSpec, type SourceSpec } from '../../src/source/spec.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('parseSourceSpec', () => {
  const valid: Array<[string, SourceSpec]> = [
    // oci: the reference follows the last ':' unless that part has a '/'
    ['oci:/srv/layout', { kind: 'oci', path: '/srv/layout' }],
    ['oci:/srv/layout:v1', { kind: 'oci', path: '/srv/layout', reference: 'v1' }],
    ['oci:relative/dir:1.0', { kind: 'oci', path: 'relative/dir', reference: '1.0' }],
    ['oci:/srv/a:b/layout', { kind: 'oci', path: '/srv/a:b/layout' }],
    ['oci:/srv/a:b/layout:tag', { kind: 'oci', path: '/srv/a:b/layout', reference: 'tag' }],
    ['oci:/srv/a:b/', { kind: 'oci', path: '/srv/a:b/' }],
    ['oci:/srv/a:b', { kind: 'oci', path: '/srv/a', reference: 'b' }],
    ['oci:.', { kind: 'oci', path: '.' }],
    [`oci:/srv/layout:${DIGEST}`, { kind: 'oci', path: '/srv/layout', reference: DIGEST }],
    // docker-archive: the reference is everything after the first ':'
    ['docker-archive:/tmp/a.tar', { kind: 'docker-archive', path: '/tmp/a.tar' }],
    ['docker-archive:/tmp/a.tar:busybox:latest', { kind: 'docker-archive', path: '/tmp/a.tar', reference: 'busybox:latest' }],
    ['docker-archive:/tmp/a.tar:busybox', { kind: 'docker-archive', path: '/tmp/a.tar', reference: 'busybox' }],
    ['docker-archive:a.tar:localhost:5000/app:1', { kind: 'docker-archive', path: 'a.tar', reference: 'localhost:5000/app:1' }],
    ['docker-archive:/tmp/a.tar:@1', { kind: 'docker-archive', path: '/tmp/a.tar', reference: '@1' }],
    // registry references, as they are
    ['busybox', { kind: 'registry', reference: 'busybox' }],
    ['busybox:1.36', { kind: 'registry', reference: 'busybox:1.36' }],
    ['localhost:5000/app:1', { kind: 'registry', reference: 'localhost:5000/app:1' }],
    [`ghcr.io/o/app@${DIGEST}`, { kind: 'registry', reference: `ghcr.io/o/app@${DIGEST}` }],
    ['ocifoo/bar', { kind: 'registry', reference: 'ocifoo/bar' }],
    ['docker://quay.io/a/b:1', { kind: 'registry', reference: 'quay.io/a/b:1' }],
  ];
  for (const [input, expected] of valid) {
    it(`parses ${input}`, () => assert.deepEqual(parseSourceSpec(input), expected));
  }

  const invalid: Array<[string, string]> = [
    ['', 'ERR_REFERENCE_INVALID'],
    ['oci:', 'ERR_REFERENCE_INVALID'],
    ['oci::tag', 'ERR_REFERENCE_INVALID'],
    ['oci:/srv/layout:', 'ERR_REFERENCE_INVALID'],
    ['docker-archive:', 'ERR_REFERENCE_INVALID'],
    ['docker-archive::busybox', 'ERR_REFERENCE_INVALID'],
    ['docker-archive:/tmp/a.tar:', 'ERR_REFERENCE_INVALID'],
    ['docker://', 'ERR_REFERENCE_INVALID'],
    ['oci-archive:/tmp/a.tar', 'ERR_UNSUPPORTED'],
    ['dir:/tmp/x', 'ERR_UNSUPPORTED'],
    ['containers-storage:busybox', 'ERR_UNSUPPORTED'],
  ];
  for (const [input, code] of invalid) {
    it(`refuses ${JSON.stringify(input)}`, () => {
      assert.throws(() => parseSourceSpec(input), (err: Error & { code?: string }) => err.code === code);
    });
  }
});
