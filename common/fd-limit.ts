/**
 * The process's open-file limit (RLIMIT_NOFILE), read from /proc/self/limits. Node raises the soft
 * limit to the hard limit when it starts (src/node.cc, PlatformInit), so what is read here is what
 * the proxy runs with; the CLI logs both. Admission's fd budget and the session cap derive from the
 * soft limit: a userspace session holds its upstream socket, and a downstream socket of its own
 * unless its listener answers it from the listening socket (runtime/session-fds.ts).
 */
import { readFileSync, readdirSync } from 'node:fs';

/** Default of `admin.fd_reserve` (fds); cluster-config/schema.ts documents it. */
export const DEFAULT_FD_RESERVE = 256;

/** Soft and hard RLIMIT_NOFILE, in file descriptors (Infinity for "unlimited"). */
export interface FdLimit {
  readonly soft: number;
  readonly hard: number;
}

/**
 * File descriptors a userspace session of a plain route holds when its downstream is a socket of
 * its own: that socket and one upstream socket (runtime/session-fds.ts finds the config's figure).
 */
export const FDS_PER_SESSION = 2;

/** The open-file limit of this process; null where /proc is not there (not Linux). */
export function fdLimit(): FdLimit | null {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
  const line = text.split('\n').find((l) => l.startsWith('Max open files'));
  const m = line === undefined ? null : /^Max open files\s+(\S+)\s+(\S+)/.exec(line);
  if (m === null) return null;
  const num = (s: string | undefined): number => (s === 'unlimited' ? Infinity : Number(s));
  return { soft: num(m[1]), hard: num(m[2]) };
}

/**
 * The process-wide session cap the open-file limit allows: (soft limit - reserve) / fds per
 * session, at least 1. `reserve` fds stay free for the admin server, listeners and logs.
 */
export function fdSessionCap(soft: number, reserve: number, fdsPerSession = FDS_PER_SESSION): number {
  if (!Number.isFinite(soft)) return Number.MAX_SAFE_INTEGER;
  return Math.max(1, Math.floor((soft - reserve) / fdsPerSession));
}

/** Open file descriptors of this process now (the entries of /proc/self/fd; -1 if it cannot). */
export function openFds(): number {
  try {
    // The listing opens one fd of its own while it reads.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return -1;
  }
}

/**
 * File descriptors the sessions of the process may hold in all: the soft open-file limit less
 * `admin.fd_reserve` (default 256), at least 1 ({@link fdSessionCap} of one-fd sessions);
 * admission charges each session the fds it holds (actors/admission.ts), as nginx's
 * worker_connections counts upstream connections too.
 */
export function fdBudget(admin: { readonly fd_reserve?: number }, soft: number): number {
  return fdSessionCap(soft, admin.fd_reserve ?? DEFAULT_FD_RESERVE, 1);
}

/**
 * The process-wide session cap in force: `admin.max_sessions` if set, never above what the soft
 * open-file limit allows ({@link fdSessionCap} with `admin.fd_reserve`, default 256).
 */
export function sessionCap(admin: { readonly max_sessions?: number; readonly fd_reserve?: number }, soft: number, fdsPerSession = FDS_PER_SESSION): number {
  return Math.min(admin.max_sessions ?? Infinity, fdSessionCap(soft, admin.fd_reserve ?? DEFAULT_FD_RESERVE, fdsPerSession));
}
