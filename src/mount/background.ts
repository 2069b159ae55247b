import { UserError } from '../errors.js';
import { type DaemonProcess, startDaemonProcess, takePrestartedDaemonProcess } from './daemon-process.js';
import type { DaemonMessage, DaemonRequest } from './daemon-request.js';
import { RunDir } from './run-dir.js';

/** A mount daemon that has been started and waits for what to serve. */
export interface PendingDaemon {
  /** Sends the request; resolves with the mountpoint once the daemon reports the mount ready. */
  serve(request: DaemonRequest, timeoutMs?: number): Promise<string>;
  /** The caller gave up before sending a request: the daemon exits without doing anything. */
  cancel(): void;
}

/**
 * Starts a mount daemon (src/mount/daemon.ts), detached. It is started before the caller knows
 * what to mount, so that Node's start-up and the loading of the serving code overlap with the
 * caller's own work (parsing arguments, finding the image, preparing the writable layer); a mount
 * of a cached image is then ready in about the time of one process start instead of two. Until it
 * gets a request its stderr comes here (it points stderr at the mount's log when it does), and a
 * caller that exits without sending one ends it: the daemon leaves when its IPC channel closes.
 */
export function spawnDaemon(): PendingDaemon {
  return pendingDaemon(startDaemonProcess());
}

/** The daemon src/cli/main.ts started (`prestartDaemon`), if any (once): the caller serves or cancels it. */
export function takePrestartedDaemon(): PendingDaemon | undefined {
  const started = takePrestartedDaemonProcess();
  return started === undefined ? undefined : pendingDaemon(started);
}

function pendingDaemon({ child, earlyOutput, listening, exited }: DaemonProcess): PendingDaemon {
  const release = () => {
    child.removeAllListeners();
    child.stderr?.destroy();
    if (child.connected) child.disconnect();
  };
  return {
    async serve(request, timeoutMs = 60_000) {
      // (The log's name is a hash, worked out only for a failure: the first one costs ~4 ms.)
      const failure = (what: string) => {
        const early = earlyOutput().trim();
        const logFile = new RunDir(request.runDir).logPath(request.mountpoint);
        return new UserError(`${what}${early === '' ? '' : `:\n${early}`}\n(see ${logFile})`);
      };
      let timer: NodeJS.Timeout | undefined;
      try {
        return await new Promise<string>((resolve, reject) => {
          timer = setTimeout(() => {
            child.kill('SIGTERM');
            reject(failure(`the mount daemon did not become ready within ${timeoutMs / 1000} s`));
          }, timeoutMs);
          void exited.then((why) => reject(failure(why)));
          child.on('message', (message: DaemonMessage) => {
            if (message.type === 'ready') resolve(message.mountpoint);
            else if (message.type === 'error') reject(new UserError(message.message));
          });
          void listening.then(() => {
            if (!child.connected) return;
            child.send(request, (err) => {
              if (err !== null) reject(failure(`cannot reach the mount daemon: ${err.message}`));
            });
          });
        });
      } finally {
        clearTimeout(timer);
        release();
      }
    },
    cancel: release,
  };
}
