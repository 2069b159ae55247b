/**
 * Everything layerfs knows about whiteout markers lives here (image-spec layer.md "Whiteouts").
 *
 * Two on-disk forms are understood:
 * - OCI: an entry `.wh.NAME` hides NAME of the layers below; `DIR/.wh..wh..opq` makes DIR opaque.
 *   Extracted layers and layerfs upper directories use this form.
 * - overlay: a 0/0 character device named NAME hides NAME; a directory with the xattr
 *   `trusted.overlay.opaque` (or `user.overlay.opaque`) = "y" is opaque. Kernel overlayfs,
 *   fuse-overlayfs and containers/storage write this form; layerfs reads it, and writes it to an
 *   upper directory mounted with the 'overlay' upper format (docs/mount-program.md).
 */
export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
export const OVERLAY_OPAQUE_XATTRS = ['trusted.overlay.opaque', 'user.overlay.opaque'] as const;
/**
 * The opaque xattr written to an overlay-form upper, with its value. `trusted.*` (not `user.*`):
 * kernel overlayfs reads `user.overlay.*` only when mounted with `userxattr` (rootless), and
 * containers/storage's diff code reads `trusted.overlay.opaque`; `trusted.*` needs CAP_SYS_ADMIN.
 */
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';
export const OVERLAY_OPAQUE_VALUE = 'y';
/** Prefixes of xattrs that belong to overlay bookkeeping and are never shown through the mount. */
export const PRIVATE_XATTR_PREFIXES = ['trusted.overlay.', 'user.overlay.'] as const;

export type NameKind =
  | { kind: 'entry' }
  | { kind: 'whiteout'; target: string }
  | { kind: 'opaque' }
  | { kind: 'invalid'; reason: string };

/**
 * Classifies a directory entry name found in a layer. `.wh.` alone, `.wh..`, `.wh...` and other
 * markers that would name `.`/`..`/nothing are invalid (the spec says implementations SHOULD
 * reject them); a marker for another marker (`.wh..wh.x`) is invalid too.
 */
export function classifyName(name: string): NameKind {
  if (!name.startsWith(WHITEOUT_PREFIX)) return { kind: 'entry' };
  if (name === OPAQUE_MARKER) return { kind: 'opaque' };
  const target = name.slice(WHITEOUT_PREFIX.length);
  if (target === '' || target === '.' || target === '..') {
    return { kind: 'invalid', reason: `whiteout ${JSON.stringify(name)} names no entry` };
  }
  if (target.startsWith(WHITEOUT_PREFIX)) {
    return { kind: 'invalid', reason: `whiteout ${JSON.stringify(name)} names another marker` };
  }
  return { kind: 'whiteout', target };
}

/** True for names that users may not create or see: every `.wh.`-prefixed name is reserved. */
export function isReservedName(name: string): boolean {
  return name.startsWith(WHITEOUT_PREFIX);
}

export function whiteoutName(target: string): string {
  return WHITEOUT_PREFIX + target;
}

/** An overlay-form whiteout is a character device with device number 0/0. */
export function isOverlayWhiteout(mode: number, rdev: number): boolean {
  return (mode & 0o170000) === 0o020000 && rdev === 0;
}

export function isOverlayOpaqueValue(value: Buffer): boolean {
  return value.length >= 1 && value[0] === 0x79; // "y"
}

export function isPrivateXattr(name: string): boolean {
  return PRIVATE_XATTR_PREFIXES.some((prefix) => name.startsWith(prefix));
}
