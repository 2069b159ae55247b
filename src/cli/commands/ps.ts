import type { ArgumentsCamelCase, Argv } from 'yargs';
import { diskUsage } from '../../store/layer-store.js';
import { LAYERFS_FSTYPE, readMounts } from '../../mount/mountinfo.js';
import { RunDir, defaultRunDir, processAlive } from '../../mount/run-dir.js';
import { humanSize, table } from '../format.js';
import { type StoreArgs, openStore, withStoreOption } from '../store-option.js';
import type { CommandImplementation } from '../lazy-command.js';

interface PsArgs extends StoreArgs {
  all: boolean;
  format: 'table' | 'json';
  runDir?: string;
}

type MountStatus = 'serving' | 'stale' | 'unmounted';

/** `layerfs ps`: its options and what it does (usage and summary: ./index.ts). */
export const psCommand: CommandImplementation<PsArgs> = {
  builder: (y: Argv) =>
    withStoreOption(
      y
        .option('all', { alias: 'a', type: 'boolean', default: false, describe: 'also writable layers that are not mounted' })
        .option('format', { choices: ['table', 'json'] as const, default: 'table' as const })
        .option('run-dir', { type: 'string', describe: 'where mount state lives (default /run/layerfs)' }),
    ) as unknown as Argv<PsArgs>,
  handler: async (args: ArgumentsCamelCase<PsArgs>) => {
    const store = await openStore(args);
    const runDir = new RunDir(args.runDir ?? defaultRunDir(process.env, process.getuid?.() ?? 0));
    const mounted = new Set((await readMounts()).filter((m) => m.fstype === LAYERFS_FSTYPE).map((m) => m.mountpoint));
    const status = (pid: number | undefined, mountpoint: string | undefined): MountStatus => {
      if (mountpoint === undefined || !mounted.has(mountpoint)) return 'unmounted';
      return pid !== undefined && processAlive(pid) ? 'serving' : 'stale';
    };
    /** A writable layer's state: its pid is cleared when its mount ends, and only its daemon's mount is its own. */
    const layerStatus = async (pid: number | undefined, mountpoint: string | undefined): Promise<MountStatus> => {
      if (pid === undefined || mountpoint === undefined) return 'unmounted';
      const owner = await runDir.readState(mountpoint);
      if (owner !== undefined && owner.pid !== pid) return 'unmounted'; // another daemon's mount is there now
      return status(pid, mountpoint);
    };
    const rows = [];
    for (const c of await store.containers.list()) {
      const state = await layerStatus(c.pid, c.mountpoint);
      if (state === 'unmounted' && !args.all) continue;
      rows.push({
        name: c.name,
        image: c.image.ref,
        digest: c.image.digest,
        mountpoint: state === 'unmounted' ? undefined : c.mountpoint,
        pid: state === 'serving' ? c.pid : undefined,
        state,
        size: await diskUsage(c.upper).catch(() => 0),
      });
    }
    // Read-only image mounts have no writable layer; the daemon's state file tells about them.
    for (const s of await runDir.listStates()) {
      if (s.image === undefined || s.container !== undefined) continue;
      const state = status(s.pid, s.mountpoint);
      if (state === 'unmounted') continue;
      rows.push({ name: '(read-only)', image: s.image.ref, digest: s.image.digest, mountpoint: s.mountpoint, pid: state === 'serving' ? s.pid : undefined, state, size: 0 });
    }
    if (args.format === 'json') {
      process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      return;
    }
    process.stdout.write(
      table(
        ['NAME', 'IMAGE', 'DIGEST', 'MOUNTPOINT', 'PID', 'STATE', 'SIZE'],
        rows.map((r) => [r.name, r.image, r.digest.slice(7, 19), r.mountpoint ?? '-', r.pid === undefined ? '-' : String(r.pid), r.state, humanSize(r.size)]),
      ),
    );
  },
};
