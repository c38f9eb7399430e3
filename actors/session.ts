/**
 * The session actor: one downstream connection and its route's upstream stages (compat reference
 * §4.3–4.6).
 *
 * Stages form a cycle; each stage's reads go to the next one:
 * ```
 *   [0] source ─► [1..i] ingress chain ─► [i+1] destination ─► [i+2..] egress chain ─┐
 *    ▲                                                                                 │
 *    └─────────────────────────────────────────────────────────────────────────────────┘
 * ```
 * Life: INIT (route lookup, all stages connect in parallel, each with the route's retry policy) →
 * CONNECTED (handlers wired: packets flow socket to socket without this actor) → FINALIZING →
 * DESTROYED. A stage that closes later is reconnected under `retry_on: disconnect|always`, else
 * the session ends. Idle sessions end after the listener's idle timeout (coarse timers: no timer
 * per session or packet).
 *
 * Kernel offload (native-offload/, `-o init`): when every connection is a plain connected UDP
 * socket, the hop towards the source is armed; the first reply that reaches the source (or the
 * source's N-th datagram, `offload.establish: {packets: N}`) makes the
 * session established and its sockets are spliced in the kernel (socket i's datagrams leave
 * through socket i+1). The actor still owns the flow: it reads the kernel's per-socket counters
 * into its stages (idle timeout, metrics, actor tree, access log) and unsplices before closing.
 */
import { Actor, type StopReason } from './actor.ts';
import { L7Error, ErrorCode, asL7Error } from '../runtime/common/errors.ts';
import type { CoarseTimers, Tickable } from '../runtime/common/clock.ts';
import type { RateLimitedLog } from '../runtime/common/log.ts';
import type { ClusterInstance, Connection, ConnectionHandler, ConnStats, EndpointInfo, Metadata, SessionInfo } from '../protocols/types.ts';
import type { ClusterCounters } from './cluster.ts';
import type { RoutingTable } from '../routing/table.ts';
import type { HealthView } from '../routing/health.ts';
import type { EndpointConfig, RetryConfig, RouteConfig } from '../cluster-config/snapshot.ts';
import type { OffloadProvider, Splice } from '../native-offload/provider.ts';

/** l7mp's session statuses. */
export type SessionStatus = 'INIT' | 'CONNECTED' | 'FINALIZING' | 'DESTROYED';

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
   * there, compat reference §3): `from` and `to` are the cluster (or listener) names. Optional.
   */
  framingLost?(listener: string, route: string, from: string, to: string): void;
  /** Endpoint health of a cluster on this worker (outlier detection, active checks). Optional. */
  health?(cluster: string): HealthView | undefined;
  /**
   * A result of an endpoint, control path only: `ok` a stream connect or the first reply of a
   * datagram stage; not ok a refused or timed-out connect, or an error (ICMP) on a datagram stage.
   * Failures in a row eject the endpoint (routing/health.ts). Optional.
   */
  endpointResult?(cluster: string, endpoint: string, ok: boolean): void;
}

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
 * A session's account: final when it ends ({@link SessionEnv.onEnd}), or a snapshot of a live
 * session ({@link SessionActor.record}). The top-level traffic counts are the downstream's.
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

function addCounts(into: TrafficCounts, k: TrafficCounts): void {
  into.rxPackets += k.rxPackets;
  into.rxBytes += k.rxBytes;
  into.txPackets += k.txPackets;
  into.txBytes += k.txBytes;
}

function addStats(into: TrafficCounts, s: ConnStats): void {
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

type Msg =
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
 * {@link SessionActor.traverses}); `why` ends the message of the stage's error.
 */
export function dropEndpointMsg(cluster: string, endpoint: string, why = 'was deleted'): Msg {
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
export function drainMsg(quietMs: number): Msg {
  return { type: 'drain', quietMs };
}

/**
 * After a stage's peer half-closes towards a stage that cannot half-close (UDP, WebSocket), the
 * session stays up this long for replies in flight, then ends. Unit: ms.
 */
const HALF_CLOSE_LINGER_MS = 1000;

/**
 * At most this many of the downstream's first datagrams are kept for a replay to another endpoint
 * when the first one turns out dead (more were held: none is kept).
 */
const MAX_REPLAY = 16;

/** One element of the route: which cluster, and its connection once up. */
interface Stage {
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
  hop: Hop | null;
  /** Holds reads while the session is set up. */
  setup: SetupHandler | null;
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
  /** Endpoints that failed in the current connect phase: the balancer passes them over if it can. */
  avoid: string[];
  /** The current connection's endpoint was reported as a success (stream: connected; datagram: first reply). */
  confirmed: boolean;
}

/** A stage before its first connect (or the source stage, which starts with its connection). */
function newStage(cluster: string, role: Stage['role'], conn: Connection | null): Stage {
  return { cluster, role, conn, endpoint: null, attempts: 0, gen: 0, abort: null, timer: null, hop: null, setup: null, prior: zeroCounts(), retired: null, remote: conn?.remote ?? null, eof: false, kernel: zeroCounts(), avoid: [], confirmed: false };
}

/**
 * The per-connection handler on the packet path: forwards every read to the next stage. If the
 * next stage buffers above its high-water mark, this stage stops reading until it drains.
 */
class Hop implements ConnectionHandler {
  next: Connection;
  prev: Connection;
  readonly self: Connection;
  private readonly session: SessionActor;
  private readonly stage: number;

  constructor(session: SessionActor, stage: number, self: Connection, next: Connection, prev: Connection) {
    this.session = session;
    this.stage = stage;
    this.self = self;
    this.next = next;
    this.prev = prev;
  }

  onData(data: Buffer): boolean {
    try {
      if (!this.next.send(data)) this.self.pause();
      // The source may read into the same memory again if the write went out whole.
      return this.next.sendReleased?.() === true;
    } catch (e) {
      // The data path never throws into the socket's event loop: the session handles the fault.
      this.session.ctx.self.tell({ type: 'fault', err: asL7Error(e, ErrorCode.Internal, 'packet path') });
      return false;
    }
  }

  onDrain(): void {
    this.prev.resume();
  }

  onEnd(): void {
    // Every read of this connection was forwarded synchronously before its end arrives.
    this.session.ctx.self.tell({ type: 'eof', stage: this.stage, conn: this.self });
  }

  onClose(err: L7Error | null): void {
    this.session.ctx.self.tell({ type: 'closed', stage: this.stage, err, conn: this.self });
  }
}

/**
 * A hop of a session that may be offloaded: the `after`-th datagram it forwards makes the session
 * established (then spliced). Armed towards the source (after = 1: the first reply), and on the
 * source itself when it has `spliceAfter` (`offload.establish: {packets: N}`, a one-way flow).
 * Only used when offload is on, so the plain path is unchanged.
 */
class ArmedHop extends Hop {
  private left: number;
  private readonly owner: SessionActor;

  constructor(session: SessionActor, stage: number, self: Connection, next: Connection, prev: Connection, after = 1) {
    super(session, stage, self, next, prev);
    this.owner = session;
    this.left = after;
  }

  override onData(data: Buffer): boolean {
    const released = super.onData(data);
    if (this.left > 0 && --this.left === 0) this.owner.ctx.self.tell({ type: 'established' });
    return released;
  }
}

/** Holds reads and reports a close while a session is being set up. */
class SetupHandler implements ConnectionHandler {
  readonly held: Buffer[] = [];
  /** The peer half-closed during setup; replayed after the held data. */
  ended = false;
  private readonly session: SessionActor;
  private readonly stage: number;
  private readonly conn: Connection;

  constructor(session: SessionActor, stage: number, conn: Connection) {
    this.session = session;
    this.stage = stage;
    this.conn = conn;
  }
  onData(data: Buffer): void {
    if (this.held.length < 256) this.held.push(data);
    else this.conn.stats.drops++;
  }
  onDrain(): void {}
  onEnd(): void {
    this.ended = true;
  }
  onClose(err: L7Error | null): void {
    this.session.ctx.self.tell({ type: 'closed', stage: this.stage, err, conn: this.conn });
  }
}

export class SessionActor extends Actor<Msg> implements Tickable {
  readonly kind = 'session' as const;
  status: SessionStatus = 'INIT';
  readonly events: Array<{ event: string; timestamp: string; message: string }> = [];

  private readonly init: SessionInit;
  private readonly started = Date.now();
  private route: RouteConfig | null = null;
  private stages: Stage[] = [];
  private lastPackets = -1;
  private lastActive = 0;
  private ended = false;
  /** Pending end after a half-close that could not be passed on. */
  private linger: NodeJS.Timeout | null = null;
  /** Every connection is a plain UDP socket and offload is on: the session may be spliced. */
  private offloadable = false;
  /** The live kernel splice, if any. */
  private splice: Splice | null = null;
  /** Splice again at the next tick (a socket was not connected yet, or a stage reconnected). */
  private spliceWanted = false;
  /** Kernel counters: the last read, and a scratch buffer (3 per socket). */
  private kernelSeen: Float64Array | null = null;
  private kernelBuf: Float64Array | null = null;
  /** CLOCK_MONOTONIC ns of the last datagram the kernel relayed (0: none yet). */
  private kernelLastNs = 0;
  /** Datagrams JavaScript received on this session's sockets when it was spliced (to tell how many it saw after). */
  private jsRxAtSplice = 0;
  /** Times the session was spliced, and watchdog resets. */
  private splices = 0;
  private spliceResets = 0;
  /**
   * The downstream's first datagrams (held during setup) while the first upstream stage is a
   * datagram stage that has not answered yet: if its endpoint turns out dead (ICMP), they are
   * replayed to the endpoint tried next. Dropped at its first reply.
   */
  private replay: Buffer[] | null = null;
  /** Stage whose next connection gets {@link replay} (-1: none). */
  private replayStage = -1;
  /** Some datagram stage has not had its first reply yet (checked at each tick). */
  private unconfirmed = false;
  /** Draining: end once quiet this long (0: not draining, or a session that ends by itself). Unit: ms. */
  private drainQuietMs = 0;
  /** When the drain reached this session (ms since the epoch): quiet time counts from then at the earliest. */
  private drainFrom = 0;
  /** Pending rebuild (until the session is connected or fails). */
  private rebuild: SessionRebuild | null;
  /** This session's record in the worker's session table (-1: none). */
  private recoveryHandle = -1;

  constructor(init: SessionInit) {
    super();
    this.init = init;
    this.rebuild = init.rebuild ?? null;
  }

  private event(event: string, message: string): void {
    this.events.push({ event, timestamp: new Date().toISOString(), message });
  }

  /**
   * Routing and the first connects run on metadata a peer shaped (headers, JSONSocket header
   * values, RTP fields): whatever throws in them fails this session only, with its error reply,
   * its end record and its source connection closed (a throw out of preStart would skip postStop).
   */
  override preStart(): void {
    try {
      this.setup();
    } catch (e) {
      if (!this.ended) this.fail(asL7Error(e, ErrorCode.ActorFailed, `session ${this.init.name}: setup`));
    }
  }

  private setup(): void {
    const { init } = this;
    this.event('INIT', `Session ${init.name} initialized`);
    const source = newStage(init.listener, 'source', init.source);
    this.stages = [source];
    source.setup = new SetupHandler(this, 0, init.source);
    init.source.setHandler(source.setup);
    const rb = this.rebuild;
    if (rb !== null) {
      // Rebuilt after its worker died: the route it had, the endpoint it had; no rules, no balancer.
      const route = init.env.table.routes.get(rb.route);
      if (route === undefined || route.destination !== rb.cluster || route.ingress.length + route.egress.length > 0) {
        this.fail(new L7Error(ErrorCode.ConfigUnknownRef, `session ${init.name}: route "${rb.route}" to "${rb.cluster}" is not in the config any more`));
        return;
      }
      this.route = route;
      this.event('REBUILD', `Session of worker ${rb.from} rebuilt: ${rb.localAddress}:${rb.localPort} -> ${rb.remoteAddress}:${rb.remotePort}`);
      this.stages.push(newStage(route.destination, 'destination', null));
      this.connectStage(1);
      return;
    }
    let match;
    try {
      match = init.env.table.lookup(init.listener, init.name, init.metadata as Record<string, unknown>);
    } catch (e) {
      this.fail(asL7Error(e, ErrorCode.RouteNotFound));
      return;
    }
    this.route = match.route;
    this.event('LOOKUP SUCCESS', match.via);
    const r = match.route;
    for (const c of r.ingress) this.stages.push(newStage(c, 'ingress', null));
    this.stages.push(newStage(r.destination, 'destination', null));
    for (const c of r.egress) this.stages.push(newStage(c, 'egress', null));
    for (let i = 1; i < this.stages.length; i++) this.connectStage(i);
  }

  receive(msg: Msg): void {
    if (this.ended) return;
    switch (msg.type) {
      case 'connected':
        this.onConnected(msg.stage, msg.conn, msg.gen);
        return;
      case 'connectFailed':
        this.onConnectFailed(msg.stage, msg.err, msg.gen);
        return;
      case 'retry': {
        const st = this.stages[msg.stage];
        if (st !== undefined && st.gen === msg.gen) this.attempt(msg.stage);
        return;
      }
      case 'closed':
        this.onStageClosed(msg.stage, msg.err, msg.conn, true);
        return;
      case 'fault':
        this.fail(msg.err);
        return;
      case 'eof':
        this.onStageEof(msg.stage, msg.conn);
        return;
      case 'linger':
        this.end(null);
        return;
      case 'established':
        this.trySplice();
        return;
      case 'idle':
        this.end(new L7Error(ErrorCode.SessionIdle, `idle for ${this.init.idleTimeoutMs} ms`));
        return;
      case 'end':
        this.end(msg.reason);
        return;
      case 'dropEndpoint':
        this.dropEndpoint(msg.cluster, msg.endpoint, msg.why);
        return;
      case 'drain':
        this.startDrain(msg.quietMs);
        return;
    }
  }

  private retry(): RetryConfig {
    return (this.route as RouteConfig).retry;
  }

  /** Start a connect phase for stage `i`, passing over `avoid` (the endpoint that just failed) if another is available. */
  private connectStage(i: number, avoid: string | null = null): void {
    const st = this.stages[i] as Stage;
    st.gen++;
    st.attempts = 0;
    st.avoid.length = 0;
    if (avoid !== null) st.avoid.push(avoid);
    this.attempt(i);
  }

  /** The endpoint stage `st` would connect to now. */
  private pickFor(st: Stage): EndpointConfig | null {
    const env = this.init.env;
    return env.table.balancer(st.cluster)?.pick(this.init.metadata as Record<string, unknown>, this.init.name, st.avoid, env.health?.(st.cluster) ?? null) ?? null;
  }

  /** Report a result of the stage's endpoint to the worker's outlier detection. */
  private report(st: Stage, ok: boolean): void {
    if (st.endpoint === null) return;
    if (ok) st.confirmed = true;
    this.init.env.endpointResult?.(st.cluster, st.endpoint.name, ok);
  }

  /** A datagram stage that has had its first reply is a success of its endpoint (reported once per connection). */
  private confirm(i: number): void {
    const st = this.stages[i] as Stage;
    if (st.confirmed || st.conn === null || st.conn.stats.rxPackets === 0) return;
    this.report(st, true);
    if (i === 1) this.replay = null;
  }

  private attempt(i: number): void {
    const st = this.stages[i] as Stage;
    st.attempts++;
    st.timer = null;
    const gen = st.gen;
    const self = this.ctx.self;
    const cc = this.init.env.clusterCounters(st.cluster);
    if (cc !== undefined) {
      cc.attempts++;
      if (st.attempts > 1 || this.status === 'CONNECTED') cc.retries++;
    }
    const cluster = this.init.env.cluster(st.cluster);
    if (cluster === undefined) {
      // A cluster that does not exist (yet) is an ordinary failed attempt (l7mp §4.6).
      self.tell({ type: 'connectFailed', stage: i, gen, err: new L7Error(ErrorCode.ConfigUnknownRef, `Cannot find Cluster "${st.cluster}"`) });
      return;
    }
    const rb = this.rebuild;
    let info: SessionInfo = { name: this.init.name, metadata: this.init.metadata };
    if (rb !== null) {
      st.endpoint = { name: rb.endpoint ?? rb.remoteAddress, address: rb.remoteAddress, weight: 1 };
      info = { ...info, rebind: { localAddress: rb.localAddress, localPort: rb.localPort, remotePort: rb.remotePort } };
    } else {
      const ep = this.pickFor(st);
      st.endpoint = ep === null ? null : { name: ep.name, address: ep.spec.address, weight: ep.weight };
    }
    const timeout = this.retry().timeout;
    const ac = new AbortController();
    st.abort = ac;
    const t = setTimeout(() => ac.abort(), timeout);
    const p = cluster.connect(info, st.endpoint, ac.signal).finally(() => clearTimeout(t));
    this.ctx.pipeToSelf(
      p,
      (conn) => ({ type: 'connected', stage: i, conn, gen }),
      (e) => ({
        type: 'connectFailed',
        stage: i,
        gen,
        err: ac.signal.aborted
          ? new L7Error(ErrorCode.UpstreamTimeout, `cluster "${st.cluster}": connect timed out after ${timeout} ms`, { cause: e })
          : asL7Error(e, ErrorCode.UpstreamConnect),
      }),
    );
  }

  private onConnected(i: number, conn: Connection, gen: number): void {
    const st = this.stages[i] as Stage;
    if (st.gen !== gen || this.status === 'FINALIZING') {
      conn.close(); // a stale attempt that finished after it was superseded
      return;
    }
    st.abort = null;
    st.conn = conn;
    st.remote = conn.remote;
    st.confirmed = false;
    // A stream connect proves the endpoint; a datagram "connect" is local: its first reply does.
    if (conn.kind !== 'datagram') this.report(st, true);
    else if (st.endpoint !== null) {
      this.unconfirmed = true;
      if (this.status === 'CONNECTED') this.init.env.timers.add(this);
    }
    const cc = this.init.env.clusterCounters(st.cluster);
    if (cc !== undefined) {
      cc.connections++;
      if (this.status === 'INIT') cc.requests++;
    }
    if (this.status === 'CONNECTED') {
      // A reconnect: put the new connection into the live cycle; the one it replaces gets no more sends.
      this.wireStage(i);
      this.retire(st, null);
      this.event('CONNECT', `Stage ${st.cluster} reconnected${st.endpoint === null ? '' : ` to ${st.endpoint.name}`}`);
      this.remember();
      if (this.replayStage === i && this.replay !== null) {
        this.replayStage = -1;
        for (const d of this.replay) conn.send(d);
      }
      return;
    }
    st.setup = new SetupHandler(this, i, conn);
    conn.setHandler(st.setup);
    if (this.stages.every((s) => s.conn !== null)) this.wireAll();
  }

  private onConnectFailed(i: number, err: L7Error, gen: number): void {
    const st = this.stages[i] as Stage;
    if (st.gen !== gen) return;
    st.abort = null;
    const cc = this.init.env.clusterCounters(st.cluster);
    if (cc !== undefined) cc.failures++;
    const failed = st.endpoint?.name;
    if (failed !== undefined && (err.code === ErrorCode.UpstreamConnect || err.code === ErrorCode.UpstreamTimeout)) {
      this.report(st, false);
      if (!st.avoid.includes(failed)) st.avoid.push(failed);
    }
    if (this.rebuild !== null) {
      // The old local port is taken (or the endpoint is gone): a retry would not keep the 5-tuple.
      this.fail(new L7Error(err.code, `session ${this.init.name}: rebuild failed: ${err.message}`, { cause: err }));
      return;
    }
    const r = this.retry();
    // At setup, connect-failure/always allow num_retries more attempts; a reconnect phase
    // (disconnect/always) allows num_retries attempts in all (compat reference §4.6).
    const reconnecting = this.status === 'CONNECTED';
    const allowed = reconnecting ? r.num_retries : r.retry_on === 'connect-failure' || r.retry_on === 'always' ? r.num_retries + 1 : 1;
    if (st.attempts < allowed) {
      const g = st.gen;
      // Another endpoint to try: at once (Envoy retries on another host without waiting); the
      // same one again: `timeout` later.
      const next = failed === undefined ? null : this.pickFor(st);
      if (next !== null && next.name !== failed) this.ctx.self.tell({ type: 'retry', stage: i, gen: g });
      else st.timer = setTimeout(() => this.ctx.self.tell({ type: 'retry', stage: i, gen: g }), r.timeout);
      return;
    }
    this.fail(new L7Error(err.code, `Pipeline setup failed for session "${this.init.name}": ${err.message}`, { cause: err, status: 404 }));
  }

  /** Every stage is up: replay what was held and let packets flow. */
  private wireAll(): void {
    const off = this.init.env.offload;
    this.offloadable = off !== undefined && off !== null && this.stages.every((s) => s.conn?.spliceFd !== undefined);
    const held: Array<SetupHandler | null> = [];
    for (let i = 0; i < this.stages.length; i++) held.push(this.wireStage(i));
    const first = this.stages[1];
    const srcHeld = held[0]?.held;
    if (first !== undefined && first.conn?.kind === 'datagram' && first.endpoint !== null && srcHeld !== undefined && srcHeld.length > 0 && srcHeld.length <= MAX_REPLAY) this.replay = srcHeld;
    this.status = 'CONNECTED';
    this.event('CONNECT', 'Session successfully connected');
    if (this.rebuild !== null) {
      const rb = this.rebuild;
      this.rebuild = null;
      rb.done(null);
    }
    this.remember();
    this.checkFraming();
    try {
      // Before any upstream data is replayed to it: a handshake reply (JSONSocket 200) goes first.
      this.init.source.onSessionConnected?.();
    } catch (e) {
      this.fail(asL7Error(e, ErrorCode.Internal, 'session connected hook'));
      return;
    }
    this.ctx.log.debug({ session: this.init.name, route: this.route?.name }, 'session connected');
    if (this.init.idleTimeoutMs > 0 || this.offloadable || this.unconfirmed || this.drainQuietMs > 0) {
      this.lastActive = Date.now();
      this.init.env.timers.add(this);
    }
    for (let i = 0; i < this.stages.length; i++) {
      const hop = (this.stages[i] as Stage).hop as Hop;
      const setup = held[i];
      if (setup === null || setup === undefined) continue;
      for (const d of setup.held) hop.onData(d);
      if (setup.ended) hop.onEnd();
    }
  }

  /**
   * Report (once per session) the first hop where messages with real boundaries enter a byte
   * stream. Walking the cycle from the source: a stage's output is framed if it is a datagram
   * connection, or a pass-through stage whose input was framed (Echo after a TCP source carries
   * chunks, not messages); the framing is lost where framed output meets a byte-stream connection
   * that is not a pass-through.
   */
  private checkFraming(): void {
    const report = this.init.env.framingLost;
    if (report === undefined) return;
    const n = this.stages.length;
    let framed = false;
    for (let i = 0; i < n; i++) {
      const a = (this.stages[i] as Stage).conn;
      const b = (this.stages[(i + 1) % n] as Stage).conn;
      if (a === null || b === null) return;
      framed = a.passThrough === true ? framed : a.kind === 'datagram';
      if (framed && b.kind === 'byte' && b.passThrough !== true) {
        report(this.init.listener, this.route?.name ?? '', (this.stages[i] as Stage).cluster, (this.stages[(i + 1) % n] as Stage).cluster);
        return;
      }
    }
  }

  /**
   * Stage `i`'s peer half-closed: pass the half-close on to the next stage (l7mp's `end:true`
   * pipes). The session ends once every stage has ended; if the next stage cannot half-close, it
   * ends after a linger for replies in flight.
   */
  private onStageEof(i: number, conn: Connection): void {
    const st = this.stages[i] as Stage;
    if (st.conn !== conn || st.eof) return;
    st.eof = true;
    const n = this.stages.length;
    const next = this.stages[(i + 1) % n] as Stage;
    const propagated = next.conn?.end() ?? false;
    if (this.stages.every((s) => s.eof)) {
      this.end(null);
      return;
    }
    if (!propagated && this.linger === null) this.linger = setTimeout(() => this.ctx.self.tell({ type: 'linger' }), HALF_CLOSE_LINGER_MS);
  }

  /** Give stage `i` a Hop to the next stage and point the previous stage's Hop at it. Returns what its setup handler held. */
  private wireStage(i: number): SetupHandler | null {
    const n = this.stages.length;
    const st = this.stages[i] as Stage;
    const next = this.stages[(i + 1) % n] as Stage;
    const prev = this.stages[(i - 1 + n) % n] as Stage;
    const conn = st.conn as Connection;
    // Armed: the last stage (replies towards the source); the source too with `spliceAfter` (a one-way flow).
    const after = !this.offloadable ? 0 : i === n - 1 ? 1 : i === 0 ? (conn.spliceAfter ?? 0) : 0;
    const hop = after > 0 ? new ArmedHop(this, i, conn, next.conn as Connection, prev.conn as Connection, after) : new Hop(this, i, conn, next.conn as Connection, prev.conn as Connection);
    st.hop = hop;
    if (prev.hop !== null) prev.hop.next = conn;
    if (next.hop !== null) next.hop.prev = conn;
    const setup = st.setup;
    st.setup = null;
    conn.setHandler(hop);
    return setup;
  }

  /**
   * Stage `i`'s connection closed. `fromConn`: the connection itself reported it (else the control
   * plane closed it: endpoint deleted, ejected or unhealthy), so an error on a datagram stage is an
   * ICMP error from its endpoint, a failure for outlier detection. A datagram stage that never had
   * a reply and fails (ICMP) or loses its endpoint is a connect that did not complete: under any
   * `retry_on` but `never` it is retried on another endpoint within the setup's attempts
   * (`num_retries` + 1), with the downstream's first datagrams replayed.
   */
  private onStageClosed(i: number, err: L7Error | null, conn: Connection, fromConn: boolean): void {
    const st = this.stages[i] as Stage;
    if (st.conn !== conn) return; // an old connection of a stage that was reconnected
    if (this.splice !== null) {
      this.unsplice();
      this.spliceWanted = this.offloadable;
    }
    this.event('DISCONNECT', `Stage ${st.role === 'source' ? 'source' : st.cluster}: ${err === null ? 'closed' : err.message}`);
    const r = this.route?.retry;
    if (st.role !== 'source') {
      this.confirm(i);
      const icmp = fromConn && err !== null && conn.kind === 'datagram' && st.endpoint !== null;
      if (icmp) this.report(st, false);
      // Unanswered and failed (ICMP), or unanswered on an endpoint just ejected or found unhealthy.
      const unanswered = (icmp || (!fromConn && conn.kind === 'datagram' && st.endpoint !== null)) && !st.confirmed;
      if (unanswered && r !== undefined && r.retry_on !== 'never' && this.status === 'CONNECTED' && st.attempts < r.num_retries + 1) {
        const failed = (st.endpoint as EndpointInfo).name;
        this.retire(st, conn);
        st.conn = null;
        st.hop = null;
        st.eof = false;
        st.gen++;
        if (!st.avoid.includes(failed)) st.avoid.push(failed);
        if (i === 1 && this.replay !== null) this.replayStage = 1;
        this.attempt(i);
        return;
      }
    }
    const retriable = st.role !== 'source' && r !== undefined && (r.retry_on === 'disconnect' || r.retry_on === 'always') && this.status === 'CONNECTED' && r.num_retries > 0;
    if (!retriable) {
      this.end(err);
      return;
    }
    const failed = err !== null ? (st.endpoint?.name ?? null) : null;
    this.retire(st, conn);
    st.conn = null;
    st.hop = null;
    st.eof = false;
    this.connectStage(i, failed);
  }

  /**
   * An endpoint was deleted with `recursive=true`: every connected stage on it is disconnected, so
   * that `retry_on: disconnect|always` moves it to another endpoint (the load balancer no longer
   * has this one); without those retries the session ends (compat reference §1.9, §12.12).
   */
  private dropEndpoint(cluster: string, endpoint: string, why: string): void {
    for (let i = 1; i < this.stages.length && !this.ended; i++) {
      const st = this.stages[i] as Stage;
      const conn = st.conn;
      if (conn === null || st.cluster !== cluster || st.endpoint?.name !== endpoint) continue;
      this.onStageClosed(i, new L7Error(ErrorCode.UpstreamReset, `endpoint "${endpoint}" of cluster "${cluster}" ${why}`), conn, false);
      conn.close();
    }
  }

  /** True if a connected stage of this session goes to `endpoint` of `cluster`. */
  traverses(cluster: string, endpoint: string): boolean {
    for (let i = 1; i < this.stages.length; i++) {
      const st = this.stages[i] as Stage;
      if (st.conn !== null && st.cluster === cluster && st.endpoint?.name === endpoint) return true;
    }
    return false;
  }

  /** Fold the stage's retired connection into its prior counts, and retire `conn` (if any) in its place. */
  private retire(st: Stage, conn: Connection | null): void {
    if (st.retired !== null) addStats(st.prior, st.retired.stats);
    st.retired = conn;
  }

  /**
   * Tickable: idle detection from packet counters (the kernel's too, when spliced), no per-packet
   * clock reads; a splice that had to wait is tried again.
   */
  onTick(now: number): void {
    if (this.spliceWanted && this.splice === null) this.trySplice();
    if (this.unconfirmed) {
      this.unconfirmed = false;
      for (let i = 1; i < this.stages.length; i++) {
        const st = this.stages[i] as Stage;
        this.confirm(i);
        if (!st.confirmed && st.conn !== null && st.endpoint !== null) this.unconfirmed = true;
      }
      // Ticking only to see the first reply: nothing left to see.
      if (!this.unconfirmed && this.init.idleTimeoutMs === 0 && !this.offloadable && !this.spliceWanted && this.drainQuietMs === 0) this.init.env.timers.delete(this);
    }
    this.syncKernel();
    let pk = 0;
    for (const s of this.stages) {
      if (s.conn !== null) pk += s.conn.stats.rxPackets;
      pk += s.kernel.rxPackets;
    }
    if (pk !== this.lastPackets) {
      this.lastPackets = pk;
      this.lastActive = now;
    } else if (this.init.idleTimeoutMs > 0 && now - this.lastActive >= this.init.idleTimeoutMs) {
      this.ctx.self.tell({ type: 'idle' });
    } else if (this.drainQuietMs > 0 && now - Math.max(this.lastActive, this.drainFrom) >= this.drainQuietMs) {
      this.ctx.self.tell({ type: 'end', reason: new L7Error(ErrorCode.SessionIdle, `quiet for ${this.drainQuietMs} ms while draining`) });
    }
  }

  /** The process drains (see {@link drainMsg}): tick from now on, if not already, to see it go quiet. */
  private startDrain(quietMs: number): void {
    if (quietMs <= 0 || this.drainQuietMs > 0) return;
    this.drainQuietMs = quietMs;
    this.drainFrom = Date.now();
    // Not connected yet: onConnected starts the ticks.
    if (this.status === 'CONNECTED') this.init.env.timers.add(this);
  }

  /** Datagrams JavaScript received on the session's current connections. */
  private jsRx(): number {
    let n = 0;
    for (const s of this.stages) if (s.conn !== null) n += s.conn.stats.rxPackets;
    return n;
  }

  /** The session is established (first reply): hand its sockets to the kernel. */
  private trySplice(): void {
    const off = this.init.env.offload;
    if (!this.offloadable || off === undefined || off === null || this.splice !== null || this.ended || this.status !== 'CONNECTED') return;
    const fds: number[] = [];
    for (const st of this.stages) {
      const fd = st.conn?.spliceFd?.() ?? -1;
      if (fd < 0) {
        // Not connected yet (the downstream connects asynchronously): try again at the next tick.
        this.spliceWanted = true;
        return;
      }
      fds.push(fd);
    }
    this.spliceWanted = false;
    const sp = off.splice(fds, (i, errno) => this.onSpliceReset(i, errno));
    if (sp === null) {
      this.init.env.rateLog.warn(`offload-splice:${this.init.listener}`, { session: this.init.name, reason: off.lastError }, 'offload: session stays in userspace');
      this.event('OFFLOAD', `not spliced: ${off.lastError}`);
      return;
    }
    this.splice = sp;
    this.splices++;
    const bound = off.queueBound();
    if (bound.limit === 0) this.init.env.rateLog.warn('offload-unbounded', { reason: bound.reason }, 'offload: the kernel send queues of spliced sockets are not bounded (a starved kworker lets them grow)');
    this.kernelSeen = new Float64Array(4 * fds.length);
    this.kernelBuf = new Float64Array(4 * fds.length);
    this.jsRxAtSplice = this.jsRx();
    // What waited in the receive queues at the splice was relayed by the provider: count it as the kernel's.
    const n = fds.length;
    for (let i = 0; i < n; i++) {
      const dp = sp.drained[2 * i] as number;
      const db = sp.drained[2 * i + 1] as number;
      if (dp === 0) continue;
      const from = (this.stages[i] as Stage).kernel;
      const to = (this.stages[(i + 1) % n] as Stage).kernel;
      from.rxPackets += dp;
      from.rxBytes += db;
      to.txPackets += dp;
      to.txBytes += db;
    }
    this.stages.forEach((st, i) => {
      // The kernel relays now; a JS read would only find an empty queue once per datagram.
      if (st.conn?.spliceReading?.(false) === true) sp.unpoll(i);
      (st.conn as Connection).spliceErrorHook = (err: Error) => {
        // An ICMP error reached Node before the watchdog: same remedy, a fresh psock.
        this.init.env.rateLog.warn(`offload-error:${this.init.listener}`, { session: this.init.name, stage: i, err: err.message }, 'offload: socket error on a spliced session; psock reset');
        sp.reset(i);
      };
    });
    this.event('OFFLOAD', `spliced ${fds.length} sockets in the kernel`);
  }

  private onSpliceReset(i: number, errno: number): void {
    this.spliceResets++;
    this.init.env.rateLog.warn(`offload-reset:${this.init.listener}`, { session: this.init.name, stage: i, errno }, 'offload: socket error on a spliced session; psock reset');
  }

  /** Fold what the kernel relayed since the last read into the stages' kernel counts. */
  private syncKernel(): void {
    const sp = this.splice;
    const seen = this.kernelSeen;
    const buf = this.kernelBuf;
    if (sp === null || seen === null || buf === null || !sp.read(buf)) return;
    const n = this.stages.length;
    for (let i = 0; i < n; i++) {
      const dp = (buf[4 * i] as number) - (seen[4 * i] as number);
      const db = (buf[4 * i + 1] as number) - (seen[4 * i + 1] as number);
      // Received on socket i and dropped: the next socket's send queue was full (the queue bound).
      const dd = (buf[4 * i + 3] as number) - (seen[4 * i + 3] as number);
      const from = (this.stages[i] as Stage).kernel;
      const to = (this.stages[(i + 1) % n] as Stage).kernel;
      if (dp > 0) {
        from.rxPackets += dp;
        from.rxBytes += db;
        to.txPackets += dp;
        to.txBytes += db;
      }
      if (dd > 0) to.drops += dd;
      seen[4 * i] = buf[4 * i] as number;
      seen[4 * i + 1] = buf[4 * i + 1] as number;
      seen[4 * i + 3] = buf[4 * i + 3] as number;
      const last = buf[4 * i + 2] as number;
      if (last > this.kernelLastNs) this.kernelLastNs = last;
    }
  }

  /**
   * Read the kernel counters one last time and take the sockets out of the kernel path; unless the
   * session is ending, JavaScript reads its sockets again.
   */
  private unsplice(): void {
    const sp = this.splice;
    if (sp === null) return;
    this.syncKernel();
    sp.close();
    this.splice = null;
    for (const st of this.stages) {
      if (st.conn === null) continue;
      st.conn.spliceErrorHook = null;
      if (!this.ended) st.conn.spliceReading?.(true);
    }
  }

  private fail(err: L7Error): void {
    this.event('ERROR', err.message);
    if (this.status === 'INIT') {
      try {
        this.init.source.onSessionFailed?.(err);
      } catch {
        // the error reply is best effort; the session ends either way
      }
    }
    this.init.env.rateLog.warn(`session-error:${this.init.listener}:${err.code}`, { session: this.init.name, code: err.code, err: err.message }, 'session failed');
    this.end(err);
  }

  /**
   * Record (or rewrite) this session in the worker's session table if another worker could rebuild
   * it: one datagram downstream and one datagram destination that report their 5-tuples, no
   * chains. Control path (connected, reconnected).
   */
  private remember(): void {
    const book = this.init.env.recovery;
    if (book === undefined || book === null) return;
    const dst = this.stages[1];
    const down = this.init.source.rebuildTuple?.() ?? null;
    const up = this.stages.length === 2 && dst !== undefined ? (dst.conn?.rebuildTuple?.() ?? null) : null;
    if (down === null || up === null || dst === undefined || this.route === null) {
      this.recoveryHandle = book.drop(this.recoveryHandle);
      return;
    }
    this.recoveryHandle = book.put(
      {
        listener: this.init.listener,
        listenerPort: down.localPort,
        route: this.route.name,
        cluster: dst.cluster,
        endpoint: dst.endpoint?.name ?? null,
        peerAddress: down.remoteAddress,
        peerPort: down.remotePort,
        shared: down.shared === true,
        remoteAddress: up.remoteAddress,
        remotePort: up.remotePort,
        localAddress: up.localAddress,
        localPort: up.localPort,
      },
      this.recoveryHandle,
    );
  }

  private end(reason: L7Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.status = 'FINALIZING';
    this.event('END', reason === null ? 'Normal end' : reason.message);
    this.ctx.stopSelf(reason);
  }

  override postStop(reason: StopReason): void {
    if (this.linger !== null) clearTimeout(this.linger);
    if (this.recoveryHandle >= 0) this.recoveryHandle = this.init.env.recovery?.drop(this.recoveryHandle) ?? -1;
    if (this.rebuild !== null) {
      const rb = this.rebuild;
      this.rebuild = null;
      rb.done(reason ?? new L7Error(ErrorCode.SessionStopped, 'stopped before it was rebuilt'));
    }
    this.unsplice();
    for (let i = 1; i < this.stages.length; i++) this.confirm(i);
    this.ended = true;
    this.init.env.timers.delete(this);
    for (const st of this.stages) {
      if (st.timer !== null) clearTimeout(st.timer);
      st.abort?.abort();
      st.conn?.close();
    }
    // Idempotent: normally stage 0 already closed it; not when setup failed before stage 0 existed.
    this.init.source.close();
    this.status = 'DESTROYED';
    this.event('DESTROY', 'Session destroyed');
    this.init.env.onEnd(this.record(reason === null ? 'normal' : reason.code));
  }

  /**
   * The session's account now: traffic of the downstream and of every stage (their replaced
   * connections included). Called at the end (final record) and by metrics at scrape time for
   * live sessions (`reason` = `active`); reads the plain counters, allocates only the record.
   */
  record(reason = 'active'): SessionRecord {
    const final = this.status === 'DESTROYED';
    this.syncKernel();
    const src = this.stages[0];
    const r: SessionRecord = {
      name: this.init.name,
      listener: this.init.listener,
      route: this.route?.name ?? null,
      status: this.status,
      reason,
      durationMs: Date.now() - this.started,
      remote: this.init.source.remote,
      ...zeroCounts(),
      stages: [],
    };
    addStats(r, this.init.source.stats);
    if (src !== undefined) addCounts(r, src.kernel);
    if (final && src !== undefined && src.setup !== null) r.setupDrops = src.setup.held.length;
    for (let i = 1; i < this.stages.length; i++) {
      const st = this.stages[i] as Stage;
      const sr: StageRecord = {
        role: st.role as StageRecord['role'],
        cluster: st.cluster,
        endpoint: st.endpoint?.name ?? null,
        address: st.endpoint?.address ?? null,
        remote: st.remote,
        connected: !this.ended && st.conn !== null,
        ...st.prior,
      };
      if (st.retired !== null) addStats(sr, st.retired.stats);
      if (st.conn !== null) addStats(sr, st.conn.stats);
      addCounts(sr, st.kernel);
      if (final && st.setup !== null) sr.setupDrops += st.setup.held.length;
      r.stages.push(sr);
    }
    return r;
  }

  /**
   * Offload state for the actor tree: `spliced` now; `kernel_packets` the datagrams the kernel
   * relayed (all sockets); `js_packets_since_splice` datagrams JavaScript still received on the
   * spliced sockets (0 when the splice works); `last_activity_ms` since the kernel's last datagram.
   */
  private offloadState(): Record<string, unknown> {
    let kp = 0;
    for (const s of this.stages) kp += s.kernel.rxPackets;
    const idle = this.kernelLastNs > 0 ? Number(process.hrtime.bigint() - BigInt(Math.round(this.kernelLastNs))) / 1e6 : null;
    return {
      spliced: this.splice !== null,
      splices: this.splices,
      resets: this.spliceResets,
      kernel_packets: kp,
      js_packets_since_splice: this.splices > 0 ? this.jsRx() - this.jsRxAtSplice : 0,
      last_activity_ms: idle === null ? null : Math.max(0, Math.round(idle)),
    };
  }

  /** True if one of this session's stages goes through one of `clusters`. */
  traversesAny(clusters: ReadonlySet<string>): boolean {
    for (let i = 1; i < this.stages.length; i++) if (clusters.has((this.stages[i] as Stage).cluster)) return true;
    return false;
  }

  override describe(): Record<string, unknown> {
    // Counts from record(): they include the connections a reconnect replaced and the kernel's
    // share of a spliced session, as /metrics does.
    const rec = this.record();
    const recs = rec.stages;
    return {
      status: this.status,
      listener: this.init.listener,
      route: this.route?.name ?? null,
      age_ms: Date.now() - this.started,
      downstream: { remote: this.init.source.remote, rx_packets: rec.rxPackets, rx_bytes: rec.rxBytes, tx_packets: rec.txPackets, tx_bytes: rec.txBytes },
      ...(this.offloadable ? { offload: this.offloadState() } : {}),
      metadata: this.init.metadata,
      events: this.events,
      stages: this.stages.slice(1).map((s, i) => ({
        role: s.role,
        cluster: s.cluster,
        status: s.conn !== null ? 'CONNECTED' : this.status === 'INIT' ? 'INIT' : this.ended ? 'END' : 'RETRYING',
        endpoint: s.endpoint?.address ?? null,
        endpoint_name: s.endpoint?.name ?? null,
        remote: s.conn?.remote ?? null,
        tx_packets: recs[i]?.txPackets ?? 0,
        rx_packets: recs[i]?.rxPackets ?? 0,
      })),
    };
  }
}
