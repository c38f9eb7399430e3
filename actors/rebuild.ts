/**
 * Sessions that outlive their worker (issue 15): the facts a worker records of each session
 * another worker could rebuild (runtime/session-table.ts), and the request that rebuilds one on
 * the worker that takes over (actors/listener.ts adopts the downstream, actors/session.ts connects
 * the upstream from the old 5-tuple).
 */
import type { L7Error } from '../common/errors.ts';
import type { Connection, EndpointInfo } from '../protocols/types.ts';

/**
 * What another worker needs to rebuild a session if this worker dies (runtime/session-table.ts):
 * a plain UDP session (a datagram listener's peer routed to one datagram cluster, no chains) and
 * its two 5-tuples.
 */
export interface RecoveryFacts {
  listener: string;
  listenerPort: number;
  route: string;
  cluster: string;
  endpoint: string | null;
  peerAddress: string;
  peerPort: number;
  /** Served through the listening sockets (UDP `session_sockets: listener`). */
  shared: boolean;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
}

/** Where a worker keeps its sessions' {@link RecoveryFacts} (runtime/session-table.ts). Handles: -1 = none. */
export interface RecoveryBook {
  /** Record or rewrite (`handle` >= 0) a session; returns its handle, -1 if it could not be recorded. */
  put(f: RecoveryFacts, handle: number): number;
  /** The session ended: forget it. Returns -1. */
  drop(handle: number): number;
}

/**
 * A session rebuilt from a dead worker's record: no routing, no load balancing; the route is taken
 * by name and the upstream socket binds the old local address:port and connects to the old
 * endpoint address:port, so the endpoint sees no change.
 */
export interface SessionRebuild {
  readonly route: string;
  readonly cluster: string;
  /** The endpoint's name in the config (null when it has none any more: health is not reported). */
  readonly endpoint: string | null;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** The worker slot that died. */
  readonly from: number;
  /** Called once: the session is connected again (null), or could not be rebuilt (it ends). */
  done(err: L7Error | null): void;
}

/**
 * The {@link RecoveryFacts} of a session if another worker could rebuild it: one datagram
 * downstream and one datagram destination that report their 5-tuples
 * ({@link Connection.rebuildTuple}), no chains; else null. `stages` are the session's, the source
 * first. Control path (connected, reconnected).
 */
export function recoveryFacts(
  listener: string,
  route: string | null,
  source: Connection,
  stages: ReadonlyArray<{ readonly cluster: string; readonly endpoint: EndpointInfo | null; readonly conn: Connection | null }>,
): RecoveryFacts | null {
  const dst = stages[1];
  const down = source.rebuildTuple?.() ?? null;
  const up = stages.length === 2 && dst !== undefined ? (dst.conn?.rebuildTuple?.() ?? null) : null;
  if (down === null || up === null || dst === undefined || route === null) return null;
  return {
    listener,
    listenerPort: down.localPort,
    route,
    cluster: dst.cluster,
    endpoint: dst.endpoint?.name ?? null,
    peerAddress: down.remoteAddress,
    peerPort: down.remotePort,
    shared: down.shared === true,
    remoteAddress: up.remoteAddress,
    remotePort: up.remotePort,
    localAddress: up.localAddress,
    localPort: up.localPort,
  };
}
