import { FsError } from '../errors.js';
import { S_IFDIR, fileType } from './layer-dir.js';
import type { HostStat } from './host-stat.js';
import type { Node } from './node.js';
import type { Attr, Caller } from './types.js';

/** What `stat` shows for `node`, given the host's lstat of its backing entry. */
export function toAttr(node: Node, st: HostStat): Attr {
  const isDir = fileType(node.type) === S_IFDIR;
  // A directory merged from several layers has no single true link count; 1 tells find(1) and
  // others not to use the "nlink - 2 subdirectories" shortcut (what btrfs and overlayfs do too).
  const merged = isDir && (node.inUpper ? node.lowers.length > 0 : node.lowers.length > 1);
  return {
    ino: node.ino,
    ...(node.statIno === undefined ? {} : { stIno: node.statIno }),
    mode: st.mode,
    nlink: node.unlinked ? 0 : merged ? 1 : st.nlink,
    uid: st.uid,
    gid: st.gid,
    rdev: st.rdev,
    size: st.size,
    blksize: st.blksize,
    blocks: st.blocks,
    atimeNs: st.atimeNs,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
  };
}

const R_OK = 4;
const W_OK = 2;
const X_OK = 1;

/** access(2) semantics on the attributes the mount shows (used when the kernel asks). */
export function checkAccess(attr: Attr, mask: number, caller: Caller, path: string): void {
  if (mask === 0) return;
  if (caller.uid === 0) {
    // root may do anything except execute a file that nobody may execute.
    if ((mask & X_OK) !== 0 && fileType(attr.mode) !== S_IFDIR && (attr.mode & 0o111) === 0) {
      throw new FsError('EACCES', 'access', path);
    }
    return;
  }
  const shift = caller.uid === attr.uid ? 6 : caller.gid === attr.gid ? 3 : 0;
  const granted = (attr.mode >> shift) & 7;
  if ((mask & (R_OK | W_OK | X_OK) & ~granted) !== 0) throw new FsError('EACCES', 'access', path);
}
