/**
 * zstd decompression on a worker thread, for Node versions whose zlib has no zstd (< 22.15).
 *
 * zstd-napi only decompresses synchronously, and on the JS thread it would serialize
 * decompression with everything else extraction does there (measured: twice GNU tar's time on a
 * zstd /usr layer). On a worker it runs in parallel, as gzip does on the thread pool.
 *
 * Data crosses threads through two rings of 1 MiB slots in shared memory (compressed input,
 * decompressed output); messages only say which slot holds how many bytes. Memory is therefore
 * fixed, whatever the compression ratio: a decompression bomb simply waits for free output slots,
 * which the consumer frees one chunk at a time. (Transferring buffers instead was measured: V8 does
 * not count transferred memory towards its GC pressure, and a zstd bomb grew the process by
 * ~100 MiB of garbage.) Frames may declare at most zstd's default window (2^27 = 128 MiB): larger
 * windows (zstd --long=31) are refused.
 *
 * Protocol:
 *   main -> worker  {op:'data', slot, length} | {op:'end'} | {op:'free', slot}   (an output slot)
 *   worker -> main  {op:'out', slot, length} | {op:'consumed', slot} (an input slot)
 *                   | {op:'done'} | {op:'error', message}
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { LayerError } from './errors.js';

const SLOT = 1024 * 1024;
const SLOTS = 4;

// CommonJS evaluated by the worker (no file to locate from src/ or dist/).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { DCtx } = require(workerData.bindingPath);
const { slot: SLOT, slots: SLOTS, input: inputRing, output: outputRing } = workerData;
const dctx = new DCtx();
const inputs = [];
const freeOutputs = Array.from({ length: SLOTS }, (_, i) => i);
let ended = false;
let wake = null;
parentPort.on('message', (m) => {
  if (m.op === 'data') inputs.push(m);
  else if (m.op === 'free') freeOutputs.push(m.slot);
  else if (m.op === 'end') ended = true;
  if (wake) { const w = wake; wake = null; w(); }
});
const next = () => new Promise((resolve) => { wake = resolve; });
const view = (ring, slot, length) => new Uint8Array(ring, slot * SLOT, length);
(async () => {
  let frameOpen = false;
  for (;;) {
    if (inputs.length === 0) {
      if (ended) break;
      await next();
      continue;
    }
    const { slot: inSlot, length } = inputs.shift();
    let input = view(inputRing, inSlot, length);
    for (;;) {
      while (freeOutputs.length === 0) await next();
      const outSlot = freeOutputs[0];
      const [hint, produced, consumed] = dctx.decompressStream(view(outputRing, outSlot, SLOT), input);
      input = input.subarray(consumed);
      frameOpen = hint !== 0;
      if (produced > 0) {
        freeOutputs.shift();
        parentPort.postMessage({ op: 'out', slot: outSlot, length: produced });
      }
      if (input.length === 0 && produced < SLOT) break;
      if (produced === 0 && consumed === 0) throw new Error('zstd decoder made no progress');
    }
    parentPort.postMessage({ op: 'consumed', slot: inSlot });
  }
  if (frameOpen) throw new Error('zstd stream ends in the middle of a frame (truncated)');
  parentPort.postMessage({ op: 'done' });
})().catch((err) => parentPort.postMessage({ op: 'error', message: String((err && err.message) || err) }));
`;

type FromWorker =
  | { op: 'out'; slot: number; length: number }
  | { op: 'consumed'; slot: number }
  | { op: 'done' }
  | { op: 'error'; message: string };

/** The resolved path of zstd-napi's binding module, or an ERR_LAYER_UNSUPPORTED error. */
export function zstdBindingPath(): string {
  try {
    const require = createRequire(import.meta.url);
    const path = require.resolve('zstd-napi/binding');
    require(path); // fails here, with a clear message, if the native part was never built
    return path;
  } catch (cause) {
    throw new LayerError(
      'ERR_LAYER_UNSUPPORTED',
      'zstd layer, but no zstd decoder: this Node has no zlib zstd and zstd-napi is not built ' +
        '(run `node scripts/native/build-zstd.mjs`)',
      { cause },
    );
  }
}

/** Decompresses a zstd stream on a worker thread; yields the output in order. */
export async function* zstdWorkerDecompress(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const input = new SharedArrayBuffer(SLOT * SLOTS);
  const output = new SharedArrayBuffer(SLOT * SLOTS);
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    execArgv: [], // the source is CommonJS whatever flags (--input-type, loaders) this process has
    workerData: { bindingPath: zstdBindingPath(), slot: SLOT, slots: SLOTS, input, output },
  });
  const freeInputs = Array.from({ length: SLOTS }, (_, i) => i);
  const outputs: Array<{ slot: number; length: number }> = [];
  let finished = false;
  let failure: unknown;
  // Both the feeder and the output loop below may be waiting for the worker.
  let waiters: Array<() => void> = [];
  const notify = (): void => {
    const woken = waiters;
    waiters = [];
    for (const wake of woken) wake();
  };
  const changed = (): Promise<void> => new Promise((resolve) => waiters.push(resolve));
  worker.on('message', (m: FromWorker) => {
    if (m.op === 'out') outputs.push(m);
    else if (m.op === 'consumed') freeInputs.push(m.slot);
    else if (m.op === 'done') finished = true;
    else failure ??= new LayerError('ERR_LAYER_CORRUPT', `zstd decompression failed: ${m.message}`);
    notify();
  });
  worker.on('error', (err) => {
    failure ??= new LayerError('ERR_LAYER_CORRUPT', `zstd decompression failed: ${err.message}`, { cause: err });
    notify();
  });

  let stopped = false;
  // Feeds the worker while the loop below hands out what it produced.
  const feeding = (async () => {
    try {
      for await (const chunk of source) {
        for (let offset = 0; offset < chunk.length; offset += SLOT) {
          while (freeInputs.length === 0 && !stopped && failure === undefined) await changed();
          if (stopped || failure !== undefined) return;
          const slot = freeInputs.shift()!;
          const piece = chunk.subarray(offset, offset + SLOT);
          new Uint8Array(input, slot * SLOT, piece.length).set(piece);
          worker.postMessage({ op: 'data', slot, length: piece.length });
        }
      }
      worker.postMessage({ op: 'end' });
    } catch (err) {
      failure ??= err; // the source failed (e.g. a size limit): report it as it is
      notify();
    }
  })();

  try {
    for (;;) {
      if (failure !== undefined) throw failure;
      const next = outputs.shift();
      if (next !== undefined) {
        // A copy the consumer may keep as long as it likes; the slot goes back to the worker.
        const chunk = Buffer.from(new Uint8Array(output, next.slot * SLOT, next.length));
        worker.postMessage({ op: 'free', slot: next.slot });
        yield chunk;
        continue;
      }
      if (finished) break;
      await changed();
    }
    await feeding;
  } finally {
    stopped = true;
    notify();
    await worker.terminate();
  }
}
