/**
 * A session's account: the traffic counts of its downstream and of each upstream stage, as a
 * session keeps them (actors/session-core.ts `Stage`) and as they leave it: the final record
 * (`SessionEnv.onEnd`: metrics totals, the access log) and live snapshots (metrics at scrape time,
 * the actor tree; built by actors/describe.ts). Imports nothing of the session, so the runtime's
 * metrics and access log depend on these types only.
 */
import type { ConnStats } from '../protocols/types.ts';

/** l7mp's session statuses. */
export type SessionStatus = 'INIT' | 'CONNECTED' | 'FINALIZING' | 'DESTROYED';

/**
 * Traffic of one side of a session, as seen from the proxy: `rx` is what the peer sent to the
 * proxy, `tx` what the proxy sent to the peer. Packets are datagrams (datagram streams) or read
 * chunks / writes (byte streams).
 */
export interface TrafficCounts {
  rxPackets: number;
  /** Unit: bytes. */
  rxBytes: number;
  txPackets: number;
  /** Unit: bytes. */
  txBytes: number;
  /** Dropped by the connection: sent after it closed, or over its hold limit before setup. */
  drops: number;
  /** Held while the session was set up and dropped because it ended before connecting (final records only). */
  setupDrops: number;
  /** Sends the kernel refused, by errno (datagram sockets; see {@link ConnStats.sendFailed}): not in tx. */
  dropEmsgsize: number;
  dropEnobufs: number;
  dropEconnrefused: number;
  dropSendError: number;
}

/**
 * One upstream stage of a session. Its counts cover every connection the stage had: a stage that
 * reconnected (`retry_on: disconnect|always`) adds the traffic of the connections it replaced.
 */
export interface StageRecord extends TrafficCounts {
  role: 'ingress' | 'destination' | 'egress';
  cluster: string;
  /** Name of the endpoint last picked, null for virtual clusters or when none was picked. */
  endpoint: string | null;
  /** Its address (`spec.address`). */
  address: string | null;
  /** Remote address of the last connection (`host:port`), null if it never connected. */
  remote: string | null;
  /** A connection is open on this stage now (always false in a final record). */
  connected: boolean;
}

/**
 * A session's account: final when it ends (`SessionEnv.onEnd`), or a snapshot of a live
 * session (`SessionActor.record`). The top-level traffic counts are the downstream's.
 */
export interface SessionRecord extends TrafficCounts {
  name: string;
  listener: string;
  route: string | null;
  status: SessionStatus;
  /** `normal`, or the error code that ended it; `active` for a live snapshot. */
  reason: string;
  /** Unit: ms. */
  durationMs: number;
  /** The downstream peer (`host:port`, a path for Unix sockets). */
  remote: string;
  /** Upstream stages in route order: ingress chain, destination, egress chain. */
  stages: StageRecord[];
}

/** All-zero traffic counts (shared with the metrics tally). */
export function zeroCounts(): TrafficCounts {
  return { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, drops: 0, setupDrops: 0, dropEmsgsize: 0, dropEnobufs: 0, dropEconnrefused: 0, dropSendError: 0 };
}

/**
 * All zero and frozen: a stage's `prior` and `kernel` counts until something is to be added to them
 * (a reconnect, a splice), which then gives the stage counts of its own. Most sessions never need
 * them: 2 × 10 numbers less per stage.
 */
export const NO_COUNTS: TrafficCounts = Object.freeze(zeroCounts());

/** Add the packet and byte counts of `k` (not its drops) to `into`. */
export function addCounts(into: TrafficCounts, k: TrafficCounts): void {
  into.rxPackets += k.rxPackets;
  into.rxBytes += k.rxBytes;
  into.txPackets += k.txPackets;
  into.txBytes += k.txBytes;
}

/** Add a connection's counters (traffic and drops) to `into`. */
export function addStats(into: TrafficCounts, s: ConnStats): void {
  into.rxPackets += s.rxPackets;
  into.rxBytes += s.rxBytes;
  into.txPackets += s.txPackets;
  into.txBytes += s.txBytes;
  into.drops += s.drops;
  into.dropEmsgsize += s.dropEmsgsize;
  into.dropEnobufs += s.dropEnobufs;
  into.dropEconnrefused += s.dropEconnrefused;
  into.dropSendError += s.dropSendError;
}
