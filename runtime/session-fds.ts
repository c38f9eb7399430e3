/**
 * File descriptors one session of a config holds at most, for the process session cap
 * (common/fd-limit.ts: (open-file soft limit - reserve) / this). A session holds its downstream's
 * fds (the listener protocol's `downstreamFds`: 1 for a connection's socket, 0 when it is served
 * through the listening sockets) and one upstream socket. So a process whose listeners all answer
 * from their listening sockets (one worker's UDP listeners, by default) may hold twice the
 * sessions of one with per-session downstream sockets. Chains (more upstream stages) are not
 * counted, as before: `admin.fd_reserve` and EMFILE handling (a counted `fd_exhausted` drop) cover
 * them. The main thread (the cap it reports) and every worker (the cap admission enforces)
 * compute it from the same snapshot.
 */
import type { ConfigSnapshot } from '../cluster-config/snapshot.ts';
import type { ProcessShape } from '../protocols/types.ts';
import { protocol } from '../protocols/registry.ts';
import { FDS_PER_SESSION } from '../common/fd-limit.ts';

/** The most fds a session of `snapshot` holds (at least 1); FDS_PER_SESSION with no listener. */
export function sessionFds(snapshot: ConfigSnapshot, shape: ProcessShape): number {
  if (snapshot.listeners.length === 0) return FDS_PER_SESSION;
  let down = 0;
  for (const l of snapshot.listeners) {
    const side = protocol(l.spec.protocol)?.listener;
    const fds = side?.downstreamFds?.(l.spec, shape) ?? 1;
    if (fds > down) down = fds;
  }
  return down + 1;
}
