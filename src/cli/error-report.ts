import { LayerError } from '../extract/errors.js';
import { UserError, hasErrnoCode } from '../errors.js';
import { ManifestError } from '../oci/manifest.js';
import { VerifyError } from '../oci/verify.js';
import { RegistryError } from '../registry/errors.js';
import { StoreError } from '../store/errors.js';

/** Exit codes: 1 for a failed operation, 2 for bad usage, 70 (EX_SOFTWARE) for a bug. */
export const EXIT_FAILURE = 1;
export const EXIT_INTERNAL = 70;

/**
 * The one place where errors become what a person reads and the exit code. Typed errors carry
 * messages written for users; anything else is a bug and says so (its stack only with
 * LAYERFS_LOG=debug).
 */
export function describeError(err: unknown): { message: string; exitCode: number; internal: boolean } {
  if (err instanceof UserError) return { message: err.message, exitCode: err.exitCode, internal: false };
  if (err instanceof RegistryError) return { message: err.message, exitCode: EXIT_FAILURE, internal: false };
  if (err instanceof StoreError || err instanceof ManifestError || err instanceof VerifyError) {
    return { message: err.message, exitCode: EXIT_FAILURE, internal: false };
  }
  if (err instanceof LayerError) {
    // A layer that fails while it streams from a registry: the network error says more.
    const cause = err.cause;
    if (err.code === 'ERR_LAYER_READ' && (cause instanceof RegistryError || cause instanceof VerifyError)) return describeError(cause);
    return { message: `layer rejected: ${err.message}`, exitCode: EXIT_FAILURE, internal: false };
  }
  if (hasErrnoCode(err) && /^E[A-Z0-9]+$/.test(err.code)) {
    // A system call that failed on the user's input or machine (EACCES, ENOSPC...).
    return { message: err.message, exitCode: EXIT_FAILURE, internal: false };
  }
  const error = err instanceof Error ? err : new Error(String(err));
  return { message: `internal error: ${error.message}`, exitCode: EXIT_INTERNAL, internal: true };
}
