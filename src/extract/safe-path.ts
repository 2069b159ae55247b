/**
 * Turns names from a layer (untrusted bytes) into safe relative paths before any I/O happens.
 *
 * Decisions (see docs/decisions.md of the extractor, in src/extract/README.md):
 * - Absolute names are made relative to the layer root (`/etc/passwd` is `etc/passwd`), as Docker
 *   and containerd do: a layer is always applied at `/` of the image.
 * - `.` and empty components (`./`, `a//b`) are dropped. `..` is resolved lexically (`a/../b` is
 *   `b`, as Go's filepath.Clean in Docker does); a `..` that would climb above the layer root is
 *   rejected, never clamped. Lexical resolution is safe because extraction never follows a
 *   symlink: whatever `a` is on disk, `a/../b` is created as `b`.
 * - NUL bytes are rejected (they cannot be in a Linux name, and would truncate one in C).
 * - Names must be valid UTF-8: Node's fs and our addon address files by JS strings, and the mount
 *   serves names as strings, so a name that is not UTF-8 could not be written or shown faithfully.
 *   Symlink targets are data and stay raw bytes (see symlinkTarget).
 */
import { LayerError } from './errors.js';

/**
 * The normalised relative path of an entry (`a/b/c`, no leading or trailing slash); `''` is the
 * layer root itself (a `./` entry).
 */
export function normalizeEntryPath(raw: Buffer, what = 'entry name'): string {
  const display = raw.toString('utf8');
  if (raw.includes(0)) {
    throw new LayerError('ERR_LAYER_UNSAFE_PATH', `${what} contains a NUL byte`, { entry: display });
  }
  const name = decodeUtf8(raw);
  if (name === undefined) {
    throw new LayerError('ERR_LAYER_UNSUPPORTED', `${what} is not valid UTF-8`, { entry: display });
  }
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) {
        throw new LayerError('ERR_LAYER_UNSAFE_PATH', `${what} leaves the layer with ".."`, { entry: display });
      }
      parts.pop();
      continue;
    }
    parts.push(part);
  }
  return parts.join('/');
}

/** A symlink target: any bytes but NUL, never rewritten (absolute and `..` targets are data). */
export function symlinkTarget(raw: Buffer, entry: string): Buffer {
  if (raw.length === 0) throw new LayerError('ERR_LAYER_CORRUPT', 'symlink with an empty target', { entry });
  if (raw.includes(0)) throw new LayerError('ERR_LAYER_UNSAFE_PATH', 'symlink target contains a NUL byte', { entry });
  return raw;
}

/** The UTF-8 text of `raw`, or undefined when it is not valid UTF-8. */
export function decodeUtf8(raw: Buffer): string | undefined {
  // Fast path: pure ASCII (nearly every name in real layers).
  let ascii = true;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return raw.toString('latin1');
  const text = raw.toString('utf8');
  return Buffer.byteLength(text, 'utf8') === raw.length && Buffer.from(text, 'utf8').equals(raw) ? text : undefined;
}

/** `a/b/c` -> `a/b`; `a` -> `''`. */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? '' : path.slice(0, slash);
}

/** `a/b/c` -> `c`. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
