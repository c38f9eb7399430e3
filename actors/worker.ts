/**
 * The root actor of a worker thread: builds the cluster and listener actors of a config snapshot
 * and reports when every listener placed on this worker is up (or which one failed).
 *
 * Placement: `shared` listeners (UDP server mode, TCP, WebSocket) bind on every worker through
 * SO_REUSEPORT; `single` ones (Unix socket paths, UDP singleton) on the one worker that
 * `WorkerServices.placeSingle` names (actors/services.ts).
 */
import { isDeepStrictEqual } from 'node:util';
import { Actor, type ActorCell, type StopReason } from './actor.ts';
import { L7Error, ErrorCode } from '../common/errors.ts';
import type { ClusterInstance, DatagramHandoff } from '../protocols/types.ts';
import type { RoutingTable } from '../routing/table.ts';
import { ClusterActor, ClusterCounters } from './cluster.ts';
import { ListenerActor, ListenerCounters } from './listener.ts';
import { SessionActor } from './session.ts';
import { dropEndpointMsg, type SessionEnv } from './session-core.ts';
import type { SessionRebuild } from './rebuild.ts';
import type { WorkerServices } from './services.ts';
import { ClusterHealth } from '../routing/health.ts';
import type { ClusterConfig, ConfigSnapshot, ListenerConfig } from '../cluster-config/snapshot.ts';

type Msg =
  | { type: 'listenerStatus'; name: string; cell: ActorCell<unknown>; err: L7Error | null }
  | { type: 'apply'; table: RoutingTable; done: (failures: L7Error[]) => void };

/** An apply in progress: the listeners it waits for, and what failed. */
interface Phase {
  /** Listener name → the cell whose bind result the apply waits for. */
  readonly pending: Map<string, ActorCell<unknown>>;
  readonly failures: L7Error[];
  readonly done: (failures: L7Error[]) => void;
}

/**
 * Applies config snapshots: the first at start, later ones as diffs by name. A listener or cluster
 * whose spec changed is stopped and started again (a listener rebinds); one that is gone is
 * stopped, ending its sessions; sessions that traverse a removed cluster end too. Sessions keep
 * the route they were set up with. The apply is done when every new listener is up or failed.
 */
export class WorkerActor extends Actor<Msg> {
  readonly kind = 'worker' as const;
  readonly clusters = new Map<string, ClusterInstance>();
  readonly listeners = new Map<string, ActorCell<unknown>>();
  /** Listener name → its counters on this worker (kept after the listener is gone: counters never go back). */
  readonly counters = new Map<string, ListenerCounters>();
  /** Cluster name → its connect counters on this worker (kept likewise). */
  readonly clusterCounters = new Map<string, ClusterCounters>();
  /**
   * Cluster name → endpoint health on this worker (outlier detection state, the active checker's
   * verdicts). Kept across applies for the endpoints that stay; dropped with the cluster.
   */
  readonly health = new Map<string, ClusterHealth>();

  private table: RoutingTable;
  private readonly services: WorkerServices;
  private readonly onReady: (failures: L7Error[]) => void;
  private readonly clusterCells = new Map<string, { cfg: ClusterConfig; cell: ActorCell<unknown> }>();
  private readonly listenerCfgs = new Map<string, ListenerConfig>();
  private phase: Phase | null = null;
  private readonly queued: Array<{ table: RoutingTable; done: (failures: L7Error[]) => void }> = [];
  private env!: SessionEnv;
  /** Routes already warned about losing message boundaries (logged once per route). */
  private readonly framingLogged = new Set<string>();

  constructor(table: RoutingTable, services: WorkerServices, onReady: (failures: L7Error[]) => void) {
    super();
    this.table = table;
    this.services = services;
    this.onReady = onReady;
  }

  /** The routing table sessions route by (replaced by each apply). */
  get routing(): RoutingTable {
    return this.table;
  }

  override preStart(): void {
    const s = this.services;
    const self = this;
    this.env = {
      get table() {
        return self.table;
      },
      cluster: (n) => this.clusters.get(n),
      clusterCounters: (n) => this.clusterCounters.get(n),
      timers: s.timers,
      rateLog: s.rateLog,
      onEnd: (r) => s.sessionEnded(r),
      recovery: s.recovery ?? null,
      offload: s.offload,
      health: (n) => this.health.get(n),
      endpointResult: (cluster, endpoint, ok) => this.endpointResult(cluster, endpoint, ok),
      framingLost: (listener, route, from, to) => {
        // Counted per session on its listener (l7mp_listener_events_total{event="framing_lost"}, actor tree), logged once per route.
        this.counters.get(listener)?.count('framing_lost');
        if (this.framingLogged.has(route)) return;
        this.framingLogged.add(route);
        this.ctx.log.warn({ listener, route, from, to }, 'route passes a datagram stream into a byte stream: message boundaries are not kept there');
      },
    };
    this.applyTable(this.table, null, this.onReady);
  }

  receive(msg: Msg): void {
    switch (msg.type) {
      case 'listenerStatus': {
        if (msg.err !== null) this.ctx.log.error({ listener: msg.name, err: msg.err.message }, 'listener failed');
        this.settle(msg.name, msg.cell, msg.err);
        return;
      }
      case 'apply':
        if (this.phase !== null) this.queued.push({ table: msg.table, done: msg.done });
        else this.applyTable(msg.table, this.table.snapshot, msg.done);
        return;
    }
  }

  /**
   * A session's result for an endpoint (control path). A failure that ejects the endpoint moves
   * or ends the sessions on it (per their route's `retry_on`).
   */
  private endpointResult(cluster: string, endpoint: string, ok: boolean): void {
    const h = this.health.get(cluster);
    if (h === undefined) return;
    if (ok) {
      h.success(endpoint);
      return;
    }
    if (!h.failure(endpoint)) return;
    const e = h.endpoints.get(endpoint);
    const ms = e === undefined ? 0 : e.ejectedUntil - Date.now();
    this.ctx.log.warn({ cluster, endpoint, ejected_ms: ms, ejections: e?.ejections }, 'endpoint ejected (outlier detection)');
    this.dropSessions(cluster, endpoint, `was ejected for ${ms} ms (outlier detection)`);
  }

  /**
   * The active health checker's verdict for an endpoint (from the main thread). An endpoint that
   * turns unhealthy moves or ends the sessions on it. Returns true if the verdict changed here.
   */
  setActiveHealth(cluster: string, endpoint: string, healthy: boolean): boolean {
    const h = this.health.get(cluster);
    if (h === undefined || !h.setActive(endpoint, healthy)) return false;
    if (!healthy) this.dropSessions(cluster, endpoint, 'failed its health checks');
    return true;
  }

  /** Tell every session of this worker with a stage on `endpoint` of `cluster` to leave it. Returns how many were told. */
  dropSessions(cluster: string, endpoint: string, why: string): number {
    let n = 0;
    for (const l of this.listeners.values()) {
      for (const c of l.children.values()) {
        if (c.state === 'stopped' || !(c.actor instanceof SessionActor) || !c.actor.traverses(cluster, endpoint)) continue;
        c.tell(dropEndpointMsg(cluster, endpoint, why) as never);
        n++;
      }
    }
    return n;
  }

  /** A pending listener of the current apply bound (err null) or failed. */
  private settle(name: string, cell: ActorCell<unknown>, err: L7Error | null): void {
    const ph = this.phase;
    if (ph === null || ph.pending.get(name) !== cell) return;
    if (err !== null) ph.failures.push(err);
    ph.pending.delete(name);
    if (ph.pending.size === 0) this.finishPhase();
  }

  private finishPhase(): void {
    const ph = this.phase as Phase;
    this.phase = null;
    ph.done(ph.failures);
    const next = this.queued.shift();
    if (next !== undefined) this.applyTable(next.table, this.table.snapshot, next.done);
  }

  private applyTable(table: RoutingTable, prev: ConfigSnapshot | null, done: (failures: L7Error[]) => void): void {
    const s = this.services;
    this.table = table;
    const next = table.snapshot;
    const stopReason = new L7Error(ErrorCode.SessionStopped, 'removed by a config change');

    // Clusters: stop what is gone or changed, end the sessions through removed ones, start the new.
    const nextClusters = new Map(next.clusters.map((c) => [c.name, c]));
    const removedClusters = new Set<string>();
    for (const [name, { cfg, cell }] of this.clusterCells) {
      const n = nextClusters.get(name);
      if (n !== undefined && isDeepStrictEqual(n.spec, cfg.spec)) continue;
      if (n === undefined) removedClusters.add(name);
      cell.stop(null);
      this.clusterCells.delete(name);
      if (this.clusters.get(name) !== undefined) this.clusters.delete(name);
    }
    if (removedClusters.size > 0) {
      for (const l of this.listeners.values()) {
        for (const child of l.children.values()) {
          const sa = child.actor as unknown as SessionActor;
          if (sa instanceof SessionActor && sa.traversesAny(removedClusters)) child.tell({ type: 'end', reason: stopReason } as never);
        }
      }
    }
    for (const name of removedClusters) this.health.delete(name);
    for (const c of next.clusters) {
      if (c.endpoints.length > 0) {
        let h = this.health.get(c.name);
        if (h === undefined) {
          h = new ClusterHealth(c.name);
          this.health.set(c.name, h);
        }
        h.configure(c.endpoints, c.outlier_detection);
      } else this.health.delete(c.name);
      const cc = this.clusterCounters.get(c.name);
      if (cc === undefined) this.clusterCounters.set(c.name, new ClusterCounters(c.spec.protocol));
      else cc.protocol = c.spec.protocol;
      if (this.clusterCells.has(c.name)) continue;
      const proto = s.protocol(c.spec.protocol);
      if (proto === undefined) continue; // validated on the main thread
      const counters = this.clusterCounters.get(c.name) as ClusterCounters;
      const cell = this.ctx.spawn(c.name, { factory: () => new ClusterActor(c, proto, s, this.clusters, counters, () => this.health.get(c.name)), restart: 'permanent' });
      this.clusterCells.set(c.name, { cfg: c, cell });
    }

    // Listeners: the same, and wait for the new ones to bind.
    const nextListeners = new Map(next.listeners.map((l) => [l.name, l]));
    for (const [name, cfg] of this.listenerCfgs) {
      const n = nextListeners.get(name);
      if (n !== undefined && isDeepStrictEqual(n.spec, cfg.spec)) {
        // Same spec: the listener keeps its sockets and sessions; new options (limits) apply at once.
        if (!isDeepStrictEqual(n.options, cfg.options) || n.rules !== cfg.rules) {
          this.listenerCfgs.set(name, n);
          const cell = this.listeners.get(name);
          if (cell?.actor instanceof ListenerActor) cell.actor.setOptions(n);
        }
        continue;
      }
      this.listeners.get(name)?.stop(stopReason);
      this.listeners.delete(name);
      this.listenerCfgs.delete(name);
    }
    const phase: Phase = { pending: new Map(), failures: [], done };
    this.phase = phase;
    const self = this.ctx.self;
    for (const l of next.listeners) {
      if (this.listenerCfgs.has(l.name)) continue;
      const proto = s.protocol(l.spec.protocol);
      if (proto?.listener === undefined) continue;
      this.listenerCfgs.set(l.name, l);
      if (proto.listener.placement(l.spec) === 'single' && s.placeSingle(l.name) !== s.slot) continue;
      let counters = this.counters.get(l.name);
      if (counters === undefined) {
        counters = new ListenerCounters();
        this.counters.set(l.name, counters);
      }
      counters.protocol = l.spec.protocol;
      const c = counters;
      const cell: ActorCell<unknown> = this.ctx.spawn(l.name, {
        factory: () => new ListenerActor(l, proto, s, this.env, c, (name, err) => self.tell({ type: 'listenerStatus', name, cell, err })),
        restart: 'permanent',
      });
      phase.pending.set(l.name, cell);
      this.listeners.set(l.name, cell);
    }
    void prev;
    if (phase.pending.size === 0) this.finishPhase();
  }

  /** Apply a new snapshot (from the control plane); `done` gets the listeners that failed to bind. */
  apply(table: RoutingTable, done: (failures: L7Error[]) => void): void {
    this.ctx.self.tell({ type: 'apply', table, done });
  }

  /** Deliver a datagram another worker handed over. */
  handoff(h: DatagramHandoff): boolean {
    const cell = this.listeners.get(h.listener);
    const inst = cell?.state === 'running' ? (cell.actor as ListenerActor).instance : null;
    if (inst?.onHandoff === undefined) return false;
    inst.onHandoff(h);
    return true;
  }

  /**
   * Rebuild a session of a dead worker on listener `listener` (see {@link ListenerActor.adopt}).
   * Synchronous: when it returns, the peer's datagrams are the session's. Returns null, or why not
   * (then `rebuild.done` is not called).
   */
  adopt(listener: string, address: string, port: number, shared: boolean, rebuild: SessionRebuild): string | null {
    const cell = this.listeners.get(listener);
    if (cell?.state !== 'running' || !(cell.actor instanceof ListenerActor)) return 'no_listener';
    return cell.actor.adopt(address, port, shared, rebuild);
  }

  /** Deliver a message another worker's cluster of the same name sent; false if no such cluster takes it here. */
  clusterMessage(cluster: string, from: number, msg: unknown): boolean {
    const inst = this.clusters.get(cluster);
    if (inst?.onPeerMessage === undefined) return false;
    inst.onPeerMessage(from, msg);
    return true;
  }

  /** The ring of live workers changed: tell every cluster that cares. */
  ringChanged(live: readonly number[]): void {
    for (const c of this.clusters.values()) c.onRingChange?.(live);
    for (const cell of this.listeners.values()) if (cell.state !== 'stopped' && cell.actor instanceof ListenerActor) cell.actor.instance?.onRingChange?.();
  }

  override onChildStopped(child: ActorCell<unknown>, reason: StopReason): void {
    if (this.listeners.get(child.name) === child) this.listeners.delete(child.name);
    // A listener that stops before it reported (a failed bind stops it; its stop, a system
    // message, overtakes its status) settles the apply with its reason.
    this.settle(child.name, child, reason ?? new L7Error(ErrorCode.ListenerBind, `listener "${child.name}" stopped before it was up`));
  }
}
