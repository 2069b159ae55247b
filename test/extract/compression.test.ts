// Inputs: plain, gzip and zstd tars, media types that lie, digests, diffIDs and sizes checked at
// the end of the stream, corrupt and truncated compressed streams.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { compressionOfMediaType, sniffCompression } from '../../src/extract/decompress.js';
import { isLayerError } from '../../src/extract/errors.js';
import { extractLayer } from '../../src/extract/extract-layer.js';
import { dir, file, gzip, packTar, symlink, zstd } from '../helpers/tar-builder.js';
import { TempDirs } from '../helpers/tmp.js';
import { dumpTree, extractBuffer, extractError } from './support.js';

const temps = new TempDirs();
after(() => temps.cleanup());

const sha256 = (data: Buffer): `sha256:${string}` => `sha256:${createHash('sha256').update(data).digest('hex')}`;

const TAR = await packTar([
  dir('etc'),
  file('etc/hostname', 'layerfs\n'),
  file('bin/data', Buffer.alloc(2 * 1024 * 1024 + 3, 0x33)),
  symlink('bin/sh', 'busybox'),
]);

const MEDIA = {
  tar: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  docker: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
};

describe('formats', () => {
  const blobs = { none: TAR, gzip: gzip(TAR), zstd: zstd(TAR) } as const;

  for (const [compression, blob] of Object.entries(blobs)) {
    it(`${compression}: same tree, digest of the blob, diffID of the tar`, async () => {
      const { dir: root, result } = await extractBuffer(temps, blob);
      assert.equal(result.compression, compression);
      assert.equal(result.diffId, sha256(TAR));
      assert.equal(result.digest, sha256(blob));
      assert.equal(result.compressedSize, blob.length);
      assert.equal(result.uncompressedSize, TAR.length);
      assert.equal(result.entries, 4);
      assert.equal(readFileSync(join(root, 'etc/hostname'), 'utf8'), 'layerfs\n');
      const plain = await extractBuffer(temps, TAR);
      assert.deepEqual(dumpTree(root), dumpTree(plain.dir));
    });
  }

  for (const [actual, claimed] of [
    ['gzip', MEDIA.zstd],
    ['zstd', MEDIA.gzip],
    ['none', MEDIA.docker],
    ['gzip', MEDIA.tar],
  ] as const) {
    it(`a ${actual} blob whose media type says ${claimed}: the bytes win`, async () => {
      const { result } = await extractBuffer(temps, blobs[actual], { mediaType: claimed });
      assert.equal(result.compression, actual);
      assert.equal(result.diffId, sha256(TAR));
    });
  }

  it('media types and magic bytes', () => {
    assert.equal(compressionOfMediaType(MEDIA.gzip), 'gzip');
    assert.equal(compressionOfMediaType(MEDIA.docker), 'gzip');
    assert.equal(compressionOfMediaType(MEDIA.zstd), 'zstd');
    assert.equal(compressionOfMediaType(MEDIA.tar), 'none');
    assert.equal(compressionOfMediaType('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip'), 'gzip');
    assert.equal(sniffCompression(Buffer.from('BZh91AY')), 'bzip2');
    assert.equal(sniffCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), 'xz');
    assert.equal(sniffCompression(Buffer.from([0x50, 0x2a, 0x4d, 0x18, 0, 0])), 'zstd');
  });

  it('concatenated gzip members and zstd frames (parallel compressors) are one stream', async () => {
    const half = 512 * 3;
    const gz = Buffer.concat([gzip(TAR.subarray(0, half)), gzip(TAR.subarray(half))]);
    const zs = Buffer.concat([zstd(TAR.subarray(0, half)), zstd(TAR.subarray(half))]);
    for (const blob of [gz, zs]) {
      const { result } = await extractBuffer(temps, blob);
      assert.equal(result.diffId, sha256(TAR));
    }
  });

  it('a zstd skippable frame before the data is passed over', async () => {
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0]), Buffer.from('meta')]);
    const { result } = await extractBuffer(temps, Buffer.concat([skippable, zstd(TAR)]));
    assert.equal(result.compression, 'zstd');
    assert.equal(result.diffId, sha256(TAR));
  });

  it('bzip2 and xz layers are refused', async () => {
    for (const head of [Buffer.from('BZh91AY&SY'), Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0])]) {
      const err = await extractError(temps, Buffer.concat([head, Buffer.alloc(100)]));
      assert.ok(isLayerError(err, 'ERR_LAYER_UNSUPPORTED'), String(err));
    }
  });

  it('empty layers: a 0-byte blob and an empty gzip-compressed tar', async () => {
    for (const blob of [Buffer.alloc(0), gzip(Buffer.alloc(1024))]) {
      const { result } = await extractBuffer(temps, blob);
      assert.equal(result.entries, 0);
    }
  });

  it('chunks of one byte', async () => {
    const blob = gzip(await packTar([file('a', 'one byte at a time')]));
    const layer = await temps.make('bytes');
    const stream = Readable.from((function* () {
      for (const byte of blob) yield Buffer.from([byte]);
    })());
    const result = await extractLayer(stream, layer);
    assert.equal(result.entries, 1);
    assert.equal(readFileSync(join(layer, 'a'), 'utf8'), 'one byte at a time');
  });
});

describe('verification at the end of the stream', () => {
  const blob = gzip(TAR);

  it('matching digest, diffID and size pass', async () => {
    await extractBuffer(temps, blob, { expectedDigest: sha256(blob), expectedDiffId: sha256(TAR), expectedSize: blob.length });
  });

  it('digests are compared case-insensitively', async () => {
    await extractBuffer(temps, blob, { expectedDigest: sha256(blob).toUpperCase().replace('SHA256', 'sha256') as `sha256:${string}` });
  });

  it('a wrong digest fails with ERR_LAYER_DIGEST_MISMATCH', async () => {
    const err = await extractError(temps, blob, { expectedDigest: sha256(Buffer.from('other')) });
    assert.ok(isLayerError(err, 'ERR_LAYER_DIGEST_MISMATCH'), String(err));
    assert.ok(err.message.includes(sha256(blob)), err.message);
  });

  it('a wrong diffID fails with ERR_LAYER_DIFFID_MISMATCH, after the whole stream', async () => {
    const err = await extractError(temps, blob, { expectedDiffId: sha256(blob) });
    assert.ok(isLayerError(err, 'ERR_LAYER_DIFFID_MISMATCH'), String(err));
  });

  it('a short blob fails with ERR_LAYER_SIZE_MISMATCH', async () => {
    const err = await extractError(temps, blob, { expectedSize: blob.length + 1 });
    assert.ok(isLayerError(err, 'ERR_LAYER_SIZE_MISMATCH'), String(err));
  });

  it('a long blob fails as soon as it exceeds the expected size', async () => {
    const err = await extractError(temps, blob, { expectedSize: 100 });
    assert.ok(isLayerError(err, 'ERR_LAYER_SIZE_MISMATCH'), String(err));
  });

  it('a malformed expected digest is an error, not a silent pass', async () => {
    const err = await extractError(temps, blob, { expectedDigest: 'sha256:abc' });
    assert.ok(isLayerError(err, 'ERR_LAYER_DIGEST_MISMATCH'), String(err));
  });
});

describe('corrupt compressed streams', () => {
  it('truncated gzip', async () => {
    const blob = gzip(TAR);
    const err = await extractError(temps, blob.subarray(0, blob.length - 100));
    assert.ok(isLayerError(err, 'ERR_LAYER_CORRUPT'), String(err));
  });

  it('gzip with flipped bytes', async () => {
    const blob = Buffer.from(gzip(TAR));
    for (let i = 100; i < 140; i++) blob[i] = blob[i]! ^ 0x5a;
    const err = await extractError(temps, blob);
    assert.ok(isLayerError(err, 'ERR_LAYER_CORRUPT'), String(err));
  });

  it('gzip with trailing garbage', async () => {
    const err = await extractError(temps, Buffer.concat([gzip(TAR), Buffer.from('garbage')]));
    assert.ok(isLayerError(err, 'ERR_LAYER_CORRUPT'), String(err));
  });

  it('truncated zstd', async () => {
    const blob = zstd(TAR);
    const err = await extractError(temps, blob.subarray(0, blob.length - 10));
    assert.ok(isLayerError(err, 'ERR_LAYER_CORRUPT'), String(err));
  });

  it('zstd with garbage after the magic', async () => {
    const blob = Buffer.from(zstd(TAR));
    blob.fill(0xee, 4, 40);
    const err = await extractError(temps, blob);
    assert.ok(isLayerError(err, 'ERR_LAYER_CORRUPT'), String(err));
  });

  it('a zstd frame that asks for a 2 GiB window is refused (memory bound)', async () => {
    // Frame header: magic, descriptor 0x00 (a window descriptor follows, no content size), window
    // descriptor 0xa8 (exponent 21: window 2^(10+21) = 2 GiB), then an empty last raw block.
    const frame = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa8, 0x01, 0x00, 0x00]);
    const err = await extractError(temps, frame);
    assert.ok(isLayerError(err, 'ERR_LAYER_CORRUPT'), String(err));
  });
});
