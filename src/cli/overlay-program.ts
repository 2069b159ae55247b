/**
 * `layerfs-overlay`: layerfs as the `mount_program` of containers/storage's overlay driver (podman,
 * buildah), in the place of fuse-overlayfs. It takes what fuse-overlayfs takes from there:
 *
 *   layerfs-overlay [-f] [-d] -o lowerdir=A:B:…[,upperdir=U,workdir=W][,more options] TARGET
 *
 * Options may come in several `-o` (or `-oOPTS`); the last value of an option wins. `lowerdir`
 * alone (or with `ro`) mounts read-only. In a list, `\` escapes the next character (`\,` is a
 * comma, `\:` a colon that does not split `lowerdir`, `\\` a backslash, `\ooo` an octal byte, as
 * libfuse reads option lists); a double-quoted part never splits at commas (SELinux `context="…"`).
 * Options layerfs has no use for are ignored with a debug message; id mappings are refused,
 * never ignored. Without `-f` it daemonizes once the mount is ready, as fuse-overlayfs does; the
 * upper gets the overlay form (0/0 device whiteouts, trusted.overlay.opaque), see
 * docs/mount-program.md. The daemon exits when someone runs `umount` or `fusermount3 -u` on TARGET.
 */
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { UserError } from '../errors.js';
import { log, setLogLevel } from '../log.js';
import { spawnDaemon } from '../mount/background.js';
import { RunDir, defaultRunDir } from '../mount/run-dir.js';
import { describeError } from './error-report.js';

export const PROGRAM = 'layerfs-overlay';

/** What the kernel is asked to cache (seconds) unless `timeout=` says otherwise; as `layerfs mount`. */
const DEFAULT_CACHE_TIMEOUT = 86400;

export interface OverlayMountRequest {
  /** Lower directories, top first, as given (relative ones are resolved against the cwd). */
  lowers: string[];
  upper?: string;
  workdir?: string;
  mountpoint: string;
  /** `ro` was given (with an upper, the upper becomes the top lower: its content shows, read-only). */
  readOnly: boolean;
  /** `-f`: stay in the foreground (the daemon runs this way). */
  foreground: boolean;
  /** `-d`, `--debug` or `-o debug`. */
  debug: boolean;
  cacheTimeout: number;
  /** Options accepted without effect, with why: reported at debug level. */
  ignored: string[];
}

export type ParsedCommand = { kind: 'mount'; request: OverlayMountRequest } | { kind: 'help' } | { kind: 'version' };

const usageError = (message: string) => new UserError(`${message} (usage: ${PROGRAM} -o lowerdir=DIR[:DIR...][,upperdir=DIR,workdir=DIR] MOUNTPOINT)`, { exitCode: 2 });

/** Parses the command line (without node and the script). Throws UserError on bad input. */
export function parseCommandLine(argv: readonly string[]): ParsedCommand {
  const lists: string[] = [];
  const positionals: string[] = [];
  let foreground = false;
  let debug = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-o') {
      const next = argv[++i];
      if (next === undefined) throw usageError('-o needs a list of options');
      lists.push(next);
    } else if (arg.startsWith('-o')) {
      lists.push(arg.slice(2));
    } else if (arg === '-f') {
      foreground = true;
    } else if (arg === '-d' || arg === '--debug') {
      debug = true;
    } else if (arg === '-s') {
      // fuse-overlayfs: single-threaded. layerfs serves from one event loop anyway.
    } else if (arg === '-h' || arg === '--help') {
      return { kind: 'help' };
    } else if (arg === '-V' || arg === '--version') {
      return { kind: 'version' };
    } else if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    } else if (arg.startsWith('-') && arg !== '-') {
      throw usageError(`unknown argument ${arg}`);
    } else {
      positionals.push(arg);
    }
  }
  if (positionals.length === 0) throw usageError('name the mountpoint');
  if (positionals.length > 1) throw usageError(`one mountpoint only, got ${positionals.length} arguments: ${positionals.join(' ')}`);

  const request: OverlayMountRequest = {
    lowers: [],
    mountpoint: positionals[0]!,
    readOnly: false,
    foreground,
    debug,
    cacheTimeout: DEFAULT_CACHE_TIMEOUT,
    ignored: [],
  };
  let lowerdir: string | undefined;
  for (const list of lists) {
    for (const option of splitOptionList(list)) {
      const eq = option.indexOf('=');
      const name = eq < 0 ? option : option.slice(0, eq);
      const raw = eq < 0 ? undefined : option.slice(eq + 1);
      const value = raw === undefined ? undefined : unescapeOption(raw);
      const needValue = (): string => {
        if (value === undefined || value === '') throw usageError(`option ${name} needs a value (${name}=...)`);
        return value;
      };
      switch (name) {
        case 'lowerdir':
          if (raw === undefined || raw === '') throw usageError('option lowerdir needs a value (lowerdir=DIR[:DIR...])');
          lowerdir = raw;
          break;
        case 'upperdir':
          request.upper = needValue();
          break;
        case 'workdir':
          request.workdir = needValue();
          break;
        case 'ro':
          request.readOnly = true;
          break;
        case 'rw':
          request.readOnly = false;
          break;
        case 'debug':
          request.debug = true;
          break;
        case 'timeout': {
          const seconds = Number(needValue());
          if (!Number.isFinite(seconds) || seconds < 0) throw usageError(`timeout=${value} is not a number of seconds`);
          request.cacheTimeout = seconds;
          break;
        }
        case 'uidmapping':
        case 'gidmapping':
        case 'squash_to_root':
        case 'squash_to_uid':
        case 'squash_to_gid':
          // Ignoring these would show files with other owners than the caller asked for.
          throw new UserError(
            `option ${name} is not supported: layerfs does not map or squash user and group ids; ` +
              'use it without id mappings (e.g. no userns/uidmap settings for this storage), or fuse-overlayfs',
            { exitCode: 2 },
          );
        case 'allow_other':
        case 'allow_root':
        case 'default_permissions':
          request.ignored.push(`${option} (layerfs always mounts with allow_other,default_permissions)`);
          break;
        default:
          request.ignored.push(option);
      }
    }
  }
  if (lowerdir === undefined) throw usageError('option lowerdir is required');
  request.lowers = splitLowerdir(lowerdir);
  if (request.lowers.some((dir) => dir === '')) throw usageError(`lowerdir has an empty entry: ${lowerdir}`);
  if (request.readOnly && request.upper !== undefined) {
    // As kernel overlayfs with `ro`: the upper's content shows, nothing can change it.
    request.lowers.unshift(request.upper);
    request.upper = undefined;
  }
  if (request.upper !== undefined && request.workdir === undefined) throw usageError('upperdir needs workdir (on the same filesystem)');
  if (request.upper === undefined && request.workdir !== undefined) {
    request.ignored.push(`workdir=${request.workdir} (no writable upperdir: the mount is read-only)`);
    request.workdir = undefined;
  }
  return { kind: 'mount', request };
}

/**
 * Splits an option list at commas that are not escaped with `\` nor inside double quotes. The
 * items keep their escapes: `lowerdir` still needs them to split at ':'.
 */
export function splitOptionList(list: string): string[] {
  const items: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < list.length; i++) {
    const ch = list[i]!;
    if (ch === '\\' && i + 1 < list.length) {
      current += ch + list[++i]!;
    } else if (ch === '"') {
      quoted = !quoted;
      current += ch;
    } else if (ch === ',' && !quoted) {
      items.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  items.push(current);
  return items.filter((item) => item !== '');
}

/** Removes option-list escapes: `\x` is x, `\ooo` (first digit 0-3) the byte with that octal value. */
export function unescapeOption(value: string): string {
  return value.replace(/\\(?:([0-3][0-7][0-7])|([\s\S]))/g, (_, octal: string | undefined, ch: string | undefined) =>
    octal !== undefined ? String.fromCharCode(parseInt(octal, 8)) : ch!,
  );
}

/** Splits a raw (still escaped) `lowerdir` value at unescaped ':' and unescapes each entry. */
export function splitLowerdir(raw: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (ch === '\\' && i + 1 < raw.length) {
      current += ch + raw[++i]!;
    } else if (ch === ':') {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts.map(unescapeOption);
}

const HELP = `usage: ${PROGRAM} [-f] [-d] -o lowerdir=DIR[:DIR...][,upperdir=DIR,workdir=DIR][,OPTIONS] MOUNTPOINT

Mounts the union of the lower directories (top first) and the upper on MOUNTPOINT, as
fuse-overlayfs does: a mount program for containers/storage (podman, buildah). Without upperdir
(or with ro) the mount is read-only. Changes go to the upper in the overlay form: whiteouts are
0/0 character devices, opaque directories carry trusted.overlay.opaque=y.

  -o OPTIONS   comma-separated; may be given several times. Understood: lowerdir, upperdir,
               workdir, ro, rw, timeout=SECONDS, debug. Refused: uidmapping, gidmapping,
               squash_to_*. Anything else is ignored (see the debug output).
  -f           stay in the foreground (default: daemonize once the mount is ready)
  -d, --debug  log every operation
  -V           print the version

Unmount with: umount MOUNTPOINT (or fusermount3 -u MOUNTPOINT).
Environment: LAYERFS_RUN_DIR (state and logs; default /run/layerfs as root), LAYERFS_LOG=debug.
`;

function version(): string {
  const require = createRequire(import.meta.url);
  return (require('../../package.json') as { version: string }).version;
}

async function mount(request: OverlayMountRequest): Promise<void> {
  setLogLevel(request.debug || process.env.LAYERFS_LOG === 'debug' ? 'debug' : 'warn');
  for (const option of request.ignored) log.debug(`ignoring option ${option}`);

  const mountpoint = resolve(request.mountpoint);
  const runDir = new RunDir(process.env.LAYERFS_RUN_DIR || defaultRunDir(process.env, process.getuid?.() ?? 0));
  const stack = {
    lowers: request.lowers.map((dir) => resolve(dir)),
    upper: request.upper === undefined ? undefined : resolve(request.upper),
    workdir: request.workdir === undefined ? undefined : resolve(request.workdir),
  };
  if (!request.foreground) {
    // Like fuse-overlayfs, return once the mount is ready; a daemon serves it from then on.
    const serveRequest = { kind: 'union', stack, upperFormat: 'overlay', mountpoint, runDir: runDir.root, debug: request.debug, cacheTimeout: request.cacheTimeout } as const;
    await spawnDaemon().serve(serveRequest);
    return;
  }
  const { serveUnion } = await import('../mount/serve.js');
  await serveUnion({ stack, mountpoint, runDir, debug: request.debug, cacheTimeout: request.cacheTimeout, upperFormat: 'overlay' });
}

/** The program: parses `argv` (default: this process's), mounts, reports errors in one line. */
export async function runOverlayProgram(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  try {
    const command = parseCommandLine(argv);
    if (command.kind === 'help') {
      process.stdout.write(HELP);
      return;
    }
    if (command.kind === 'version') {
      process.stdout.write(`${PROGRAM} (layerfs) ${version()}\n`);
      return;
    }
    await mount(command.request);
  } catch (err) {
    const report = describeError(err);
    process.stderr.write(`${PROGRAM}: ${report.message.replace(/\s*\n\s*/g, ' ')}\n`);
    if (report.internal && process.env.LAYERFS_LOG === 'debug') process.stderr.write(`${(err as Error).stack ?? ''}\n`);
    process.exitCode = report.exitCode;
  }
}
