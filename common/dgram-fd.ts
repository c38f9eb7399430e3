/**
 * The fd of a bound dgram socket (kernel offload: the sockets a session splices).
 */
import type dgram from 'node:dgram';

/**
 * The fd of a bound dgram socket, or -1. Node 24 has no public API for it; `socket._handle.fd`
 * works but emits the runtime deprecation DEP0112, so this reads the same handle through the
 * socket's internal state symbol (docs/offload-facts.md G7). If Node's internals
 * change it returns -1, which only keeps sessions in userspace.
 */
export function dgramFd(s: dgram.Socket): number {
  const fd = handleOf(s)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

interface UdpHandle {
  fd?: number;
  recvStart?(): number;
  recvStop?(): number;
}

function handleOf(s: dgram.Socket): UdpHandle | null {
  const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state symbol');
  if (sym === undefined) return null;
  return (s as unknown as Record<symbol, { handle?: UdpHandle | null } | undefined>)[sym]?.handle ?? null;
}

/**
 * Stop (false) or restart (true) libuv's reads of a bound dgram socket, through the same internal
 * handle (`uv_udp_recv_stop`/`uv_udp_recv_start`). A socket spliced in the kernel still wakes its
 * readers once per datagram (the psock calls the socket's data-ready), and each wake-up costs Node
 * an epoll return and a recvmsg that finds nothing: about 2 µs of CPU per datagram, measured.
 * Returns false if the handle is not reachable. When stopping, returns true only if the socket is
 * then idle for libuv (not read, no send queued: no POLLOUT interest), which is when it may leave the
 * thread's epoll set behind libuv's back (`Splice.unpoll`): libuv would `EPOLL_CTL_MOD` (and abort
 * on ENOENT) a watcher that still has events, but it re-adds one that has none.
 */
export function dgramReading(s: dgram.Socket, reading: boolean): boolean {
  const h = handleOf(s);
  const f = reading ? h?.recvStart : h?.recvStop;
  if (h === null || f === undefined) return false;
  f.call(h);
  return reading || s.getSendQueueCount() === 0;
}
