import { constants as osConstants } from 'node:os';

/** Symbolic errno names such as 'ENOENT', as Node's own fs errors carry them. */
export type ErrnoCode = keyof typeof osConstants.errno;

/**
 * A filesystem error shaped like Node's SystemError (`code`, `errno`, `syscall`, `path`), so errors
 * from node:fs, from the native addon and from the union engine travel through the same code paths
 * and are turned into an errno in one place (see fuse/errno.ts).
 */
export class FsError extends Error {
  readonly code: ErrnoCode;
  readonly errno: number;
  readonly syscall: string;
  readonly path: string | undefined;

  constructor(code: ErrnoCode, syscall: string, path?: string, options?: { cause?: unknown }) {
    super(`${code}: ${syscall}${path === undefined ? '' : ` '${path}'`}`, options);
    this.name = 'FsError';
    this.code = code;
    this.errno = -osConstants.errno[code];
    this.syscall = syscall;
    this.path = path;
  }
}

/** Node-style error (from node:fs or our addon) or FsError: anything with a string errno code. */
export interface ErrnoLike {
  code: string;
}

export function hasErrnoCode(err: unknown): err is Error & ErrnoLike {
  return err instanceof Error && typeof (err as Partial<ErrnoLike>).code === 'string';
}

/** True when `err` is a filesystem error with one of the given codes. */
export function isErrno(err: unknown, ...codes: ErrnoCode[]): boolean {
  return hasErrnoCode(err) && (codes as string[]).includes(err.code);
}

/** The positive errno number for a symbolic code, or undefined when the code is not an errno. */
export function errnoNumber(code: string): number | undefined {
  return (osConstants.errno as Record<string, number | undefined>)[code];
}

/**
 * An error meant for people: the CLI prints its message without a stack trace and exits with
 * `exitCode`. Everything that reaches the user on purpose is one of these.
 */
export class UserError extends Error {
  readonly exitCode: number;
  constructor(message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options);
    this.name = 'UserError';
    this.exitCode = options?.exitCode ?? 1;
  }
}
