/**
 * The root actor of a worker thread: builds the cluster and listener actors of a config snapshot
 * and reports when every listener placed on this worker is up (or which one failed).
 *
 * Placement: `shared` listeners (UDP server mode, TCP, WebSocket) bind on every worker through
 * SO_REUSEPORT; `single` ones (Unix socket paths, UDP singleton) on the one worker that
 * {@link WorkerServices.placeSingle} names.
 */
import { Actor, type ActorCell } from './actor.ts';
import type { L7Error } from '../runtime/common/errors.ts';
import type { CoarseTimers } from '../runtime/common/clock.ts';
import type { Logger, RateLimitedLog } from '../runtime/common/log.ts';
import type { ClusterInstance, DatagramHandoff, ProtocolModule } from '../protocols/types.ts';
import type { RoutingTable } from '../routing/table.ts';
import { ClusterActor } from './cluster.ts';
import { ListenerActor, ListenerCounters } from './listener.ts';
import type { SessionEnv, SessionRecord } from './session.ts';

/** What the runtime provides to the actors of one worker thread. */
export interface WorkerServices {
  readonly slot: number;
  /** Number of worker slots configured (not only the live ones). */
  readonly workers: number;
  readonly log: Logger;
  readonly rateLog: RateLimitedLog;
  readonly timers: CoarseTimers;
  /** The protocol module for a `spec.protocol` name. */
  protocol(name: string): ProtocolModule | undefined;
  /** Owner slot of a session key on the ring of live workers. */
  ownerOf(key: string): number;
  /** Send a datagram hand-off to another worker; false if it cannot be delivered. */
  handoff(slot: number, h: DatagramHandoff): boolean;
  /** The slot that hosts a `single`-placement listener. */
  placeSingle(listener: string): number;
  /** Keep a pending close (socket release) so shutdown can wait for it. */
  track(p: Promise<void>): void;
  /** A session ended. */
  sessionEnded(r: SessionRecord): void;
}

type Msg = { type: 'listenerStatus'; name: string; err: L7Error | null };

export class WorkerActor extends Actor<Msg> {
  readonly kind = 'worker' as const;
  readonly clusters = new Map<string, ClusterInstance>();
  readonly listeners = new Map<string, ActorCell<unknown>>();
  readonly counters = new Map<string, ListenerCounters>();

  private readonly table: RoutingTable;
  private readonly services: WorkerServices;
  private readonly onReady: (failures: L7Error[]) => void;
  private pending = new Set<string>();
  private readonly failures: L7Error[] = [];
  private readyReported = false;

  constructor(table: RoutingTable, services: WorkerServices, onReady: (failures: L7Error[]) => void) {
    super();
    this.table = table;
    this.services = services;
    this.onReady = onReady;
  }

  override preStart(): void {
    const s = this.services;
    const env: SessionEnv = {
      table: this.table,
      cluster: (n) => this.clusters.get(n),
      timers: s.timers,
      rateLog: s.rateLog,
      onEnd: (r) => s.sessionEnded(r),
    };
    for (const c of this.table.snapshot.clusters) {
      const proto = s.protocol(c.spec.protocol);
      if (proto === undefined) continue; // validated before; unreachable
      this.ctx.spawn(c.name, { factory: () => new ClusterActor(c, proto, s, this.clusters), restart: 'permanent' });
    }
    const self = this.ctx.self;
    for (const l of this.table.snapshot.listeners) {
      const proto = s.protocol(l.spec.protocol);
      if (proto?.listener === undefined) continue;
      if (proto.listener.placement(l.spec) === 'single' && s.placeSingle(l.name) !== s.slot) continue;
      let counters = this.counters.get(l.name);
      if (counters === undefined) {
        counters = new ListenerCounters();
        this.counters.set(l.name, counters);
      }
      const c = counters;
      this.pending.add(l.name);
      const cell = this.ctx.spawn(l.name, {
        factory: () => new ListenerActor(l, proto, s, env, c, (name, err) => self.tell({ type: 'listenerStatus', name, err })),
        restart: 'permanent',
      });
      this.listeners.set(l.name, cell);
    }
    if (this.pending.size === 0) this.ready();
  }

  receive(msg: Msg): void {
    if (msg.type === 'listenerStatus') {
      if (msg.err !== null) {
        this.failures.push(msg.err);
        if (this.readyReported) this.ctx.log.error({ listener: msg.name, err: msg.err.message }, 'listener failed');
      }
      this.pending.delete(msg.name);
      if (this.pending.size === 0) this.ready();
    }
  }

  private ready(): void {
    if (this.readyReported) return;
    this.readyReported = true;
    this.onReady(this.failures);
  }

  /** Deliver a datagram another worker handed over. */
  handoff(h: DatagramHandoff): boolean {
    const cell = this.listeners.get(h.listener);
    const inst = cell?.state === 'running' ? (cell.actor as ListenerActor).instance : null;
    if (inst?.onHandoff === undefined) return false;
    inst.onHandoff(h);
    return true;
  }

  override onChildStopped(child: ActorCell<unknown>): void {
    if (this.listeners.get(child.name) === child) this.listeners.delete(child.name);
  }
}
