// Runs on `npm install` (root package script): builds our N-API addon, the patched
// fuse-native binding and, if missing, zstd-napi's binding. Each step lives in its own
// script under scripts/native/.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const steps = ['build-addon.mjs', 'patch-fuse-native.mjs', 'build-zstd.mjs'];

for (const step of steps) {
  const script = join(here, 'native', step);
  if (!existsSync(script)) continue;
  const result = spawnSync(process.execPath, [script], { stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`layerfs: native build step ${step} failed (exit ${result.status ?? result.signal})`);
    process.exit(1);
  }
}
