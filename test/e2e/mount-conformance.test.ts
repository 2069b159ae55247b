// The conformance table against a REAL FUSE mount: the layerfs daemon runs in a child process
// (test/helpers/mount.ts), this process only uses the mount through the kernel.
// Needs root, /dev/fuse and the CLI (`bin/layerfs.js mount ...`, `bin/layerfs-overlay.js`).
//
// Every case through `layerfs mount` (OCI-form upper); the writable ones again through the mount
// program `layerfs-overlay` (overlay-form upper, options as containers/storage passes them).
import { describe, it } from 'node:test';
import type { UpperFormat } from '../../src/union/upper-writer.js';
import { unionCases, runUnionCase, type WithClient } from '../conformance/union-cases.js';
import { MountClient } from '../helpers/clients.js';
import { withMount } from '../helpers/mount.js';
import { TempDirs } from '../helpers/tmp.js';

const withFuseMount =
  (upperFormat: UpperFormat): WithClient =>
  async (stack, fn) => {
    const mountpoint = await TempDirs.sub(stack.scratch, 'mnt');
    const mounter = upperFormat === 'overlay' ? 'layerfs-overlay' : 'layerfs';
    await withMount({ lowers: stack.lowers, upper: stack.upper, workdir: stack.workdir, mountpoint, mounter }, (mnt) =>
      fn(new MountClient(mnt)),
    );
  };

for (const upperFormat of ['oci', 'overlay'] as const) {
  describe(upperFormat === 'oci' ? 'union conformance: FUSE mount' : 'union conformance: FUSE mount by layerfs-overlay, overlay upper', () => {
    for (const kase of unionCases) {
      if (upperFormat === 'overlay' && !kase.writable) continue;
      it(kase.name, () => runUnionCase(kase, withFuseMount(upperFormat), { checkWorkdirEmpty: false, upperFormat }));
    }
  });
}
