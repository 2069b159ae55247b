import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { logEnabled, log } from '../log.js';
import { FsError } from '../errors.js';
import { type Attr, type Caller, type Ino, type UnionFs, opensForWriting } from '../union/types.js';
import { toErrno } from './errno.js';
import { type KernelInode, KernelIoModes, type OpenMode } from './kernel-io-modes.js';
import { PathResolver } from './path-resolver.js';
import { DEFAULT_BUSY_POLL_US, type Transport, type TransportOptions } from './transport.js';
import type { FuseConstructor, FuseInstance, FuseOps, FuseOptions, FuseStat } from './fuse-native-types.js';

const require = createRequire(import.meta.url);

/** fuse-native and its libfuse (tens of ms): loaded on first use, or ahead of it by `preload`. */
export function loadFuseNative(): FuseConstructor {
  return require('fuse-native') as FuseConstructor;
}

/**
 * The fuse-native transport (libfuse 2, path API), patched at install (patches/): this module is
 * the only one that imports it. It only translates: paths become inode numbers through
 * PathResolver, results become fuse-native's reply shapes, errors become errnos in toErrno.
 *
 * Handlers finish with the kernel's buffers before calling back: fuse-native detaches them then.
 */
export const mountWithFuseNative: Transport = async (fs, mountpoint, options) => {
  const Fuse = loadFuseNative();
  const paths = new PathResolver(fs);
  let instance: FuseInstance | undefined;
  let sessionEnded!: () => void;
  const ended = new Promise<void>((resolve) => (sessionEnded = resolve));
  const hooks = bindingHooks(() => instance);
  // Passthrough needs CAP_SYS_ADMIN for its backing files: not worth asking for without it.
  const passthrough = options.passthrough && process.geteuid?.() === 0;
  const modes = new KernelIoModes(passthrough ? { openBacking: (fd) => instance!.openBacking(fd), closeBacking: (id) => instance!.closeBacking(id) } : undefined, (code) => {
    // EPERM: the kernel did not take passthrough at INIT (before Linux 6.9); nothing to say.
    if (code !== 'EPERM') log.warn('reads of lower files go through the daemon: the kernel refused them a backing file', { code });
  });
  const fuse = new Fuse(mountpoint, buildOps(fs, paths, Fuse, hooks, modes), {
    timeout: false, // a long copy-up must not be answered ETIMEDOUT behind our back
    mkdir: false,
    force: false,
    cacheListings: true, // dropped on every change (fs.onChange below)
    keptListings: true, // no OPENDIR/RELEASEDIR per directory; see onInodeNumbersChanged below
    trackLinks: true, // for invalidateLinks
    passthrough,
    // Polling on a single CPU would only keep the caller from running.
    busyPoll: options.busyPoll ?? (availableParallelism() >= 2 ? DEFAULT_BUSY_POLL_US : 0),
    options: mountOptions(options),
    onSessionEnd: () => sessionEnded(),
  } satisfies FuseOptions);
  instance = fuse;
  // Listings the binding answers readdirs from (without a trip here) are dropped on any change.
  fs.onChange(() => fuse.invalidateListings());
  // The kernel resets a kept listing itself when a change through the mount touches its
  // directory; a copy-up that gave a name another inode number touches none.
  fs.onInodeNumbersChanged(
    () =>
      new Promise<void>((resolve) =>
        fuse.invalidateKernelListings((err) => {
          if (err) log.warn('dropping the kernel\'s directory listings failed', { err: err.message });
          resolve();
        }),
      ),
  );
  await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
  return {
    ended,
    unmount: (lazy = false) =>
      new Promise<void>((resolve, reject) => fuse.unmount((err) => (err ? reject(err) : resolve()), lazy)),
  };
};

/** What the handlers ask of the binding besides their replies. */
interface BindingHooks {
  /** The caller's credentials: only readable synchronously at a handler's start. */
  callerNow(): Caller;
  /** Which kernel inode the request is about: only readable synchronously at a handler's start. */
  requestNodeNow(): Pick<KernelInode, 'node' | 'renewed'>;
  /**
   * libfuse 2's path API gives every name of a hardlinked file a kernel inode of its own, each
   * caching st_nlink: when a change through one name moves the count, the binding marks the
   * others stale by the inode number they show (trackLinks), before the change is answered.
   */
  invalidateLinks(ino: Ino): void;
  /** Gives `inode`'s node a second kernel inode for a request the first cannot serve; false if that cannot help. */
  renew(inode: KernelInode): boolean;
}

function bindingHooks(fuse: () => FuseInstance | undefined): BindingHooks {
  return {
    callerNow: () => {
      const ctx = fuse()?.getContext() ?? null;
      return { uid: ctx?.uid ?? 0, gid: ctx?.gid ?? 0, pid: ctx?.pid ?? 0 };
    },
    requestNodeNow: () => {
      const ctx = fuse()?.getContext() ?? null;
      return { node: ctx?.node ?? 0, renewed: ctx?.renewed ?? false };
    },
    invalidateLinks: (ino) => {
      try {
        fuse()?.invalidateLinks(ino);
      } catch (err) {
        log.warn('marking the other names of a hardlinked file stale failed', { ino, err: (err as Error).message });
      }
    },
    renew: (inode) => {
      const binding = fuse();
      if (binding === undefined || inode.node === 0 || inode.renewed) return false;
      try {
        binding.renewNode(inode.node);
        return true;
      } catch (err) {
        // EALREADY: the old inode was reached again where the kernel retries nothing (/proc/PID/fd).
        const code = (err as { code?: string }).code;
        if (code !== 'EALREADY') log.warn('giving a file a kernel inode of its own failed', { node: inode.node, code });
        return false;
      }
    },
  };
}

function mountOptions(options: TransportOptions): string[] {
  const timeout = String(options.cacheTimeout);
  const opts = [
    'fsname=layerfs',
    'subtype=layerfs',
    'use_ino', // our inode numbers, not libfuse's, in stat and readdir
    'big_writes', // 128 KiB write requests instead of 4 KiB
    'max_write=131072',
    'max_read=131072',
    `entry_timeout=${timeout}`,
    `attr_timeout=${timeout}`,
    `negative_timeout=${timeout}`,
  ];
  if (options.allowOther) opts.push('allow_other', 'default_permissions');
  if (options.readOnly) opts.push('ro');
  if (options.debug) opts.push('debug');
  return opts;
}

function buildOps(
  fs: UnionFs,
  paths: PathResolver,
  Fuse: FuseConstructor,
  hooks: BindingHooks,
  modes: KernelIoModes,
): FuseOps {
  const { callerNow, requestNodeNow, invalidateLinks, renew } = hooks;
  /**
   * Runs a change that may move the link count of the file `work` returns the inode number of;
   * that file's other names are marked stale before the reply (link()'s source is marked by the
   * binding itself, from the LINK request).
   */
  const runRefreshing = (op: string, path: string, cb: unknown, work: () => Promise<Ino | undefined>) => {
    const reply = cb as (err: number) => void;
    work().then(
      (changed) => {
        // Only names the engine has resolved can be cached by the kernel.
        if (changed !== undefined && fs.hasNames(changed)) invalidateLinks(changed);
        reply(0);
      },
      (err: unknown) => reply(toErrno(err, op, path)),
    );
  };
  /** Runs `work`, replying with its results or with the errno of its failure. */
  const run = (op: string, path: string, cb: unknown, work: () => Promise<unknown[] | void>) => {
    if (logEnabled('debug')) log.debug(`${op} ${path}`);
    const reply = cb as (err: number, ...results: unknown[]) => void;
    work().then(
      (results) => reply(0, ...(results ?? [])),
      (err: unknown) => reply(toErrno(err, op, path)),
    );
  };
  /** read/write reply with a byte count or a negative errno in the first argument. */
  const runCount = (op: string, path: string, cb: (n: number) => void, work: () => Promise<number>) => {
    work().then(cb, (err: unknown) => cb(toErrno(err, op, path)));
  };
  const openReply = (fh: number, mode: OpenMode): unknown[] => {
    if (mode.kind === 'passthrough') return [fh, Fuse.OPEN_PASSTHROUGH, mode.backingId];
    return [fh, mode.keepCache ? Fuse.OPEN_KEEP_CACHE : 0];
  };
  const ino = (path: string) => paths.ino(path);
  /**
   * A content change through `inode`. A kernel inode whose lower file the kernel reads itself
   * (passthrough) cannot take one: the node is renewed and the request answered ESTALE, after
   * which the kernel looks the path up again and retries on a kernel inode of its own, while the
   * descriptors open before keep reading the lower file (docs/decisions.md, 10). Where that
   * cannot help (a renewed inode, reached again through /proc/PID/fd), ETXTBSY.
   */
  const changing = async <T>(inode: KernelInode, op: string, path: string, work: () => Promise<T>): Promise<T> => {
    if (!modes.beginChange(inode)) throw new FsError(renew(inode) ? 'ESTALE' : 'ETXTBSY', op, path);
    try {
      return await work();
    } finally {
      modes.endChange(inode);
    }
  };

  return {
    getattr: (path, cb) => run('getattr', path, cb, async () => [toFuseStat(await fs.getattr(await ino(path)))]),
    fgetattr: (path, fd, cb) => run('fgetattr', path, cb, async () => [toFuseStat(await fs.getattr(await ino(path), fd))]),
    access: (path, mode, cb) => {
      const caller = callerNow();
      run('access', path, cb, async () => fs.access(await ino(path), mode, caller));
    },
    statfs: (path, cb) => run('statfs', path, cb, async () => [await fs.statfs(await ino(path))]),
    readlink: (path, cb) => run('readlink', path, cb, async () => [await fs.readlink(await ino(path))]),
    readdir: (path, cb) =>
      run('readdir', path, cb, async () => {
        const entries = await fs.readdir(await ino(path));
        return [entries.map((e) => e.name), entries.map((e) => ({ ino: e.ino, mode: e.type }))];
      }),
    // opendir, releasedir, fsyncdir and flush are deliberately absent: libfuse then answers
    // them in C (flush: ENOSYS, after which the kernel stops sending it) with no trip to
    // JavaScript. Directory handles carry nothing here and writes go straight to the upper.

    open: (path, flags, cb) => {
      const at = requestNodeNow();
      run('open', path, cb, async () => {
        const node = await ino(path);
        const inode = { ...at, ino: node };
        const writable = opensForWriting(flags);
        const open = async () => {
          const result = await fs.open(node, flags);
          return openReply(result.fh, modes.opened(inode, result.fh, result, writable));
        };
        return writable ? changing(inode, 'open', path, open) : open();
      });
    },
    create: (path, mode, flags, cb) => {
      const caller = callerNow();
      run('create', path, cb, async () => {
        const { parent, name } = await paths.parentOf(path);
        const { fh, keepCache, attr } = await fs.create(parent, name, mode, flags, caller);
        // The request names the directory; a new file is in the upper, never read through a backing file.
        return openReply(fh, modes.opened({ node: 0, renewed: false, ino: attr.ino }, fh, { keepCache }, true));
      });
    },
    read: (path, fd, buf, len, pos, cb) => runCount('read', path ?? '', cb, () => fs.read(fd, buf, len, pos)),
    write: (path, fd, buf, len, pos, cb) => runCount('write', path ?? '', cb, () => fs.write(fd, buf, len, pos)),
    fsync: (path, datasync, fd, cb) => run('fsync', path, cb, () => fs.fsync(fd, datasync !== 0)),
    release: (path, fd, cb) =>
      run('release', path, cb, () => {
        modes.released(fd);
        return fs.release(fd);
      }),

    truncate: (path, size, cb) => {
      const at = requestNodeNow();
      run('truncate', path, cb, async () => {
        const node = await ino(path);
        await changing({ ...at, ino: node }, 'truncate', path, () => fs.setattr(node, { size }));
      });
    },
    ftruncate: (path, fd, size, cb) =>
      run('ftruncate', path, cb, async () => void (await fs.setattr(await ino(path), { size }, fd))),
    utimens: (path, atime, mtime, cb) =>
      run('utimens', path, cb, async () => void (await fs.setattr(await ino(path), { atime, mtime }))),
    chmod: (path, mode, cb) => run('chmod', path, cb, async () => void (await fs.setattr(await ino(path), { mode }))),
    chown: (path, uid, gid, cb) =>
      run('chown', path, cb, async () => {
        await fs.setattr(await ino(path), { uid: uid === -1 ? undefined : uid, gid: gid === -1 ? undefined : gid });
      }),

    mkdir: (path, mode, cb) => {
      const caller = callerNow();
      run('mkdir', path, cb, async () => {
        const { parent, name } = await paths.parentOf(path);
        await fs.mkdir(parent, name, mode, caller);
      });
    },
    mknod: (path, mode, dev, cb) => {
      const caller = callerNow();
      run('mknod', path, cb, async () => {
        const { parent, name } = await paths.parentOf(path);
        await fs.mknod(parent, name, mode, dev, caller);
      });
    },
    symlink: (target, path, cb) => {
      const caller = callerNow();
      run('symlink', path, cb, async () => {
        const { parent, name } = await paths.parentOf(path);
        await fs.symlink(parent, name, target, caller);
      });
    },
    link: (from, to, cb) =>
      runRefreshing('link', to, cb, async () => {
        const { parent, name } = await paths.parentOf(to);
        const source = await ino(from);
        await fs.link(source, parent, name);
        return source;
      }),
    unlink: (path, cb) =>
      runRefreshing('unlink', path, cb, async () => {
        // The last release of a hidden (unlinked-while-open) file: the engine already removed it.
        if (paths.dropHidden(path)) return undefined;
        const { parent, name } = await paths.parentOf(path);
        const removed = await ino(path);
        await fs.unlink(parent, name);
        fs.forget(removed); // libfuse's path API never names a removed node again
        return removed;
      }),
    rmdir: (path, cb) =>
      run('rmdir', path, cb, async () => {
        const { parent, name } = await paths.parentOf(path);
        const removed = await ino(path);
        await fs.rmdir(parent, name);
        fs.forget(removed);
      }),
    rename: (from, to, cb) =>
      runRefreshing('rename', from, cb, async () => {
        const source = await paths.parentOf(from);
        if (paths.isHiddenName(to) && paths.hiddenAlias(to) === undefined) {
          // libfuse hides a file that is unlinked (or renamed over) while open.
          const hidden = await ino(from);
          await fs.unlink(source.parent, source.name);
          paths.addHidden(to, hidden);
          return hidden;
        }
        const target = await paths.parentOf(to);
        const replaced = await ino(to).catch(() => undefined);
        await fs.rename(source.parent, source.name, target.parent, target.name);
        if (replaced === undefined) return undefined;
        fs.forget(replaced);
        return replaced;
      }),

    getxattr: (path, name, cb) => run('getxattr', path, cb, async () => [await fs.getxattr(await ino(path), name)]),
    setxattr: (path, name, value, flags, cb) =>
      run('setxattr', path, cb, async () => fs.setxattr(await ino(path), name, value, flags)),
    listxattr: (path, cb) => run('listxattr', path, cb, async () => [await fs.listxattr(await ino(path))]),
    removexattr: (path, name, cb) => run('removexattr', path, cb, async () => fs.removexattr(await ino(path), name)),
  };
}

function toFuseStat(attr: Attr): FuseStat {
  return {
    ino: attr.stIno ?? attr.ino,
    mode: attr.mode,
    nlink: attr.nlink,
    uid: attr.uid,
    gid: attr.gid,
    rdev: attr.rdev,
    size: attr.size,
    blksize: attr.blksize,
    blocks: attr.blocks,
    dev: 0,
    atime: attr.atimeNs,
    mtime: attr.mtimeNs,
    ctime: attr.ctimeNs,
  };
}
