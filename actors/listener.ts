/**
 * The listener actor: owns one protocol listener instance on one worker and is the parent of the
 * sessions it accepts (sessions are `temporary` children: a failed session is not restarted).
 * Permanent itself: restarted by its worker if it fails, rebinding its address.
 */
import { Actor, type ActorCell, type Props, type RestartPolicy, type StopReason } from './actor.ts';
import { L7Error, ErrorCode, asL7Error } from '../common/errors.ts';
import type { Connection, ListenerInstance, Metadata, ProtocolModule } from '../protocols/types.ts';
import type { ListenerConfig } from '../cluster-config/snapshot.ts';
import { SessionActor } from './session.ts';
import { DRAIN_QUIET_MS, drainMsg, type SessionEnv, type SessionInit, type SessionMsg } from './session-core.ts';
import type { SessionRebuild } from './rebuild.ts';
import type { WorkerServices } from './services.ts';
import { actorTree, type ActorNode } from './tree.ts';
import { Admission, AdmissionReason, admissionLimits } from './admission.ts';
import { childSessionInit } from './child-session.ts';

/** At most this many ended sessions are kept per listener and worker for `options.track`. */
const TRACK_MAX = 10_000;

type Msg =
  | { type: 'drain' }
  | { type: 'bound' }
  | { type: 'bindFailed'; err: L7Error }
  | { type: 'accept'; conn: Connection; metadata: Metadata; name: string; rebuild?: SessionRebuild };

/**
 * Per-listener counters of one worker, read by metrics and the actor tree. They outlive the
 * listener actor (restarts, re-applies). Traffic is not here: it is read from the sessions'
 * connections at scrape time and from their final records.
 */
export class ListenerCounters {
  /** The listener's `spec.protocol` (a metrics label). */
  protocol = '';
  /** Sessions accepted (l7mp's `listener_requests_total`: counted before routing). */
  sessions = 0;
  /** Protocol events by name (`filtered`, `handoff_in`, `handoff_out`...). */
  readonly named = new Map<string, number>();
  count(name: string, n = 1): void {
    this.named.set(name, (this.named.get(name) ?? 0) + n);
  }
}

export class ListenerActor extends Actor<Msg> {
  readonly kind = 'listener' as const;
  instance: ListenerInstance | null = null;
  readonly counters: ListenerCounters;

  private cfg: ListenerConfig;
  private readonly proto: ProtocolModule;
  private readonly services: WorkerServices;
  private readonly env: SessionEnv;
  private readonly report: (name: string, err: L7Error | null) => void;
  /** Live sessions by name → the source address they were admitted under. */
  private readonly names = new Map<string, string | undefined>();
  /** Accepted connections whose 'accept' message is still in the mailbox (→ source): closed if the actor stops first. */
  private readonly unclaimed = new Map<Connection, string | undefined>();
  private readonly admission: Admission;
  private seq = 0;
  /** Ended sessions kept visible (`options.track`), oldest first. */
  private readonly tracked: Array<{ node: ActorNode; until: number }> = [];
  private idleMs = 0;
  /**
   * The session cell of each accepted downstream, for {@link ListenerContext.spawnChild}: kept only
   * for protocols that spawn child sessions (a weak-map entry per session cost about 1% of the
   * new-session rate).
   */
  private readonly cells = new WeakMap<Connection, ActorCell<unknown>>();
  /** Drain grace of its sessions (0: they end by themselves; see `drainWhenQuiet`). Unit: ms. */
  private quietMs = 0;
  /** This listener drains (set once; see {@link ListenerInstance.drain}). */
  private draining = false;
  private bound = false;
  /**
   * Rebuilt sessions served through the listening sockets (name → peer key): every worker hands
   * the peer's datagrams here while the session lives (a pin on the ring, runtime/main/runtime.ts),
   * removed when it ends.
   */
  private readonly pinned = new Map<string, string>();

  constructor(cfg: ListenerConfig, proto: ProtocolModule, services: WorkerServices, env: SessionEnv, counters: ListenerCounters, report: (name: string, err: L7Error | null) => void) {
    super();
    this.cfg = cfg;
    this.proto = proto;
    this.services = services;
    this.env = env;
    this.counters = counters;
    this.report = report;
    const fds = { gauge: services.fdGauge, perSession: services.sessionFdsOf(cfg), budget: () => services.fdBudget() };
    this.admission = new Admission(admissionLimits(cfg.options), services.listenerGauge(cfg.name), services.processGauge, () => services.sessionCap(), Date.now, services.workers, fds);
  }

  /** New options of the same listener (admission limits, track) from a config change: no rebind. */
  setOptions(cfg: ListenerConfig): void {
    this.cfg = cfg;
    this.admission.limits = admissionLimits(cfg.options);
  }

  /** Count and log (once per period) a session refused by admission control. */
  private refused(reason: AdmissionReason, source: string | undefined): void {
    this.counters.count(reason);
    this.services.rateLog.warn(`admission:${this.cfg.name}:${reason}`, { listener: this.cfg.name, reason, source }, 'new session refused by admission control');
  }

  override preStart(): void {
    const side = this.proto.listener;
    if (side === undefined) throw new L7Error(ErrorCode.Internal, `protocol ${this.proto.name} has no listener`);
    this.idleMs = side.idleTimeoutMs?.(this.cfg.spec) ?? 0;
    this.quietMs = side.drainWhenQuiet?.(this.cfg.spec) === true ? (this.idleMs > 0 ? Math.min(this.idleMs, DRAIN_QUIET_MS) : DRAIN_QUIET_MS) : 0;
    const self = this.ctx.self;
    const s = this.services;
    const inst = side.create(
      { name: this.cfg.name, spec: this.cfg.spec },
      {
        slot: s.slot,
        workers: s.workers,
        offload: s.offloadAsked,
        steered: s.steered === true,
        log: s.log,
        rateLog: s.rateLog,
        accept: (conn, metadata, name) => {
          if (self.state === 'stopped') {
            conn.close();
            return;
          }
          const source = sourceOf(metadata);
          const r = this.admission.admit(source);
          if (r !== null) {
            this.refused(r, source);
            conn.close();
            return;
          }
          this.unclaimed.set(conn, source);
          self.tell({ type: 'accept', conn, metadata, name });
        },
        admit: (source) => {
          if (s.draining) {
            this.refused(AdmissionReason.Draining, source);
            return false;
          }
          if (!s.overload.admit()) {
            this.refused(AdmissionReason.Overload, source);
            return false;
          }
          const r = this.admission.check(source);
          if (r === null) return true;
          this.refused(r, source);
          return false;
        },
        ownerOf: (key) => s.ownerOf(key, this.cfg.name),
        handoff: (slot, h) => s.handoff(slot, h),
        count: (c, n) => this.counters.count(c, n),
        nextSessionSeq: () => s.slot + s.workers * this.seq++,
        spawnChild: (parent, child) => {
          const cell = this.cells.get(parent);
          if (cell === undefined || cell.state === 'stopped' || self.state === 'stopped') return null;
          let name = child.name;
          const taken = new Set([...cell.children.values()].map((c) => c.name));
          for (let i = 1; taken.has(name); i++) name = `${child.name}_${i}`;
          this.counters.count('child_sessions');
          const init = childSessionInit(this.env, this.cfg.name, child, name);
          const c = cell.spawnChild(name, new SessionProps(init));
          return { stop: () => c.stop() };
        },
      },
    );
    this.instance = inst;
    // A replacement worker rebuilding a dead worker's sessions: before the bind, so that no datagram
    // of theirs is taken for a new session.
    for (const a of s.takeAdoptions?.(this.cfg.name) ?? []) {
      const why = this.adopt(a.address, a.port, a.shared, a.rebuild);
      if (why !== null) a.refused(why);
    }
    this.ctx.pipeToSelf(
      inst.start(),
      () => ({ type: 'bound' }),
      (e) => ({ type: 'bindFailed', err: asL7Error(e, ErrorCode.ListenerBind, `listener "${this.cfg.name}"`) }),
    );
  }

  receive(msg: Msg): void {
    switch (msg.type) {
      case 'bound':
        this.ctx.log.info({ listener: this.cfg.name, ...this.instance?.describe() }, 'listener up');
        this.report(this.cfg.name, null);
        this.bound = true;
        // Bound while the process drains (a config change, a restart): it drains from the start.
        if (this.services.draining) this.drain();
        return;
      case 'drain':
        this.drain();
        return;
      case 'bindFailed':
        this.report(this.cfg.name, msg.err);
        // No retry loop on a failed bind: stop, and let the control plane decide.
        this.instance = null;
        this.ctx.stopSelf(msg.err);
        return;
      case 'accept':
        this.accept(msg.conn, msg.metadata, msg.name, msg.rebuild);
        return;
    }
  }

  /**
   * Rebuild a session of a worker that died (runtime/session-table.ts): the protocol recreates
   * the downstream of peer `address:port` now, synchronously (the peer's next datagram is the
   * session's), and a session actor connects it as `rebuild` says. Admission limits do not apply;
   * the session is counted. Returns null, or why it could not (then `rebuild.done` is not called).
   */
  adopt(address: string, port: number, shared: boolean, rebuild: SessionRebuild): string | null {
    const inst = this.instance;
    if (this.ctx.self.state === 'stopped' || inst?.adopt === undefined) return 'no_listener';
    const a = inst.adopt(address, port, shared);
    if (a === null) return 'not_adoptable';
    const source = sourceOf(a.metadata);
    this.admission.adopt(source);
    this.unclaimed.set(a.conn, source);
    this.ctx.self.tell({ type: 'accept', conn: a.conn, metadata: a.metadata, name: a.name, rebuild });
    return null;
  }

  private accept(conn: Connection, metadata: Metadata, base: string, rebuild?: SessionRebuild): void {
    const source = this.unclaimed.get(conn);
    this.unclaimed.delete(conn);
    let name = base;
    for (let i = 1; this.names.has(name); i++) name = `${base}_${i}`;
    this.names.set(name, source);
    // A rebuilt session is no new request (its dead worker counted it): an event of its own.
    if (rebuild === undefined) this.counters.sessions++;
    else this.counters.count('session_rebuilt');
    // One shape for every session's init (a spread per session cost more than the rest of accept).
    const init: SessionInit = { name, listener: this.cfg.name, metadata: { ...metadata, name }, source: conn, idleTimeoutMs: this.idleMs, env: this.env, rebuild };
    const tuple = rebuild === undefined ? null : (conn.rebuildTuple?.() ?? null);
    if (tuple?.shared === true) this.pinned.set(name, peerKey(tuple.remoteAddress, tuple.remotePort));
    const cell = this.ctx.spawn(name, new SessionProps(init));
    if (this.proto.listener?.spawnsChildren === true) this.cells.set(conn, cell);
    // Admitted just before the drain reached this listener (or an HTTP request on a kept connection).
    if (this.draining && this.quietMs > 0) cell.tell(drainMsg(this.quietMs) as never);
  }

  /**
   * The process drains: the protocol stops taking new sessions (stream servers stop listening;
   * datagram listeners refuse new peers through `admit`), and sessions that cannot end by
   * themselves end once quiet. Live sessions otherwise carry on. Idempotent.
   */
  private drain(): void {
    // Not bound yet: 'bound' drains it (the worker's flag is set before any 'drain' is sent).
    if (this.draining || this.instance === null || !this.bound) return;
    this.draining = true;
    try {
      this.instance.drain?.();
    } catch (e) {
      this.ctx.log.warn({ listener: this.cfg.name, err: (e as Error).message }, 'listener drain failed');
    }
    if (this.quietMs === 0) return;
    for (const c of this.ctx.self.children.values()) if (c.state !== 'stopped' && c.actor instanceof SessionActor) c.tell(drainMsg(this.quietMs) as never);
  }

  override onChildStopped(child: ActorCell<unknown>): void {
    if (this.names.has(child.name)) {
      this.admission.release(this.names.get(child.name));
      this.names.delete(child.name);
    }
    const pin = this.pinned.get(child.name);
    if (pin !== undefined) {
      this.pinned.delete(child.name);
      this.services.unpin?.(this.cfg.name, pin);
    }
    const track = this.cfg.options.track;
    if (track > 0 && child.actor instanceof SessionActor) {
      this.pruneTracked();
      if (this.tracked.length >= TRACK_MAX) this.tracked.shift();
      this.tracked.push({ node: actorTree(child, this.services.slot), until: Date.now() + track * 1000 });
    }
  }

  private pruneTracked(): void {
    const now = Date.now();
    let n = 0;
    while (n < this.tracked.length && (this.tracked[n] as { until: number }).until <= now) n++;
    if (n > 0) this.tracked.splice(0, n);
  }

  /** Ended sessions, status DESTROYED, kept for `options.track` seconds (docs/l7mp-compat.md §1.2). */
  override retainedChildren(): ActorNode[] {
    this.pruneTracked();
    return this.tracked.map((t) => t.node);
  }

  override postStop(_reason: StopReason): void {
    for (const [c, source] of this.unclaimed) {
      c.close();
      this.admission.release(source);
    }
    this.unclaimed.clear();
    // The sessions were stopped with this actor (their 'stopped' notes are not delivered to it).
    for (const source of this.names.values()) this.admission.release(source);
    this.names.clear();
    for (const pin of this.pinned.values()) this.services.unpin?.(this.cfg.name, pin);
    this.pinned.clear();
    const inst = this.instance;
    this.instance = null;
    if (inst !== null) this.services.track(inst.close());
  }

  override describe(): Record<string, unknown> {
    return {
      protocol: this.cfg.spec.protocol,
      ...this.instance?.describe(),
      sessions_total: this.counters.sessions,
      admission: this.admission.describe(),
      counters: Object.fromEntries(this.counters.named),
    };
  }
}

/** A datagram peer's session key, as datagram listeners form it (`address:port`). */
function peerKey(address: string, port: number): string {
  return `${address}:${port}`;
}

/** The source IP address of a new session (l7mp's `/IP/src_addr`), if it has one. */
function sourceOf(md: Metadata): string | undefined {
  const ip = md.IP as { src_addr?: unknown } | undefined;
  return typeof ip?.src_addr === 'string' && ip.src_addr !== '' ? ip.src_addr : undefined;
}

/**
 * How a session is spawned: once, never restarted (`temporary`: a session that fails ends). One
 * small object per session instead of a props literal and a factory closure.
 */
class SessionProps implements Props<SessionMsg> {
  readonly init: SessionInit;

  constructor(init: SessionInit) {
    this.init = init;
  }

  get restart(): RestartPolicy {
    return 'temporary';
  }

  factory(): SessionActor {
    return new SessionActor(this.init);
  }
}
