#!/usr/bin/env node
// Writes a small three-layer tree (as extracted OCI layers look on disk) for the quick start:
// files replaced and added per layer, an OCI whiteout and an opaque directory.
//   node scripts/make-sample-layers.mjs DIR   ->  DIR/base, DIR/mid, DIR/top
import { mkdirSync, writeFileSync, symlinkSync, existsSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';

const root = process.argv[2];
if (!root) {
  console.error('usage: make-sample-layers.mjs DIR');
  process.exit(2);
}
if (existsSync(root) && readdirSync(root).length > 0) {
  console.error(`make-sample-layers: ${root} is not empty`);
  process.exit(1);
}

const layers = {
  base: {
    'etc/os-release': 'NAME="layerfs sample"\nVERSION="1"\n',
    'etc/motd': 'Welcome (from the base layer)\n',
    'usr/share/doc/readme.txt': 'base documentation\n',
    'var/cache/app/stale-1.bin': 'stale cache entry 1\n',
    'var/cache/app/stale-2.bin': 'stale cache entry 2\n',
    'opt/tool/v1.txt': 'tool version 1\n',
  },
  mid: {
    'etc/motd': 'Welcome (replaced by the mid layer)\n',
    'usr/share/doc/.wh.readme.txt': '', // whiteout: deletes base's readme
    'usr/share/doc/guide.txt': 'mid guide\n',
    'opt/tool/.wh..wh..opq': '', // opaque: nothing of base's opt/tool shows
    'opt/tool/v2.txt': 'tool version 2\n',
  },
  top: {
    'etc/hostname': 'layerfs-demo\n',
    'var/cache/app/.wh.stale-1.bin': '',
    'srv/hello.txt': 'hello from the top layer\n',
  },
};

for (const [name, files] of Object.entries(layers)) {
  const layerDir = join(root, name);
  mkdirSync(layerDir, { recursive: true });
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(layerDir, path)), { recursive: true });
    writeFileSync(join(layerDir, path), content);
  }
}
symlinkSync('../srv/hello.txt', join(root, 'top', 'etc', 'hello-link'));
console.log(`sample layers written to ${root} (top first: top, mid, base)`);
