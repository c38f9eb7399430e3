/**
 * A worker thread's host (runtime/worker/worker-main.ts makes one): what the runtime provides to the
 * actors of the thread ({@link WorkerServices}: the ring and pins, hand-offs and cluster messages
 * to other workers, admission gauges, the session table, the offload provider, the admin API of
 * the main thread), its counters, and what metrics read of the thread at scrape time.
 */
import { threadId, type MessagePort } from 'node:worker_threads';
import { getHeapStatistics } from 'node:v8';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { Dispatcher, type ActorCell } from '../../actors/actor.ts';
import type { WorkerActor } from '../../actors/worker.ts';
import type { Adoption, WorkerServices } from '../../actors/services.ts';
import { SessionActor } from '../../actors/session.ts';
import type { SessionRecord } from '../../actors/record.ts';
import { CoarseTimers, systemClock } from '../../common/clock.ts';
import { makeLogger, RateLimitedLog, type LogLevel, type Logger } from '../../common/log.ts';
import { protocol } from '../../protocols/registry.ts';
import type { AdminAnswer, AdminCall, DatagramHandoff, ProcessShape } from '../../protocols/types.ts';
import { l7mpErrorAnswer } from '../../protocols/core/l7mp-error.ts';
import type { ConfigSnapshot, ListenerConfig } from '../../cluster-config/snapshot.ts';
import { WorkerRing, placeSingle } from '../ring.ts';
import { decodeAny, encodeClusterMessage, encodeHandoff, EnvelopeType } from './envelope.ts';
import { TrafficTally, type WorkerMetrics } from './stats.ts';
import { AccessLog } from './access-log.ts';
import { offloadProvider, type OffloadMode, type OffloadProvider } from '../../native-offload/provider.ts';
import { SharedGauge } from '../../actors/admission.ts';
import { DEFAULT_OVERLOAD_LAG_MS, OverloadGuard } from '../../actors/overload.ts';
import { FDS_PER_SESSION, fdBudget, sessionCap } from '../../common/fd-limit.ts';
import { listenerSessionFds, sessionFds } from '../session-fds.ts';
import { HeapReclaimer } from './heap-reclaim.ts';
import { SessionTableWriter } from '../session-table.ts';

/** What the main thread passes to a new worker. */
export interface WorkerInit {
  slot: number;
  workers: number;
  logLevel: LogLevel;
  /** Kernel offload mode (`-o` / `admin.offload`); default `disable`. */
  offload?: OffloadMode;
  /** The main thread steers UDP listeners' datagrams to their ring owner (ProcessShape.steered); default false. */
  steered?: boolean;
  /** The main thread's {@link HostApi} (comlink over this port). */
  host: MessagePort;
  /**
   * Per protocol name, this worker's port to the main thread's host of that protocol's service
   * (protocols/types.ts ProtocolService; runtime/main/services.ts).
   */
  services?: Record<string, MessagePort>;
  /** Sessions of the process: an Int32 per worker slot (actors/admission.ts, SharedGauge). */
  sessionGauge?: SharedArrayBuffer;
  /** The soft open-file limit (fds) the session cap derives from; Infinity when unknown. */
  fdSoftLimit?: number;
  /** This worker's session table (runtime/session-table.ts): read by the main thread if it dies. */
  sessionTable?: SharedArrayBuffer;
}

/** Per listener name: its process-wide session gauge (an Int32 per worker slot). */
export type ListenerGauges = Record<string, SharedArrayBuffer>;

/** What the main thread serves to its workers (comlink, one port per worker). */
export interface HostApi {
  /** Serve a request with the admin API (L7mpController and Prometheus clusters). */
  adminRequest(call: AdminCall): Promise<AdminAnswer>;
  /** A rebuilt session served through listening sockets ended: unpin its peer on every worker. */
  unpinned(listener: string, key: string): void;
}

/** The {@link WorkerServices} of one worker thread, and its counters. */
export class WorkerHost implements WorkerServices {
  readonly slot: number;
  readonly workers: number;
  readonly log: Logger;
  readonly rateLog: RateLimitedLog;
  readonly timers = new CoarseTimers(systemClock);
  readonly dispatcher: Dispatcher;
  ring: WorkerRing;
  root: ActorCell<unknown> | null = null;
  worker: WorkerActor | null = null;
  readonly peers = new Map<number, MessagePort>();
  readonly closing = new Set<Promise<void>>();
  sessionsEnded = 0;
  handoffsIn = 0;
  handoffsOut = 0;
  handoffsDropped = 0;
  clusterMsgsIn = 0;
  clusterMsgsOut = 0;
  clusterMsgsDropped = 0;
  /** Traffic of ended sessions, by listener and cluster (metrics). */
  readonly tally = new TrafficTally();
  accessLog: AccessLog | null = null;
  readonly offload: OffloadProvider | null;
  readonly offloadAsked: boolean;
  readonly steered: boolean;
  /** Workers, offload and steering: what the fds of a session depend on (runtime/session-fds.ts). */
  private readonly shape: ProcessShape;
  /** `admin.log_level` of the snapshot last applied (null before start). */
  adminLogLevel: LogLevel | null = null;
  /** Lines dropped by access logs closed before (a changed path): the counter never goes back. */
  private accessLogDroppedBefore = 0;
  readonly processGauge: SharedGauge;
  readonly fdGauge: SharedGauge;
  readonly overload = new OverloadGuard();
  draining = false;
  /** Runs a full collection once a burst of sessions has ended (runtime/worker/heap-reclaim.ts). */
  readonly reclaimer = new HeapReclaimer(
    () => this.processGauge.own(),
    () => this.overload.active,
  );
  private readonly listenerGauges = new Map<string, SharedGauge>();
  private readonly fdSoftLimit: number;
  /** The admin section last applied (session cap settings). */
  private adminConfig: ConfigSnapshot['admin'] | null = null;
  /** File descriptors a session of the config last applied holds at the fewest (runtime/session-fds.ts). */
  private fdsPerSession = FDS_PER_SESSION;

  private readonly hostApi: Comlink.Remote<HostApi>;

  constructor(init: WorkerInit) {
    this.hostApi = Comlink.wrap<HostApi>(nodeEndpoint(init.host));
    this.slot = init.slot;
    this.workers = init.workers;
    this.log = makeLogger(init.logLevel, { worker: init.slot });
    this.rateLog = new RateLimitedLog(this.log);
    this.dispatcher = new Dispatcher(`w${init.slot}`, this.log);
    this.ring = new WorkerRing(Array.from({ length: init.workers }, (_, i) => i));
    // Sessions in the first `workers` cells of the process gauge, their fds in the next (runtime/main/gauges.ts).
    const g = init.sessionGauge;
    this.processGauge = g === undefined ? SharedGauge.local() : new SharedGauge(new Int32Array(g, 0, init.workers), init.slot);
    this.fdGauge = g === undefined ? SharedGauge.local() : new SharedGauge(new Int32Array(g, 4 * init.workers, init.workers), init.slot);
    this.fdSoftLimit = init.fdSoftLimit ?? Infinity;
    this.recovery = init.sessionTable === undefined ? null : new SessionTableWriter(init.sessionTable, () => this.worker?.routing.snapshot ?? null);
    this.offloadAsked = (init.offload ?? 'disable') !== 'disable';
    this.steered = init.steered === true;
    this.shape = { workers: this.workers, offload: this.offloadAsked, steered: this.steered };
    const off = offloadProvider(init.offload ?? 'disable');
    // The main thread logs the probe's outcome once; a worker only says it at debug.
    this.offload = off.probe().available ? off : null;
    this.log.debug({ offload: off.name, reason: off.probe().reason }, 'kernel offload');
  }

  protocol = protocol;

  listenerGauge(name: string): SharedGauge {
    let g = this.listenerGauges.get(name);
    if (g === undefined) {
      g = SharedGauge.local();
      this.listenerGauges.set(name, g);
    }
    return g;
  }

  /** Take the main thread's gauges, and the admin settings and session cap of a snapshot about to be applied. */
  setGauges(snapshot: ConfigSnapshot, gauges: ListenerGauges | undefined): void {
    const admin = snapshot.admin;
    this.adminConfig = admin;
    this.fdsPerSession = sessionFds(snapshot, this.shape);
    this.overload.setMaxLag(admin.overload_lag_ms ?? DEFAULT_OVERLOAD_LAG_MS);
    this.overload.start();
    this.reclaimer.start();
    for (const [name, sab] of Object.entries(gauges ?? {})) {
      if (this.listenerGauges.get(name)?.cells.buffer !== sab) this.listenerGauges.set(name, new SharedGauge(new Int32Array(sab), this.slot));
    }
  }

  sessionCap(): number {
    return sessionCap(this.adminConfig ?? {}, this.fdSoftLimit, this.fdsPerSession);
  }

  fdBudget(): number {
    return fdBudget(this.adminConfig ?? {}, this.fdSoftLimit);
  }

  sessionFdsOf(cfg: ListenerConfig): number {
    return listenerSessionFds(cfg, this.shape);
  }

  /**
   * Peers of rebuilt sessions served through listening sockets (`listener\0address:port` → the
   * slot that serves them), set by the main thread: they win over the ring until the session ends.
   */
  readonly pins = new Map<string, number>();
  /** This worker's session table, or null (a worker built without one). */
  readonly recovery: SessionTableWriter | null;
  /** A dead worker's sessions handed to this one before it started, by listener (see takeAdoptions). */
  readonly early = new Map<string, Adoption[]>();

  takeAdoptions(listener: string): Adoption[] {
    const list = this.early.get(listener) ?? [];
    this.early.delete(listener);
    return list;
  }

  ownerOf(key: string, listener?: string): number {
    if (listener !== undefined && this.pins.size > 0) {
      const p = this.pins.get(`${listener}\0${key}`);
      if (p !== undefined && (p === this.slot || this.peers.has(p))) return p;
    }
    const o = this.ring.owner(key);
    return o < 0 ? this.slot : o;
  }

  unpin(listener: string, key: string): void {
    this.pins.delete(`${listener}\0${key}`);
    void this.hostApi.unpinned(listener, key).catch(() => {});
  }

  handoff(slot: number, h: DatagramHandoff): boolean {
    const port = this.peers.get(slot);
    if (port === undefined) return false;
    const buf = encodeHandoff(h);
    port.postMessage(buf, [buf.buffer as ArrayBuffer]);
    this.handoffsOut++;
    return true;
  }

  sendCluster(slot: number, cluster: string, msg: unknown): boolean {
    const port = this.peers.get(slot);
    if (port === undefined) return false;
    let buf: Uint8Array;
    try {
      buf = encodeClusterMessage(cluster, this.slot, msg);
    } catch (e) {
      this.rateLog.warn(`cluster-encode:${cluster}`, { cluster, err: (e as Error).message }, 'cluster message not encodable; dropped');
      return false;
    }
    port.postMessage(buf, [buf.buffer as ArrayBuffer]);
    this.clusterMsgsOut++;
    return true;
  }

  async admin(call: AdminCall): Promise<AdminAnswer> {
    try {
      return await this.hostApi.adminRequest(call);
    } catch (e) {
      return l7mpErrorAnswer(503, 'Service Unavailable', (e as Error).message);
    }
  }

  placeSingle(listener: string): number {
    return placeSingle(listener, this.workers);
  }

  track(p: Promise<void>): void {
    const q = p.catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'close failed'));
    this.closing.add(q);
    void q.finally(() => this.closing.delete(q));
  }

  sessionEnded(r: SessionRecord): void {
    this.sessionsEnded++;
    this.tally.ended(r);
    this.accessLog?.write(r, this.slot);
    this.log.debug({ session: r.name, reason: r.reason, duration_ms: r.durationMs }, 'session ended');
  }

  /** Open the access log at `path` (none when undefined); a changed path closes the old file. */
  setAccessLog(path: string | undefined): void {
    if (this.accessLog?.path === path) return;
    if (this.accessLog !== null) {
      this.accessLogDroppedBefore += this.accessLog.dropped;
      this.track(this.accessLog.close());
    }
    this.accessLog = path === undefined ? null : new AccessLog(path, this.log);
  }

  /** Live session actors of this worker (children of its listeners, not yet stopped). */
  *liveSessions(): Iterable<SessionActor> {
    for (const l of this.root?.children.values() ?? []) {
      if (l.kind !== 'listener') continue;
      for (const c of l.children.values()) if (c.state !== 'stopped' && c.actor instanceof SessionActor) yield c.actor;
    }
  }

  /** Everything metrics reads from this worker, in one synchronous pass. */
  metrics(): WorkerMetrics {
    let mailbox = 0;
    let actors = 0;
    const walk = (c: ActorCell<unknown>): void => {
      if (c.state === 'stopped') return;
      actors++;
      mailbox += c.mailboxSize;
      for (const ch of c.children.values()) walk(ch);
    };
    if (this.root !== null) walk(this.root);
    const live: SessionRecord[] = [];
    for (const s of this.liveSessions()) live.push(s.record());
    const w = this.worker;
    const { listeners, clusters } = this.tally.collect(w?.counters ?? new Map(), w?.clusterCounters ?? new Map(), live);
    const sessionStages: NonNullable<WorkerMetrics['sessionStages']> = [];
    for (const r of live) {
      for (const s of r.stages) {
        const proto = w?.clusterCounters.get(s.cluster)?.protocol;
        if (proto !== undefined && protocol(proto)?.cluster?.sessionMetrics === true) sessionStages.push({ session: r.name, cluster: s.cluster, bytes: s.txBytes, packets: s.txPackets });
      }
    }
    const endpoints: NonNullable<WorkerMetrics['endpoints']> = [];
    for (const h of w?.health.values() ?? []) endpoints.push(...h.metrics());
    return {
      slot: this.slot,
      threadId,
      endpoints,
      mailbox,
      actors,
      sessionsActive: live.length,
      handoffsIn: this.handoffsIn,
      handoffsOut: this.handoffsOut,
      handoffsDropped: this.handoffsDropped,
      accessLogDropped: this.accessLogDroppedBefore + (this.accessLog?.dropped ?? 0),
      listeners,
      clusters,
      sessionStages,
      heap: workerHeap(),
      overload: { refused: this.overload.refused, lagMs: this.overload.lastLagMs },
      reclaims: this.reclaimer.reclaims,
    };
  }

  onEnvelope = (buf: Uint8Array): void => {
    const e = decodeAny(buf);
    if (e?.type === EnvelopeType.Cluster) {
      const c = e.cluster;
      let ok = false;
      try {
        ok = this.worker !== null && this.worker.clusterMessage(c.cluster, c.from, c.msg);
      } catch (err) {
        // The data path never kills the worker: a cluster that throws on a message loses it.
        this.rateLog.warn(`cluster-msg:${c.cluster}`, { cluster: c.cluster, err: (err as Error).message }, 'cluster message handler threw; dropped');
      }
      if (ok) this.clusterMsgsIn++;
      else this.clusterMsgsDropped++;
      return;
    }
    const h = e?.type === EnvelopeType.Handoff ? e.handoff : null;
    if (h === null || this.worker === null || !this.worker.handoff(h)) {
      this.handoffsDropped++;
      return;
    }
    this.handoffsIn++;
  };

  /** A new ring of live slots. */
  setRing(live: number[]): void {
    this.ring = new WorkerRing(live);
    try {
      this.worker?.ringChanged(this.ring.slots);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'a cluster failed to handle a ring change');
    }
  }
}

/** This isolate's heap, from V8 (cheap: no walk of the heap). */
function workerHeap(): { total: number; used: number; external: number } {
  const h = getHeapStatistics();
  return { total: h.total_heap_size, used: h.used_heap_size, external: h.external_memory };
}
