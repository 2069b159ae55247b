import type { BigIntStats } from 'node:fs';

/**
 * What the engine keeps of a host lstat: numbers where they fit, BigInt only for the inode number
 * and the nanosecond times. A BigIntStats holds eighteen BigInts; with one per node of a large
 * image that alone was tens of MiB.
 */
export interface HostStat {
  ino: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export function compactStat(st: BigIntStats): HostStat {
  return {
    ino: st.ino,
    mode: Number(st.mode),
    nlink: Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: Number(st.rdev),
    size: Number(st.size),
    blksize: Number(st.blksize),
    blocks: Number(st.blocks),
    atimeNs: st.atimeNs,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
  };
}
