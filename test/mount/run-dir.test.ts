// The run directory's mount records (src/mount/run-dir.ts), on a real directory.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { RunDir } from '../../src/mount/run-dir.js';
import { TempDirs } from '../helpers/tmp.js';

describe('RunDir', () => {
  const tmp = new TempDirs();
  after(() => tmp.cleanup());

  it('lists written states, and drops state files half-written by processes that are gone', async () => {
    const runDir = new RunDir(await tmp.make('run-dir'));
    const state = { pid: process.pid, mountpoint: '/mnt/x', lowers: ['/l'], startedAt: new Date(0).toISOString() };
    await runDir.writeState(state);
    const mounts = join(runDir.root, 'mounts');
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!; // exited by now
    const orphan = join(mounts, `0123456789abcdef.json.${gone}.tmp`);
    const inProgress = join(mounts, `fedcba9876543210.json.${process.pid}.tmp`);
    await fs.writeFile(orphan, '{"pid": 1');
    await fs.writeFile(inProgress, '{"pid": 2');

    assert.deepEqual(await runDir.listStates(), [state]);
    assert.deepEqual((await fs.readdir(mounts)).sort(), [`${runDir.statePath('/mnt/x').split('/').pop()}`, inProgress.split('/').pop()].sort());
  });
});
