/**
 * What the parts of a session share (docs/l7mp-compat.md §4.3–4.6): what it needs from its worker
 * ({@link SessionEnv}), its parameters, its messages, its stages, and the view of the session its
 * parts work on ({@link SessionCore}).
 *
 * The session is one actor, `SessionActor` (actors/session.ts: lifecycle, routing, wiring,
 * ends); its parts are modules by concern, each importing this file and none importing
 * session.ts:
 * - actors/hops.ts: the handlers on the packet path (Hop, SetupHandler) and the wiring of a stage;
 * - actors/connect.ts: connect phases, endpoint picks and retries;
 * - actors/splice.ts: kernel offload (arming, splicing, the kernel's counters, unsplicing);
 * - actors/describe.ts: the session's record (metrics, access log) and its actor-tree node;
 * - actors/record.ts and actors/rebuild.ts: the account and the rebuild facts (types, leaves).
 */
import type { ActorContext } from './actor.ts';
import type { L7Error } from '../common/errors.ts';
import type { CoarseTimers } from '../common/clock.ts';
import type { RateLimitedLog } from '../common/log.ts';
import type { ClusterInstance, Connection, ConnectionHandler, EndpointInfo, Metadata } from '../protocols/types.ts';
import type { ClusterCounters } from './cluster.ts';
import type { RoutingTable } from '../routing/table.ts';
import type { HealthView } from '../routing/health.ts';
import type { RouteConfig } from '../cluster-config/snapshot.ts';
import type { OffloadProvider } from '../native-offload/provider.ts';
import { NO_COUNTS, zeroCounts, type SessionRecord, type SessionStatus, type TrafficCounts } from './record.ts';
import type { RecoveryBook, SessionRebuild } from './rebuild.ts';

/** What a session needs from its worker. */
export interface SessionEnv {
  readonly table: RoutingTable;
  cluster(name: string): ClusterInstance | undefined;
  /** Connect counters of a configured cluster (undefined for an unknown name). Control path only. */
  clusterCounters(name: string): ClusterCounters | undefined;
  readonly timers: CoarseTimers;
  readonly rateLog: RateLimitedLog;
  /** Called once when the session ends, with its final record (metrics totals, the access log). */
  onEnd(record: SessionRecord): void;
  /** The worker's session table: rebuildable sessions record their facts there. Optional. */
  readonly recovery?: RecoveryBook | null;
  /** The kernel offload provider when offload is on and available on this worker, else null. */
  readonly offload?: OffloadProvider | null;
  /**
   * A connected route passes a datagram stream into a byte stream (message boundaries are lost
   * there, docs/l7mp-compat.md §3): `from` and `to` are the cluster (or listener) names. Optional.
   */
  framingLost?(listener: string, route: string, from: string, to: string): void;
  /** Endpoint health of a cluster on this worker (outlier detection, active checks). Optional. */
  health?(cluster: string): HealthView | undefined;
  /**
   * A result of an endpoint, once per connection: `ok` a stream connect or the first reply of a
   * datagram stage (reported by its hop, on the packet path); not ok a refused or timed-out connect, or an error (ICMP) on a datagram stage.
   * Failures in a row eject the endpoint (routing/health.ts). Optional.
   */
  endpointResult?(cluster: string, endpoint: string, ok: boolean): void;
}

/** Parameters of one session. */
export interface SessionInit {
  readonly name: string;
  readonly listener: string;
  readonly metadata: Metadata;
  readonly source: Connection;
  /** 0 = no idle timeout. Unit: ms. */
  readonly idleTimeoutMs: number;
  readonly env: SessionEnv;
  /** Set for a session rebuilt after its worker died (see {@link SessionRebuild}). */
  readonly rebuild?: SessionRebuild;
}

/**
 * A session's mailbox: connect results and retries (connect.ts), what its connections report
 * (hops.ts), its timers, and requests of its listener and worker.
 */
export type SessionMsg =
  | { type: 'connected'; stage: number; conn: Connection; gen: number }
  | { type: 'connectFailed'; stage: number; err: L7Error; gen: number }
  | { type: 'retry'; stage: number; gen: number }
  | { type: 'closed'; stage: number; err: L7Error | null; conn: Connection }
  | { type: 'fault'; err: L7Error }
  | { type: 'idle' }
  | { type: 'eof'; stage: number; conn: Connection }
  | { type: 'linger' }
  | { type: 'established' }
  | { type: 'end'; reason: L7Error | null }
  | { type: 'dropEndpoint'; cluster: string; endpoint: string; why: string }
  | { type: 'drain'; quietMs: number };

/**
 * Tell a session that an endpoint was deleted recursively, ejected or found unhealthy (see
 * `SessionActor.traverses`); `why` ends the message of the stage's error.
 */
export function dropEndpointMsg(cluster: string, endpoint: string, why = 'was deleted'): SessionMsg {
  return { type: 'dropEndpoint', cluster, endpoint, why };
}

/**
 * The drain grace of a session whose peer never says it is done (a UDP or Unix datagram peer):
 * while the process drains, it ends once it has been quiet this long, counted from the later of
 * its last datagram and the start of the drain, or after its own idle timeout if that is shorter.
 * An active flow keeps going until the drain deadline. Unit: ms.
 */
export const DRAIN_QUIET_MS = 2000;

/**
 * The process drains: a session of a listener whose sessions have no end of their own (see
 * `drainWhenQuiet` in protocols/types.ts) ends once quiet for `quietMs` (see {@link DRAIN_QUIET_MS}).
 */
export function drainMsg(quietMs: number): SessionMsg {
  return { type: 'drain', quietMs };
}

/** A stage's handler on the packet path (actors/hops.ts `Hop`): reads go to `next`; a full `next` pauses it, `prev` resumes. */
export interface StageHop extends ConnectionHandler {
  next: Connection;
  prev: Connection;
}

/** Holds a stage's reads while the session is set up (actors/hops.ts `SetupHandler`). */
export interface StageSetup extends ConnectionHandler {
  readonly held: Buffer[];
  /** The peer half-closed during setup; replayed after the held data. */
  readonly ended: boolean;
}

/** One element of the route: which cluster, and its connection once up. */
export interface Stage {
  readonly cluster: string;
  readonly role: 'source' | 'ingress' | 'destination' | 'egress';
  conn: Connection | null;
  endpoint: EndpointInfo | null;
  /** Attempts made in the current connect phase. */
  attempts: number;
  /** Bumped on each (re)connect phase so stale results are ignored. */
  gen: number;
  abort: AbortController | null;
  timer: NodeJS.Timeout | null;
  hop: StageHop | null;
  /** Holds reads while the session is set up. */
  setup: StageSetup | null;
  /** Traffic of the connections this stage replaced (reconnects), folded in. */
  prior: TrafficCounts;
  /** The connection replaced last: neighbours may still send to it (counted as its drops) until its successor is wired. */
  retired: Connection | null;
  /** Remote of the last connection. */
  remote: string | null;
  /** Its peer half-closed (FIN): nothing more will be read from it. */
  eof: boolean;
  /** Traffic the kernel relayed for this stage's sockets while spliced (rx: received on it; tx: sent out of it). */
  kernel: TrafficCounts;
  /** Endpoints that failed in the current connect phase: the balancer passes them over if it can (null: none; made at the first failure, as most sessions never have one). */
  avoid: string[] | null;
  /** The current connection's endpoint was reported as a success (stream: connected; datagram: first reply). */
  confirmed: boolean;
}

/** Add `endpoint` to the stage's {@link Stage.avoid} list (once). */
export function avoidEndpoint(st: Stage, endpoint: string): void {
  if (st.avoid === null) st.avoid = [endpoint];
  else if (!st.avoid.includes(endpoint)) st.avoid.push(endpoint);
}

/** The stages of a session on route `r`: `source`, the ingress chain, the destination, the egress chain (an array of that size: a session keeps it for life). */
export function routeStages(source: Stage, r: RouteConfig): Stage[] {
  if (r.ingress.length + r.egress.length === 0) return [source, newStage(r.destination, 'destination', null)];
  return [source, ...r.ingress.map((c) => newStage(c, 'ingress', null)), newStage(r.destination, 'destination', null), ...r.egress.map((c) => newStage(c, 'egress', null))];
}

/** A stage before its first connect (or the source stage, which starts with its connection). */
export function newStage(cluster: string, role: Stage['role'], conn: Connection | null): Stage {
  return { cluster, role, conn, endpoint: null, attempts: 0, gen: 0, abort: null, timer: null, hop: null, setup: null, prior: NO_COUNTS, retired: null, remote: conn?.remote ?? null, eof: false, kernel: NO_COUNTS, avoid: null, confirmed: false };
}

/**

/**
 * A session as its parts see it: the state the `SessionActor` keeps and the calls they make
 * back. The actor alone writes these fields, but `replay` (connect.ts drops it at the first reply).
 */
export interface SessionCore {
  readonly ctx: ActorContext<SessionMsg>;
  readonly init: SessionInit;
  /** The cycle: [0] the source, then the ingress chain, the destination, the egress chain. */
  readonly stages: Stage[];
  readonly status: SessionStatus;
  /** The session is ending (or ended): nothing more is set up. */
  readonly ended: boolean;
  readonly route: RouteConfig | null;
  /** Pending rebuild (until the session is connected or fails). */
  readonly rebuild: SessionRebuild | null;
  /** When the session started. Unit: ms since the epoch. */
  readonly started: number;
  readonly events: ReadonlyArray<{ readonly event: string; readonly timestamp: string; readonly message: string }>;
  /**
   * The downstream's first datagrams (held during setup) while the first upstream stage is a
   * datagram stage that has not answered yet: if its endpoint turns out dead (ICMP), they are
   * replayed to the endpoint tried next. Dropped at its first reply.
   */
  replay: Buffer[] | null;
  /** Add an event to the session's log (actor tree). */
  event(event: string, message: string | null): void;
  /** End the session with an error: its error reply (during setup), a rate-limited log line, the end. */
  fail(err: L7Error): void;
  /** Stage `i`'s connect attempt `gen` produced `conn` (now, or from the 'connected' message). */
  connected(i: number, conn: Connection, gen: number): void;
}
