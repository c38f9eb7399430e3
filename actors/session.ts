/**
 * The session actor: one downstream connection and its route's upstream stages (docs/l7mp-compat.md
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
 * source's N-th datagram, `offload.establish: {packets: N}`) makes the session established, and
 * its sockets are spliced in the kernel (socket i's datagrams leave through socket i+1). The actor still owns the flow: it reads the kernel's per-socket counters
 * into its stages (idle timeout, metrics, actor tree, access log) and unsplices before closing.
 *
 * This file is the actor: lifecycle, routing, wiring, reconnects, idle and drain ends. Its parts,
 * one concern each (actors/session-core.ts holds what they share): hops.ts (the packet path),
 * connect.ts (connect phases, retries), splice.ts (kernel offload), describe.ts (its record and
 * actor-tree node), rebuild.ts (sessions that outlive their worker).
 */
import { Actor, type StopReason } from './actor.ts';
import { L7Error, ErrorCode, asL7Error } from '../common/errors.ts';
import { MAX_EVERY, type Tickable } from '../common/clock.ts';
import type { Connection, EndpointInfo } from '../protocols/types.ts';
import type { RouteConfig } from '../cluster-config/snapshot.ts';
import { NO_COUNTS, addStats, zeroCounts, type SessionRecord, type SessionStatus } from './record.ts';
import { recoveryFacts, type SessionRebuild } from './rebuild.ts';
import { avoidEndpoint, newStage, routeStages, type SessionCore, type SessionInit, type SessionMsg, type Stage, type StageHop, type StageSetup } from './session-core.ts';
import { SetupHandler, checkFraming, wireStage } from './hops.ts';
import { attempt, confirm, confirmAll, connectStage, onConnectFailed, report } from './connect.ts';
import { SessionSplice } from './splice.ts';
import { describeSession, eventList, sessionRecord, type SessionEvent } from './describe.ts';

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

export class SessionActor extends Actor<SessionMsg> implements Tickable, SessionCore {
  readonly kind = 'session' as const;
  status: SessionStatus = 'INIT';

  // Non-private fields are read by the session's parts (SessionCore); only this class writes them, but `replay` (connect.ts).
  readonly init: SessionInit;
  readonly started = Date.now();
  /** See {@link event}. Not in it: INIT, LOOKUP SUCCESS (the rule: `via`) and the first CONNECT (`connectedMs`, after `connectedAfter` logged events). */
  private log: Array<string | number | null> | null = null;
  private via: string | null = null;
  private connectedMs = -1;
  private connectedAfter = 0;
  route: RouteConfig | null = null;
  stages: Stage[] = [];
  private lastPackets = -1;
  private lastActive = 0;
  ended = false;
  /** Pending end after a half-close that could not be passed on. */
  private linger: NodeJS.Timeout | null = null;
  /** Kernel offload: arming, the splice, the kernel's counters (null: offload is off on this worker). */
  private readonly splicer: SessionSplice | null;
  /**
   * The downstream's first datagrams (held during setup) while the first upstream stage is a
   * datagram stage that has not answered yet: if its endpoint turns out dead (ICMP), they are
   * replayed to the endpoint tried next. Dropped at its first reply.
   */
  replay: Buffer[] | null = null;
  /** Stage whose next connection gets {@link replay} (-1: none). */
  private replayStage = -1;
  /** Draining: end once quiet this long (0: not draining, or a session that ends by itself). Unit: ms. */
  private drainQuietMs = 0;
  /** When the drain reached this session (ms since the epoch): quiet time counts from then at the earliest. */
  private drainFrom = 0;
  /** Pending rebuild (until the session is connected or fails). */
  rebuild: SessionRebuild | null;
  /** This session's record in the worker's session table (-1: none). */
  private recoveryHandle = -1;

  constructor(init: SessionInit) {
    super();
    this.init = init;
    this.rebuild = init.rebuild ?? null;
    this.splicer = init.env.offload === undefined || init.env.offload === null ? null : new SessionSplice(this);
  }

  /**
   * Add an event to {@link events} (the actor tree shows them). Kept flat and lazily: the event, ms
   * since {@link started}, the message (null: the event's usual text); no Date, no object until
   * something reads them, no log for a session that only connected (it costs memory while idle).
   */
  event(event: string, message: string | null): void {
    (this.log ??= []).push(event, Date.now() - this.started, message);
  }

  /** The session's events, oldest first, timestamps in ISO 8601 (l7mp's session `events`). */
  get events(): SessionEvent[] {
    return eventList(this.log, this.started, this.init.name, this.via, this.connectedMs, this.connectedAfter);
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
      this.stages = routeStages(source, route);
      connectStage(this, 1);
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
    this.via = match.via;
    this.stages = routeStages(source, match.route);
    for (let i = 1; i < this.stages.length; i++) connectStage(this, i);
  }

  receive(msg: SessionMsg): void {
    if (this.ended) return;
    switch (msg.type) {
      case 'connected':
        this.connected(msg.stage, msg.conn, msg.gen);
        return;
      case 'connectFailed':
        onConnectFailed(this, msg.stage, msg.err, msg.gen);
        return;
      case 'retry': {
        const st = this.stages[msg.stage];
        if (st !== undefined && st.gen === msg.gen) attempt(this, msg.stage);
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
        this.splicer?.trySplice();
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

  connected(i: number, conn: Connection, gen: number): void {
    const st = this.stages[i] as Stage;
    if (st.gen !== gen || this.status === 'FINALIZING') {
      conn.close(); // a stale attempt that finished after it was superseded
      return;
    }
    st.abort = null;
    st.conn = conn;
    st.remote = conn.remote;
    st.confirmed = false;
    // A stream connect proves the endpoint; a datagram "connect" is local: its first reply does (its hop sees it).
    if (conn.kind !== 'datagram') report(this, st, true);
    const cc = this.init.env.clusterCounters(st.cluster);
    if (cc !== undefined) {
      cc.connections++;
      if (this.status === 'INIT') cc.requests++;
    }
    if (this.status === 'CONNECTED') {
      // A reconnect: put the new connection into the live cycle; the one it replaces gets no more sends.
      wireStage(this, i, this.splicer?.offloadable === true);
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

  /** Every stage is up: replay what was held and let packets flow. */
  private wireAll(): void {
    this.splicer?.arm();
    const held: Array<StageSetup | null> = [];
    for (let i = 0; i < this.stages.length; i++) held.push(wireStage(this, i, this.splicer?.offloadable === true));
    const first = this.stages[1];
    const srcHeld = held[0]?.held;
    // Only where onStageClosed could retry (not under `retry_on: never`): an unanswered session would hold it for life.
    const r = this.route?.retry;
    const retriable = r !== undefined && r.retry_on !== 'never' && r.num_retries > 0;
    if (retriable && first !== undefined && first.conn?.kind === 'datagram' && first.endpoint !== null && srcHeld !== undefined && srcHeld.length > 0 && srcHeld.length <= MAX_REPLAY) this.replay = srcHeld;
    this.status = 'CONNECTED';
    this.connectedMs = Date.now() - this.started;
    this.connectedAfter = this.log === null ? 0 : this.log.length / 3;
    if (this.rebuild !== null) {
      const rb = this.rebuild;
      this.rebuild = null;
      rb.done(null);
    }
    this.remember();
    checkFraming(this);
    try {
      // Before any upstream data is replayed to it: a handshake reply (JSONSocket 200) goes first.
      this.init.source.onSessionConnected?.();
    } catch (e) {
      this.fail(asL7Error(e, ErrorCode.Internal, 'session connected hook'));
      return;
    }
    this.ctx.log.debug({ session: this.init.name, route: this.route?.name }, 'session connected');
    if (this.init.idleTimeoutMs > 0 || this.splicer?.offloadable === true || this.drainQuietMs > 0) {
      this.lastActive = Date.now();
      this.init.env.timers.add(this);
    }
    for (let i = 0; i < this.stages.length; i++) {
      const hop = (this.stages[i] as Stage).hop as StageHop;
      const setup = held[i];
      if (setup === null || setup === undefined) continue;
      for (const d of setup.held) hop.onData(d);
      if (setup.ended) hop.onEnd();
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
    this.splicer?.onStageClosed();
    this.event('DISCONNECT', `Stage ${st.role === 'source' ? 'source' : st.cluster}: ${err === null ? 'closed' : err.message}`);
    const r = this.route?.retry;
    if (st.role !== 'source') {
      confirm(this, i);
      const icmp = fromConn && err !== null && conn.kind === 'datagram' && st.endpoint !== null;
      if (icmp) report(this, st, false);
      // Unanswered and failed (ICMP), or unanswered on an endpoint just ejected or found unhealthy.
      const unanswered = (icmp || (!fromConn && conn.kind === 'datagram' && st.endpoint !== null)) && !st.confirmed;
      if (unanswered && r !== undefined && r.retry_on !== 'never' && this.status === 'CONNECTED' && st.attempts < r.num_retries + 1) {
        const failed = (st.endpoint as EndpointInfo).name;
        this.retire(st, conn);
        st.conn = null;
        st.hop = null;
        st.eof = false;
        st.gen++;
        avoidEndpoint(st, failed);
        if (i === 1 && this.replay !== null) this.replayStage = 1;
        attempt(this, i);
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
    connectStage(this, i, failed);
  }

  /**
   * An endpoint was deleted with `recursive=true`: every connected stage on it is disconnected, so
   * that `retry_on: disconnect|always` moves it to another endpoint (the load balancer no longer
   * has this one); without those retries the session ends (docs/l7mp-compat.md §1.9, §12.12).
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
    if (st.retired !== null) {
      if (st.prior === NO_COUNTS) st.prior = zeroCounts();
      addStats(st.prior, st.retired.stats);
    }
    st.retired = conn;
  }

  /**
   * Tickable: idle detection from packet counters (the kernel's too, when spliced), no per-packet
   * clock reads; a splice that had to wait is tried again. Returns when to look again, in periods:
   * each period while a splice or a drain's quiet is awaited, else every sixteenth of the idle
   * timeout (an idle session ends at most 1/8 of it, or two periods, late). A first reply is not
   * polled for: the hop of the stage reports it (hops.ts).
   */
  onTick(now: number): number {
    const sp = this.splicer;
    if (sp?.spliceWanted === true && sp.splice === null) sp.trySplice();
    sp?.syncKernel();
    let pk = 0;
    for (let i = 0; i < this.stages.length; i++) {
      const s = this.stages[i] as Stage;
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
    if (sp?.spliceWanted === true || this.drainQuietMs > 0) return 1;
    return this.init.idleTimeoutMs > 0 ? this.init.idleTimeoutMs / 16 / this.init.env.timers.periodMs : MAX_EVERY;
  }

  /** The process drains (see `drainMsg`): tick from now on, if not already, to see it go quiet. */
  private startDrain(quietMs: number): void {
    if (quietMs <= 0 || this.drainQuietMs > 0) return;
    this.drainQuietMs = quietMs;
    this.drainFrom = Date.now();
    // Not connected yet: onConnected starts the ticks.
    if (this.status === 'CONNECTED') this.init.env.timers.add(this);
  }

  /** End the session with `err`: its error reply if it is still being set up, a rate-limited log line. */
  fail(err: L7Error): void {
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
    const facts = recoveryFacts(this.init.listener, this.route?.name ?? null, this.init.source, this.stages);
    this.recoveryHandle = facts === null ? book.drop(this.recoveryHandle) : book.put(facts, this.recoveryHandle);
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
    this.splicer?.unsplice();
    confirmAll(this);
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
    return sessionRecord(this, this.splicer, reason);
  }

  /** True if one of this session's stages goes through one of `clusters`. */
  traversesAny(clusters: ReadonlySet<string>): boolean {
    for (let i = 1; i < this.stages.length; i++) if (clusters.has((this.stages[i] as Stage).cluster)) return true;
    return false;
  }

  override describe(): Record<string, unknown> {
    return describeSession(this, this.splicer);
  }
}
