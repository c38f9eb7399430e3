/**
 * File descriptors a session holds, for admission control. A session holds its downstream's fds
 * (the listener protocol's `downstreamFds`: 1 for a connection's socket, 0 when it is served
 * through the listening sockets) and one upstream socket. Admission charges each session its
 * listener's figure against the process's fd budget (common/fd-limit.ts `fdBudget`); the session
 * cap (`admin.max_sessions`'s bound, `l7mp_process_session_limit`) is the budget over the fewest
 * fds a session of the config holds, the most sessions the budget can hold. So a UDP gateway
 * whose listeners answer from their listening sockets (one worker's, by default) holds twice the
 * sessions of one with per-session downstream sockets, also beside a TCP listener. Chains (more
 * upstream stages) are not counted, as before: `admin.fd_reserve` and EMFILE handling (a counted
 * `fd_exhausted` drop) cover them. The main thread (the cap it reports) and every worker (the cap
 * and the charges admission enforces) compute them from the same snapshot.
 */
import type { ConfigSnapshot, ListenerConfig } from '../cluster-config/snapshot.ts';
import type { ProcessShape } from '../protocols/types.ts';
import { protocol } from '../protocols/registry.ts';
import { FDS_PER_SESSION } from '../common/fd-limit.ts';

/** The fds one session of listener `l` holds: its downstream's and one upstream socket. */
export function listenerSessionFds(l: ListenerConfig, shape: ProcessShape): number {
  return (protocol(l.spec.protocol)?.listener?.downstreamFds?.(l.spec, shape) ?? 1) + 1;
}

/** The fewest fds a session of `snapshot` holds (at least 1); FDS_PER_SESSION with no listener. */
export function sessionFds(snapshot: ConfigSnapshot, shape: ProcessShape): number {
  if (snapshot.listeners.length === 0) return FDS_PER_SESSION;
  let fewest = Infinity;
  for (const l of snapshot.listeners) fewest = Math.min(fewest, listenerSessionFds(l, shape));
  return fewest;
}
