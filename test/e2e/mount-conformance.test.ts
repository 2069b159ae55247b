// The conformance table against a REAL FUSE mount: the layerfs daemon runs in a child process
// (test/helpers/mount.ts), this process only uses the mount through the kernel.
// Needs root, /dev/fuse and the CLI (`bin/layerfs.js mount ...`).
import { describe, it } from 'node:test';
import { unionCases, runUnionCase, type WithClient } from '../conformance/union-cases.js';
import { MountClient } from '../helpers/clients.js';
import { withMount } from '../helpers/mount.js';
import { TempDirs } from '../helpers/tmp.js';

const withFuseMount: WithClient = async (stack, fn) => {
  const mountpoint = await TempDirs.sub(stack.scratch, 'mnt');
  await withMount({ lowers: stack.lowers, upper: stack.upper, workdir: stack.workdir, mountpoint }, (mnt) =>
    fn(new MountClient(mnt)),
  );
};

describe('union conformance: FUSE mount', () => {
  for (const kase of unionCases) {
    it(kase.name, { todo: kase.mountLimit }, () => runUnionCase(kase, withFuseMount, { checkWorkdirEmpty: false }));
  }
});
