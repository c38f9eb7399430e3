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
 */
import { Actor, type StopReason } from './actor.ts';
import { L7Error, ErrorCode, asL7Error } from '../runtime/common/errors.ts';
import type { CoarseTimers, Tickable } from '../runtime/common/clock.ts';
import type { RateLimitedLog } from '../runtime/common/log.ts';
import type { ClusterInstance, Connection, ConnectionHandler, EndpointInfo, Metadata } from '../protocols/types.ts';
import type { RoutingTable } from '../routing/table.ts';
import type { RetryConfig, RouteConfig } from '../cluster-config/snapshot.ts';

/** l7mp's session statuses. */
export type SessionStatus = 'INIT' | 'CONNECTED' | 'FINALIZING' | 'DESTROYED';

/** What a session needs from its worker. */
export interface SessionEnv {
  readonly table: RoutingTable;
  cluster(name: string): ClusterInstance | undefined;
  readonly timers: CoarseTimers;
  readonly rateLog: RateLimitedLog;
  /** Called once when the session ends, with its final record (for counters and the access log later). */
  onEnd(record: SessionRecord): void;
}

/** A session's final account. */
export interface SessionRecord {
  name: string;
  listener: string;
  route: string | null;
  status: SessionStatus;
  reason: string;
  durationMs: number;
  /** From the downstream: datagrams/chunks and bytes. */
  rxPackets: number;
  rxBytes: number;
  /** To the downstream. */
  txPackets: number;
  txBytes: number;
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
}

type Msg =
  | { type: 'connected'; stage: number; conn: Connection; gen: number }
  | { type: 'connectFailed'; stage: number; err: L7Error; gen: number }
  | { type: 'retry'; stage: number; gen: number }
  | { type: 'closed'; stage: number; err: L7Error | null; conn: Connection }
  | { type: 'fault'; err: L7Error }
  | { type: 'idle' }
  | { type: 'end'; reason: L7Error | null };

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

  onData(data: Buffer): void {
    try {
      if (!this.next.send(data)) this.self.pause();
    } catch (e) {
      // The data path never throws into the socket's event loop: the session handles the fault.
      this.session.ctx.self.tell({ type: 'fault', err: asL7Error(e, ErrorCode.Internal, 'packet path') });
    }
  }

  onDrain(): void {
    this.prev.resume();
  }

  onClose(err: L7Error | null): void {
    this.session.ctx.self.tell({ type: 'closed', stage: this.stage, err, conn: this.self });
  }
}

/** Holds reads and reports a close while a session is being set up. */
class SetupHandler implements ConnectionHandler {
  readonly held: Buffer[] = [];
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

  constructor(init: SessionInit) {
    super();
    this.init = init;
  }

  private event(event: string, message: string): void {
    this.events.push({ event, timestamp: new Date().toISOString(), message });
  }

  override preStart(): void {
    const { init } = this;
    this.event('INIT', `Session ${init.name} initialized`);
    const source: Stage = { cluster: init.listener, role: 'source', conn: init.source, endpoint: null, attempts: 0, gen: 0, abort: null, timer: null, hop: null, setup: null };
    this.stages = [source];
    source.setup = new SetupHandler(this, 0, init.source);
    init.source.setHandler(source.setup);
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
    const add = (cluster: string, role: Stage['role']): void => {
      this.stages.push({ cluster, role, conn: null, endpoint: null, attempts: 0, gen: 0, abort: null, timer: null, hop: null, setup: null });
    };
    for (const c of r.ingress) add(c, 'ingress');
    add(r.destination, 'destination');
    for (const c of r.egress) add(c, 'egress');
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
        this.onStageClosed(msg.stage, msg.err, msg.conn);
        return;
      case 'fault':
        this.fail(msg.err);
        return;
      case 'idle':
        this.end(new L7Error(ErrorCode.SessionIdle, `idle for ${this.init.idleTimeoutMs} ms`));
        return;
      case 'end':
        this.end(msg.reason);
        return;
    }
  }

  private retry(): RetryConfig {
    return (this.route as RouteConfig).retry;
  }

  /** Start a connect phase for stage `i`. */
  private connectStage(i: number): void {
    const st = this.stages[i] as Stage;
    st.gen++;
    st.attempts = 0;
    this.attempt(i);
  }

  private attempt(i: number): void {
    const st = this.stages[i] as Stage;
    st.attempts++;
    st.timer = null;
    const gen = st.gen;
    const self = this.ctx.self;
    const cluster = this.init.env.cluster(st.cluster);
    if (cluster === undefined) {
      // A cluster that does not exist (yet) is an ordinary failed attempt (l7mp §4.6).
      self.tell({ type: 'connectFailed', stage: i, gen, err: new L7Error(ErrorCode.ConfigUnknownRef, `Cannot find Cluster "${st.cluster}"`) });
      return;
    }
    const ep = this.init.env.table.balancer(st.cluster)?.pick(this.init.metadata as Record<string, unknown>, this.init.name) ?? null;
    st.endpoint = ep === null ? null : { name: ep.name, address: ep.spec.address, weight: ep.weight };
    const timeout = this.retry().timeout;
    const ac = new AbortController();
    st.abort = ac;
    const t = setTimeout(() => ac.abort(), timeout);
    const p = cluster.connect({ name: this.init.name, metadata: this.init.metadata }, st.endpoint, ac.signal).finally(() => clearTimeout(t));
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
    if (this.status === 'CONNECTED') {
      // A reconnect: put the new connection into the live cycle.
      this.wireStage(i);
      this.event('CONNECT', `Stage ${st.cluster} reconnected`);
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
    const r = this.retry();
    // At setup, connect-failure/always allow num_retries more attempts; a reconnect phase
    // (disconnect/always) allows num_retries attempts in all (compat reference §4.6).
    const reconnecting = this.status === 'CONNECTED';
    const allowed = reconnecting ? r.num_retries : r.retry_on === 'connect-failure' || r.retry_on === 'always' ? r.num_retries + 1 : 1;
    if (st.attempts < allowed) {
      const g = st.gen;
      st.timer = setTimeout(() => this.ctx.self.tell({ type: 'retry', stage: i, gen: g }), r.timeout);
      return;
    }
    this.fail(new L7Error(err.code, `Pipeline setup failed for session "${this.init.name}": ${err.message}`, { cause: err, status: 404 }));
  }

  /** Every stage is up: replay what was held and let packets flow. */
  private wireAll(): void {
    const held: Buffer[][] = [];
    for (let i = 0; i < this.stages.length; i++) held.push(this.wireStage(i));
    this.status = 'CONNECTED';
    this.event('CONNECT', 'Session successfully connected');
    this.ctx.log.debug({ session: this.init.name, route: this.route?.name }, 'session connected');
    if (this.init.idleTimeoutMs > 0) {
      this.lastActive = Date.now();
      this.init.env.timers.add(this);
    }
    for (let i = 0; i < this.stages.length; i++) {
      const hop = (this.stages[i] as Stage).hop as Hop;
      for (const d of held[i] as Buffer[]) hop.onData(d);
    }
  }

  /** Give stage `i` a Hop to the next stage and point the previous stage's Hop at it. Returns reads it held. */
  private wireStage(i: number): Buffer[] {
    const n = this.stages.length;
    const st = this.stages[i] as Stage;
    const next = this.stages[(i + 1) % n] as Stage;
    const prev = this.stages[(i - 1 + n) % n] as Stage;
    const conn = st.conn as Connection;
    const hop = new Hop(this, i, conn, next.conn as Connection, prev.conn as Connection);
    st.hop = hop;
    if (prev.hop !== null) prev.hop.next = conn;
    if (next.hop !== null) next.hop.prev = conn;
    const held = st.setup?.held ?? [];
    st.setup = null;
    conn.setHandler(hop);
    return held;
  }

  private onStageClosed(i: number, err: L7Error | null, conn: Connection): void {
    const st = this.stages[i] as Stage;
    if (st.conn !== conn) return; // an old connection of a stage that was reconnected
    this.event('DISCONNECT', `Stage ${st.role === 'source' ? 'source' : st.cluster}: ${err === null ? 'closed' : err.message}`);
    const r = this.route?.retry;
    const retriable = st.role !== 'source' && r !== undefined && (r.retry_on === 'disconnect' || r.retry_on === 'always') && this.status === 'CONNECTED' && r.num_retries > 0;
    if (!retriable) {
      this.end(err);
      return;
    }
    st.conn = null;
    st.hop = null;
    this.connectStage(i);
  }

  /** Tickable: idle detection from packet counters, no per-packet clock reads. */
  onTick(now: number): void {
    let pk = 0;
    for (const s of this.stages) if (s.conn !== null) pk += s.conn.stats.rxPackets;
    if (pk !== this.lastPackets) {
      this.lastPackets = pk;
      this.lastActive = now;
    } else if (now - this.lastActive >= this.init.idleTimeoutMs) {
      this.ctx.self.tell({ type: 'idle' });
    }
  }

  private fail(err: L7Error): void {
    this.event('ERROR', err.message);
    this.init.env.rateLog.warn(`session-error:${this.init.listener}:${err.code}`, { session: this.init.name, code: err.code, err: err.message }, 'session failed');
    this.end(err);
  }

  private end(reason: L7Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.status = 'FINALIZING';
    this.event('END', reason === null ? 'Normal end' : reason.message);
    this.ctx.stopSelf(reason);
  }

  override postStop(reason: StopReason): void {
    this.ended = true;
    this.init.env.timers.delete(this);
    for (const st of this.stages) {
      if (st.timer !== null) clearTimeout(st.timer);
      st.abort?.abort();
      st.conn?.close();
    }
    this.status = 'DESTROYED';
    this.event('DESTROY', 'Session destroyed');
    const src = this.init.source.stats;
    this.init.env.onEnd({
      name: this.init.name,
      listener: this.init.listener,
      route: this.route?.name ?? null,
      status: this.status,
      reason: reason === null ? 'normal' : reason.code,
      durationMs: Date.now() - this.started,
      rxPackets: src.rxPackets,
      rxBytes: src.rxBytes,
      txPackets: src.txPackets,
      txBytes: src.txBytes,
    });
  }

  /** True if one of this session's stages goes through one of `clusters`. */
  traversesAny(clusters: ReadonlySet<string>): boolean {
    for (let i = 1; i < this.stages.length; i++) if (clusters.has((this.stages[i] as Stage).cluster)) return true;
    return false;
  }

  override describe(): Record<string, unknown> {
    const src = this.init.source.stats;
    return {
      status: this.status,
      listener: this.init.listener,
      route: this.route?.name ?? null,
      age_ms: Date.now() - this.started,
      downstream: { remote: this.init.source.remote, rx_packets: src.rxPackets, rx_bytes: src.rxBytes, tx_packets: src.txPackets, tx_bytes: src.txBytes },
      stages: this.stages.slice(1).map((s) => ({
        role: s.role,
        cluster: s.cluster,
        endpoint: s.endpoint?.address ?? null,
        remote: s.conn?.remote ?? null,
        tx_packets: s.conn?.stats.txPackets ?? 0,
        rx_packets: s.conn?.stats.rxPackets ?? 0,
      })),
    };
  }
}
