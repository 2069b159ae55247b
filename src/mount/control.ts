import { promises as fsp } from 'node:fs';
import { type Server, type Socket, createConnection, createServer } from 'node:net';
import { dirname } from 'node:path';
import { log } from '../log.js';
import type { UnionFs } from '../union/types.js';

/**
 * A mount daemon's control socket (one Unix socket per mount, in the run directory, root only).
 * One request today: `freeze`, answered `frozen` once the upper is consistent; it stays frozen
 * until the client says `thaw` or goes away, so a client that dies cannot leave the mount stuck.
 */
export async function listenForControl(path: string, engine: UnionFs): Promise<Server> {
  await fsp.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await fsp.rm(path, { force: true });
  const server = createServer((socket) => handleClient(socket, engine));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  await fsp.chmod(path, 0o600);
  server.unref();
  return server;
}

function handleClient(socket: Socket, engine: UnionFs): void {
  let thaw: (() => void) | undefined;
  let buffered = '';
  const release = () => {
    thaw?.();
    thaw = undefined;
  };
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => {
    buffered += text;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const command = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (command === 'freeze' && thaw === undefined) {
        void engine.freeze().then(
          (fn) => {
            thaw = fn;
            if (socket.destroyed) release();
            else socket.write('frozen\n');
          },
          (err: Error) => socket.end(`error ${err.message}\n`),
        );
      } else if (command === 'thaw') {
        release();
        socket.write('thawed\n');
      } else {
        socket.write(`error unknown command ${JSON.stringify(command)}\n`);
      }
    }
  });
  socket.on('close', release);
  socket.on('error', (err) => {
    log.debug('control client error', { err: err.message });
    release();
  });
}

/** Runs `fn` while the mount behind the control socket `path` is frozen. */
export async function whileFrozen<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection(path, () => resolve(s));
    s.once('error', reject);
  });
  try {
    socket.setEncoding('utf8');
    const reply = await new Promise<string>((resolve, reject) => {
      let text = '';
      socket.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('\n')) resolve(text.trim());
      });
      socket.once('close', () => reject(new Error('the mount daemon closed its control socket')));
      socket.write('freeze\n');
    });
    if (reply !== 'frozen') throw new Error(`the mount daemon refused to freeze: ${reply}`);
    return await fn();
  } finally {
    socket.destroy();
  }
}
