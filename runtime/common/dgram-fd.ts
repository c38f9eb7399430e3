/**
 * The fd of a bound dgram socket (kernel offload: the sockets a session splices).
 */
import type dgram from 'node:dgram';

/**
 * The fd of a bound dgram socket, or -1. Node 24 has no public API for it; `socket._handle.fd`
 * works but emits the runtime deprecation DEP0112, so this reads the same handle through the
 * socket's internal state symbol (shared/reference/offload-facts.md G7). If Node's internals
 * change it returns -1, which only keeps sessions in userspace.
 */
export function dgramFd(s: dgram.Socket): number {
  const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state symbol');
  if (sym === undefined) return -1;
  const state = (s as unknown as Record<symbol, { handle?: { fd?: number } | null } | undefined>)[sym];
  const fd = state?.handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}
