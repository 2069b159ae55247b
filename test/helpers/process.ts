// Small waits and checks the end-to-end suites share: polling for a condition, and whether a
// tool is installed.
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

export { processAlive as alive } from '../../src/proc.js';

/** Polls `cond` until it holds; fails naming `what` after `ms`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Whether an executable named `tool` is on the PATH. */
export function onPath(tool: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => {
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
