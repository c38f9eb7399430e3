/**
 * Entry point of a worker thread. The main thread drives it through comlink (typed control RPC,
 * {@link WorkerApi}); workers hand datagrams to each other as msgpack envelopes over a
 * MessagePort per pair. Everything that owns sockets on this thread is an actor under one
 * {@link WorkerActor}; what the actors get from the thread is its {@link WorkerHost}
 * (runtime/worker/worker-host.ts). This file is the thread's entry and its control API.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { ActorCell } from '../../actors/actor.ts';
import { WorkerActor } from '../../actors/worker.ts';
import { actorTree, type ActorNode } from '../../actors/tree.ts';
import { SessionActor } from '../../actors/session.ts';
import type { SessionRebuild } from '../../actors/rebuild.ts';
import { L7Error, ErrorCode, type L7ErrorData } from '../../common/errors.ts';
import type { ConfigSnapshot } from '../../cluster-config/snapshot.ts';
import { RoutingTable } from '../../routing/table.ts';
import { WorkerRing } from '../ring.ts';
import type { WorkerMetrics } from './stats.ts';
import { ListenerActor } from '../../actors/listener.ts';
import { protocol } from '../../protocols/registry.ts';
import type { TableRecord } from '../session-table.ts';
import { WorkerHost, type ListenerGauges, type WorkerInit } from './worker-host.ts';

/** A dead worker's session to rebuild here ({@link WorkerApi.adopt}). */
export type AdoptRecord = TableRecord;

/** Outcome of {@link WorkerApi.adopt}. */
export interface AdoptResult {
  /** Sessions connected again with their old 5-tuples. */
  recovered: number;
  /** Sessions that could not be, by reason (`no_listener`, `not_adoptable`, or the error code that failed the rebuild). */
  failed: Record<string, number>;
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

const host = new WorkerHost(workerData as WorkerInit);
// Each protocol service gets its port before anything of the protocol is built.
for (const [name, port] of Object.entries((workerData as WorkerInit).services ?? {})) protocol(name)?.service?.worker(port);

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
    host.setGauges(snapshot, gauges);
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
    host.setGauges(snapshot, gauges);
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
   * The active health checker's verdict for an endpoint (main thread, runtime/main/health-check.ts);
   * an endpoint that turns unhealthy moves or ends the sessions on it. True if it changed here.
   */
  setEndpointHealth(cluster: string, endpoint: string, healthy: boolean): boolean {
    return host.worker?.setActiveHealth(cluster, endpoint, healthy) ?? false;
  },
  /**
   * The process drains (runtime/main/drain.ts): every listener stops taking new sessions, and from
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
