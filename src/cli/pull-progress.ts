import type cliProgress from 'cli-progress';
import { createRequire } from 'node:module';
import type { Digest } from '../oci/digest.js';
import type { PullEvent } from '../pull/pull.js';
import type { MovedName } from '../store/store.js';
import { humanSize } from './format.js';

/**
 * Shows a pull's or push's progress on stderr (stdout stays for the result): one bar per layer
 * with bytes, speed and ETA on a terminal, plain lines otherwise (logs, CI), nothing with --quiet.
 */
export interface PullProgress {
  onEvent(event: TransferEvent): void;
  stop(): void;
}

/** A pull's events, and a push's in the same words (blobs going up instead of down). */
export type TransferEvent =
  | PullEvent
  | { type: 'layer-start'; digest: Digest; size: number; action: 'upload' }
  | { type: 'layer-done'; digest: Digest; outcome: 'uploaded' | 'mounted' | 'exists' };

/**
 * Says which names a pull took away from other images, even with --quiet: an image that loses
 * its last name is no longer listed, and its layers become evictable.
 */
export function reportMovedNames(stream: NodeJS.WritableStream, moved: MovedName[]): void {
  for (const { ref, from } of moved) stream.write(`note: ${ref} named another image (${from}) until now; it names this one now\n`);
}

export function pullProgress(stream: NodeJS.WriteStream, quiet: boolean): PullProgress {
  if (quiet) return { onEvent: () => undefined, stop: () => undefined };
  return stream.isTTY ? new BarProgress(stream) : new LineProgress(stream);
}

const short = (digest: Digest): string => digest.slice(7, 19);

class LineProgress implements PullProgress {
  readonly #out: NodeJS.WriteStream;
  readonly #started = new Map<Digest, { at: number; size: number; from: number }>();
  readonly #servedBy = new Map<Digest, string>();

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
  }

  onEvent(event: TransferEvent): void {
    switch (event.type) {
      case 'resolved':
        this.#line(`resolved ${event.digest}${event.platform === undefined ? '' : ` (${event.platform})`}, ${event.layers.length} layers`);
        break;
      case 'layer-start':
        if (event.action === 'cached') this.#line(`${short(event.digest)}: already in the cache`);
        else if (event.action === 'extract') this.#line(`${short(event.digest)}: extracting from the stored blob`);
        else if (event.action === 'upload') {
          this.#started.set(event.digest, { at: Date.now(), size: event.size, from: 0 });
          this.#line(`${short(event.digest)}: pushing ${humanSize(event.size)}`);
        } else {
          this.#started.set(event.digest, { at: Date.now(), size: event.size, from: event.resumedAt ?? 0 });
          const resumed = event.resumedAt === undefined ? '' : `, resuming at ${humanSize(event.resumedAt)}`;
          this.#line(`${short(event.digest)}: downloading ${humanSize(event.size)}${resumed}`);
        }
        break;
      case 'layer-source':
        if (this.#servedBy.get(event.digest) !== event.servedBy) {
          this.#servedBy.set(event.digest, event.servedBy);
          this.#line(`${short(event.digest)}: from ${event.servedBy}`);
        }
        break;
      case 'layer-progress':
        break;
      case 'layer-done': {
        if (event.outcome === 'exists' || event.outcome === 'mounted' || event.outcome === 'uploaded') {
          // A push: the registry had it, took it from a sibling repository, or got our bytes.
          this.#line(`${short(event.digest)}: ${event.outcome === 'exists' ? 'already there' : event.outcome}`);
          break;
        }
        const started = this.#started.get(event.digest);
        const seconds = started === undefined ? undefined : (Date.now() - started.at) / 1000;
        const rate = started !== undefined && seconds !== undefined && seconds > 0 ? `, ${humanSize((started.size - started.from) / seconds)}/s` : '';
        if (event.outcome !== 'cached' || started !== undefined) {
          this.#line(`${short(event.digest)}: done (${event.outcome}${seconds === undefined ? '' : ` in ${seconds.toFixed(1)} s`}${rate})`);
        }
        break;
      }
    }
  }

  stop(): void {}

  #line(text: string): void {
    this.#out.write(`${text}\n`);
  }
}

interface BarEntry {
  bar: cliProgress.SingleBar;
  digest: Digest;
  size: number;
  state: string;
  /** When the bytes started to flow, and from which byte (speed counts only this run's bytes). */
  since: number;
  from: number;
}

class BarProgress implements PullProgress {
  readonly #bars: cliProgress.MultiBar;
  readonly #layers = new Map<Digest, BarEntry>();

  constructor(out: NodeJS.WriteStream) {
    // Loaded only when bars are drawn: most runs (a cached mount, logs, CI) never need it.
    const bars = createRequire(import.meta.url)('cli-progress') as typeof cliProgress;
    this.#bars = new bars.MultiBar(
      {
        stream: out,
        format: '{layer} [{bar}] {state} {done}/{size} {speed} ETA {eta_formatted}',
        barsize: 24,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        etaBuffer: 50,
      },
      bars.Presets.legacy,
    );
  }

  onEvent(event: TransferEvent): void {
    switch (event.type) {
      case 'resolved':
        for (const layer of event.layers) this.#entry(layer.digest, layer.size, 'waiting');
        break;
      case 'layer-start': {
        const state = { cached: 'cached', extract: 'extracting', download: 'downloading', upload: 'uploading' }[event.action];
        const entry = this.#entry(event.digest, event.size, state);
        entry.since = Date.now();
        entry.from = 'resumedAt' in event ? (event.resumedAt ?? 0) : 0;
        this.#update(entry, event.action === 'cached' ? event.size : entry.from);
        break;
      }
      case 'layer-source':
        break;
      case 'layer-progress': {
        const entry = this.#layers.get(event.digest);
        if (entry !== undefined) this.#update(entry, event.bytes);
        break;
      }
      case 'layer-done': {
        const entry = this.#layers.get(event.digest);
        if (entry !== undefined) {
          entry.state = event.outcome;
          this.#update(entry, entry.size);
        }
        break;
      }
    }
  }

  stop(): void {
    this.#bars.stop();
  }

  #entry(digest: Digest, size: number, state: string): BarEntry {
    let entry = this.#layers.get(digest);
    if (entry === undefined) {
      const payload = { layer: short(digest), state: state.padEnd(11), done: humanSize(0), size: humanSize(size), speed: '' };
      entry = { bar: this.#bars.create(Math.max(1, size), 0, payload), digest, size, state, since: Date.now(), from: 0 };
      this.#layers.set(digest, entry);
    }
    entry.state = state;
    return entry;
  }

  #update(entry: BarEntry, done: number): void {
    const seconds = (Date.now() - entry.since) / 1000;
    const speed = (entry.state === 'downloading' || entry.state === 'uploading') && seconds > 0.5 ? `${humanSize((done - entry.from) / seconds)}/s` : '';
    entry.bar.update(done, { layer: short(entry.digest), state: entry.state.padEnd(11), done: humanSize(done), size: humanSize(entry.size), speed });
  }
}
