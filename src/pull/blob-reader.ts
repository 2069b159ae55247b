import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../log.js';
import type { Descriptor } from '../oci/types.js';
import { RegistryError } from '../registry/errors.js';
import { DEFAULT_RETRY, type RetryPolicy, networkError, retryDelay } from '../registry/http.js';
import type { ImageSource } from '../source/types.js';

/**
 * A blob's bytes from `from` to its end as one continuous stream, whatever happens to the
 * connections underneath: a connection that drops or stalls is reopened at the current position
 * (with Range; a server that ignores Range sends everything again and the bytes already had are
 * skipped). Gives up after `policy.attempts` failures in a row without progress. Bytes are not
 * verified here: the caller hashes them.
 */
export async function* readBlob(
  source: ImageSource,
  descriptor: Descriptor,
  from: number,
  onServedBy: (label: string) => void,
  policy: RetryPolicy = DEFAULT_RETRY,
): AsyncGenerator<Buffer> {
  let position = from;
  let failures = 0;
  while (position < descriptor.size) {
    // Opening the stream is not retried here: a registry source has already retried its request
    // (with the source's own policy) before failing, and retrying that again would multiply the
    // attempts. Only a stream that breaks after it opened is resumed here.
    const body = await source.blob(descriptor, position);
    try {
      onServedBy(body.servedBy);
      let skip = position - body.offset;
      try {
        for await (const raw of body.stream as AsyncIterable<Buffer>) {
          let chunk = raw;
          if (skip > 0) {
            const dropped = Math.min(skip, chunk.length);
            chunk = chunk.subarray(dropped);
            skip -= dropped;
            if (chunk.length === 0) continue;
          }
          position += chunk.length;
          if (position > descriptor.size) {
            throw new RegistryError('ERR_DIGEST_MISMATCH', `blob ${descriptor.digest}: more than the expected ${descriptor.size} bytes`);
          }
          failures = 0;
          yield chunk;
        }
      } finally {
        body.stream.destroy();
      }
      if (position < descriptor.size) {
        throw new RegistryError('ERR_REGISTRY_NETWORK', `connection closed after ${position} of ${descriptor.size} bytes`, { temporary: true });
      }
      return;
    } catch (err) {
      const error = err instanceof RegistryError ? err : networkError(err, "GET", `blob ${descriptor.digest}`);
      failures++;
      if (!error.temporary || failures >= policy.attempts) throw error;
      const delay = retryDelay(error, failures, policy);
      log.info(`blob ${descriptor.digest}: ${error.message}; resuming at byte ${position} in ${Math.round(delay / 100) / 10} s`);
      await sleep(delay);
    }
  }
}
