/**
 * Entry point of a worker thread. The main thread drives it through comlink (typed control RPC,
 * {@link WorkerApi}); workers hand datagrams to each other as msgpack envelopes over a
 * MessagePort per pair. Everything that owns sockets on this thread is an actor under one
 * {@link WorkerActor}.
 */
import { parentPort, threadId, workerData, type MessagePort } from 'node:worker_threads';
import { getHeapStatistics } from 'node:v8';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { Dispatcher, type ActorCell } from '../actors/actor.ts';
import { WorkerActor } from '../actors/worker.ts';
import type { Adoption, WorkerServices } from '../actors/services.ts';
import { actorTree, type ActorNode } from '../actors/tree.ts';
import { SessionActor } from '../actors/session.ts';
import type { SessionRebuild } from '../actors/rebuild.ts';
import type { SessionRecord } from '../actors/record.ts';
import { CoarseTimers, systemClock } from './common/clock.ts';
import { makeLogger, RateLimitedLog, type LogLevel, type Logger } from './common/log.ts';
import { L7Error, ErrorCode, type L7ErrorData } from './common/errors.ts';
import { protocol } from '../protocols/registry.ts';
import type { AdminAnswer, AdminCall, DatagramHandoff } from '../protocols/types.ts';
import { l7mpErrorAnswer } from '../protocols/core/l7mp-error.ts';
import type { ConfigSnapshot } from '../cluster-config/snapshot.ts';
import { RoutingTable } from '../routing/table.ts';
import { WorkerRing, placeSingle } from './ring.ts';
import { decodeAny, encodeClusterMessage, encodeHandoff, EnvelopeType } from './envelope.ts';
import { TrafficTally, type WorkerMetrics } from './stats.ts';
import { AccessLog } from './access-log.ts';
import { offloadProvider, type OffloadMode, type OffloadProvider } from '../native-offload/provider.ts';
import { ListenerActor } from '../actors/listener.ts';
import { setUnixDgramPort } from '../protocols/uds/dgram-relay.ts';
import { SharedGauge } from '../actors/admission.ts';
import { DEFAULT_OVERLOAD_LAG_MS, OverloadGuard } from '../actors/overload.ts';
import { sessionCap } from './common/fd-limit.ts';
import { HeapReclaimer } from './heap-reclaim.ts';
import { SessionTableWriter, type TableRecord } from './session-table.ts';

/** What the main thread passes to a new worker. */
export interface WorkerInit {
  slot: number;
  workers: number;
  logLevel: LogLevel;
  /** Kernel offload mode (`-o` / `admin.offload`); default `disable`. */
  offload?: OffloadMode;
  /** The main thread's {@link HostApi} (comlink over this port). */
  host: MessagePort;
  /** The port to the main thread's Unix datagram socket host (protocols/uds/dgram-host.ts). */
  unixDgramPort?: MessagePort;
  /** Sessions of the process: an Int32 per worker slot (actors/admission.ts, SharedGauge). */
  sessionGauge?: SharedArrayBuffer;
  /** The soft open-file limit (fds) the session cap derives from; Infinity when unknown. */
  fdSoftLimit?: number;
  /** This worker's session table (runtime/session-table.ts): read by the main thread if it dies. */
  sessionTable?: SharedArrayBuffer;
}

/** A dead worker's session to rebuild here ({@link WorkerApi.adopt}). */
export type AdoptRecord = TableRecord;

/** Outcome of {@link WorkerApi.adopt}. */
export interface AdoptResult {
  /** Sessions connected again with their old 5-tuples. */
  recovered: number;
  /** Sessions that could not be, by reason (`no_listener`, `not_adoptable`, or the error code that failed the rebuild). */
  failed: Record<string, number>;
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

/** Outcome of {@link WorkerApi.start}: errors travel as data (comlink drops custom fields of thrown errors). */
export type StartResult = { ok: true } | { ok: false; errors: L7ErrorData[] };

/** Counters of one worker (tests, metrics). */
export interface WorkerStats {
  slot: number;
  sessionsActive: number;
  sessionsEnded: number;
  handoffsIn: number;
  handoffsOut: number;
  handoffsDropped: number;
  /** Cluster messages received from other workers, sent to them, and not deliverable. */
  clusterMsgsIn: number;
  clusterMsgsOut: number;
  clusterMsgsDropped: number;
  listeners: Record<string, { sessions: number; counters: Record<string, number> }>;
  /** Per cluster: its protocol events and drops on this worker (ClusterContext.count). */
  clusters: Record<string, Record<string, number>>;
}

class WorkerHost implements WorkerServices {
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
  /** `admin.log_level` of the snapshot last applied (null before start). */
  adminLogLevel: LogLevel | null = null;
  /** Lines dropped by access logs closed before (a changed path): the counter never goes back. */
  private accessLogDroppedBefore = 0;
  readonly processGauge: SharedGauge;
  readonly overload = new OverloadGuard();
  draining = false;
  /** Runs a full collection once a burst of sessions has ended (runtime/heap-reclaim.ts). */
  readonly reclaimer = new HeapReclaimer(
    () => this.processGauge.own(),
    () => this.overload.active,
  );
  private readonly listenerGauges = new Map<string, SharedGauge>();
  private readonly fdSoftLimit: number;
  /** The admin section last applied (session cap settings). */
  private adminConfig: ConfigSnapshot['admin'] | null = null;

  private readonly hostApi: Comlink.Remote<HostApi>;

  constructor(init: WorkerInit) {
    this.hostApi = Comlink.wrap<HostApi>(nodeEndpoint(init.host));
    this.slot = init.slot;
    this.workers = init.workers;
    this.log = makeLogger(init.logLevel, { worker: init.slot });
    this.rateLog = new RateLimitedLog(this.log);
    this.dispatcher = new Dispatcher(`w${init.slot}`, this.log);
    this.ring = new WorkerRing(Array.from({ length: init.workers }, (_, i) => i));
    this.processGauge = init.sessionGauge === undefined ? SharedGauge.local() : new SharedGauge(new Int32Array(init.sessionGauge), init.slot);
    this.fdSoftLimit = init.fdSoftLimit ?? Infinity;
    this.recovery = init.sessionTable === undefined ? null : new SessionTableWriter(init.sessionTable, () => this.worker?.routing.snapshot ?? null);
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

  /** Take the main thread's gauges and admin settings of a snapshot about to be applied. */
  setGauges(admin: ConfigSnapshot['admin'], gauges: ListenerGauges | undefined): void {
    this.adminConfig = admin;
    this.overload.setMaxLag(admin.overload_lag_ms ?? DEFAULT_OVERLOAD_LAG_MS);
    this.overload.start();
    this.reclaimer.start();
    for (const [name, sab] of Object.entries(gauges ?? {})) {
      if (this.listenerGauges.get(name)?.cells.buffer !== sab) this.listenerGauges.set(name, new SharedGauge(new Int32Array(sab), this.slot));
    }
  }

  sessionCap(): number {
    return sessionCap(this.adminConfig ?? {}, this.fdSoftLimit);
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

const host = new WorkerHost(workerData as WorkerInit);
if ((workerData as WorkerInit).unixDgramPort !== undefined) setUnixDgramPort((workerData as WorkerInit).unixDgramPort as MessagePort);

function sessionsActive(): number {
  let n = 0;
  for (const _ of host.liveSessions()) n++;
  return n;
}

/** A worker's listener failures as the result the main thread gets. */
function startResult(failures: readonly L7Error[]): StartResult {
  return failures.length === 0 ? { ok: true } : { ok: false, errors: failures.map((f) => f.toData()) };
}

/** The control API a worker exposes to the main thread. */
const api = {
  /** Build the actors of `snapshot`; resolves once every listener placed here is bound. */
  start(snapshot: ConfigSnapshot, live: number[], gauges?: ListenerGauges): Promise<StartResult> {
    host.setGauges(snapshot.admin, gauges);
    host.ring = new WorkerRing(live);
    host.setAccessLog(snapshot.admin.access_log_path);
    host.adminLogLevel = snapshot.admin.log_level;
    return new Promise<StartResult>((resolve) => {
      const table = new RoutingTable(snapshot);
      host.root = host.dispatcher.spawnRoot(
        `worker-${host.slot}`,
        {
          factory: () => {
            const w = new WorkerActor(table, host, (failures) => {
              // Adoptions no listener took: their listener is not here.
              for (const list of host.early.values()) for (const a of list) a.refused('no_listener');
              host.early.clear();
              resolve(startResult(failures));
            });
            host.worker = w;
            return w;
          },
        },
        (err) => {
          // The root gave up: let the thread die so the main thread replaces it.
          host.log.error({ err: err.message }, 'worker root actor failed');
          setImmediate(() => {
            throw err;
          });
        },
      );
    });
  },
  /**
   * Apply a new config snapshot (a diff against the current one). Resolves when every new
   * listener placed here is bound, or with the ones that failed.
   */
  apply(snapshot: ConfigSnapshot, gauges?: ListenerGauges): Promise<StartResult> {
    host.setGauges(snapshot.admin, gauges);
    const w = host.worker;
    if (w === null) return Promise.resolve({ ok: false, errors: [new L7Error(ErrorCode.Internal, `worker ${host.slot} is not started`).toData()] });
    const table = new RoutingTable(snapshot);
    host.setAccessLog(snapshot.admin.access_log_path);
    // A log level changed through the API (POST /api/v1/admin); `-l` set the one at start.
    if (host.adminLogLevel !== null && snapshot.admin.log_level !== host.adminLogLevel) host.log.level = snapshot.admin.log_level;
    host.adminLogLevel = snapshot.admin.log_level;
    return new Promise<StartResult>((resolve) => {
      w.apply(table, (failures) => resolve(startResult(failures)));
    });
  },
  /** The live slots changed (a worker died or came back). */
  setRing(live: number[]): void {
    host.setRing(live);
  },
  /**
   * Rebuild sessions of worker `from`, which died (runtime/session-table.ts): each downstream is
   * recreated before this returns its promise (the peer's next datagram is the session's), each
   * upstream socket binds its old local address:port. Resolves once every session is connected
   * again or failed.
   */
  adopt(records: AdoptRecord[], from: number): Promise<AdoptResult> {
    const res: AdoptResult = { recovered: 0, failed: {} };
    const w = host.worker;
    const fail = (why: string): void => {
      res.failed[why] = (res.failed[why] ?? 0) + 1;
    };
    return new Promise<AdoptResult>((resolve) => {
      let pending = records.length;
      const settle = (): void => {
        if (--pending === 0) resolve(res);
      };
      for (const r of records) {
        const rebuild: SessionRebuild = {
          route: r.route,
          cluster: r.cluster,
          endpoint: r.endpoint,
          remoteAddress: r.remoteAddress,
          remotePort: r.remotePort,
          localAddress: r.localAddress,
          localPort: r.localPort,
          from,
          done: (err) => {
            if (err === null) res.recovered++;
            else fail(err.code);
            settle();
          },
        };
        const refused = (why: string): void => {
          fail(why);
          settle();
        };
        if (w === null) {
          // Not started yet (a replacement): its listeners take them before they bind.
          let list = host.early.get(r.listener);
          if (list === undefined) host.early.set(r.listener, (list = []));
          list.push({ address: r.peerAddress, port: r.peerPort, shared: r.shared, rebuild, refused });
          continue;
        }
        const why = w.adopt(r.listener, r.peerAddress, r.peerPort, r.shared, rebuild);
        if (why !== null) refused(why);
      }
      if (records.length === 0) resolve(res);
    });
  },
  /** Pin peers of listeners to slots (`[listener, address:port, slot]`): rebuilt sessions served through listening sockets. */
  pin(entries: Array<[string, string, number]>): void {
    for (const [l, k, slot] of entries) host.pins.set(`${l}\0${k}`, slot);
  },
  /** Remove pins (`[listener, address:port]`). */
  unpin(entries: Array<[string, string]>): void {
    for (const [l, k] of entries) host.pins.delete(`${l}\0${k}`);
  },
  /** A port to another worker, for hand-offs. */
  addPeer(slot: number, port: MessagePort): void {
    host.peers.get(slot)?.close();
    host.peers.set(slot, port);
    port.on('message', host.onEnvelope);
  },
  removePeer(slot: number): void {
    host.peers.get(slot)?.close();
    host.peers.delete(slot);
  },
  /**
   * Disconnect the session stages on `endpoint` of `cluster` (a recursive endpoint delete), so
   * retries move them elsewhere. Returns how many sessions were told.
   */
  dropEndpoint(cluster: string, endpoint: string): number {
    return host.worker?.dropSessions(cluster, endpoint, 'was deleted') ?? 0;
  },
  /**
   * The active health checker's verdict for an endpoint (main thread, runtime/health-check.ts);
   * an endpoint that turns unhealthy moves or ends the sessions on it. True if it changed here.
   */
  setEndpointHealth(cluster: string, endpoint: string, healthy: boolean): boolean {
    return host.worker?.setActiveHealth(cluster, endpoint, healthy) ?? false;
  },
  /**
   * The process drains (runtime/drain.ts): every listener stops taking new sessions, and from
   * now on listeners bound here (a config change) start drained. One way; idempotent.
   */
  drain(): void {
    if (host.draining) return;
    host.draining = true;
    for (const cell of host.worker?.listeners.values() ?? []) if (cell.state !== 'stopped') cell.tell({ type: 'drain' } as never);
  },
  /**
   * The drain's deadline passed: stop every live session with `L7_ERR_SESSION_DRAINED` (their
   * records and access log lines say so). Returns how many were told.
   */
  cutSessions(): number {
    let n = 0;
    for (const l of host.root?.children.values() ?? []) {
      if (l.kind !== 'listener') continue;
      for (const c of l.children.values()) {
        if (c.state === 'stopped' || !(c.actor instanceof SessionActor)) continue;
        c.stop(new L7Error(ErrorCode.SessionDrained, 'cut at the end of the drain'));
        n++;
      }
    }
    return n;
  },
  /** Stop the session actor with this id: 'ok', 'not-found', or 'not-session'. */
  stopActor(id: string): 'ok' | 'not-found' | 'not-session' {
    const find = (c: ActorCell<unknown>): ActorCell<unknown> | null => {
      if (c.id === id) return c;
      for (const ch of c.children.values()) {
        const f = find(ch);
        if (f !== null) return f;
      }
      return null;
    };
    const cell = host.root === null ? null : find(host.root);
    if (cell === null || cell.state === 'stopped') return 'not-found';
    if (cell.kind !== 'session') return 'not-session';
    cell.stop(new L7Error(ErrorCode.SessionStopped, 'Session removed from the API'));
    return 'ok';
  },
  /**
   * The listening sockets of this worker's UDP server listeners, for SO_REUSEPORT steering:
   * listener name, bound address:port and fd.
   */
  steerFds(): Array<{ listener: string; fd: number }> {
    const out: Array<{ listener: string; fd: number }> = [];
    for (const [name, cell] of host.worker?.listeners ?? []) {
      if (cell.state === 'stopped' || !(cell.actor instanceof ListenerActor)) continue;
      const fd = cell.actor.instance?.steerFd?.() ?? -1;
      if (fd >= 0) out.push({ listener: name, fd });
    }
    return out;
  },
  tree(): ActorNode | null {
    return host.root === null ? null : actorTree(host.root, host.slot);
  },
  stats(): WorkerStats {
    const listeners: WorkerStats['listeners'] = {};
    for (const [name, c] of host.worker?.counters ?? []) listeners[name] = { sessions: c.sessions, counters: Object.fromEntries(c.named) };
    const clusters: WorkerStats['clusters'] = {};
    for (const [name, c] of host.worker?.clusterCounters ?? []) clusters[name] = Object.fromEntries(c.named);
    return {
      slot: host.slot,
      sessionsActive: sessionsActive(),
      sessionsEnded: host.sessionsEnded,
      handoffsIn: host.handoffsIn,
      handoffsOut: host.handoffsOut,
      handoffsDropped: host.handoffsDropped,
      clusterMsgsIn: host.clusterMsgsIn,
      clusterMsgsOut: host.clusterMsgsOut,
      clusterMsgsDropped: host.clusterMsgsDropped,
      listeners,
      clusters,
    };
  },
  /** Listener, cluster and worker counters for metrics (read at scrape time). */
  metrics(): WorkerMetrics {
    return host.metrics();
  },
  /** Stop every actor (sessions end, listeners close, socket files go) and wait for the sockets. */
  async shutdown(): Promise<void> {
    host.root?.stop(new L7Error(ErrorCode.SessionStopped, 'shutdown'));
    host.dispatcher.drain();
    host.setAccessLog(undefined);
    await Promise.all([...host.closing]);
    for (const p of host.peers.values()) p.close();
  },
};

export type WorkerApi = typeof api;

Comlink.expose(api, nodeEndpoint(parentPort as NonNullable<typeof parentPort>));
