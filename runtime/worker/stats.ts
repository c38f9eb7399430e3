/**
 * What a worker reports to metrics at scrape time ({@link WorkerMetrics}), and the per-worker
 * bookkeeping behind it ({@link TrafficTally}); what the runtime gathers of every worker at a
 * scrape ({@link RuntimeMetrics}).
 *
 * Traffic is never counted twice and never per packet here: the data path increments the plain
 * {@link ConnStats} fields of each connection; a session's traffic is read from those fields while
 * it lives (a scrape sums the live sessions) and added once to its listener's and clusters' ended
 * totals when it ends (from its final {@link SessionRecord}). A scrape reports ended + live:
 * ```
 *   listener L on this worker:  ended[L] (records of ended sessions)  +  Σ live sessions of L (source stats)
 *   cluster  C on this worker:  ended[C] (their stages through C)     +  Σ live stages through C
 * ```
 * A session is live until its final record is taken; the worker reads both on its own thread, in
 * one synchronous pass, so a session is counted once (ended or live), never both.
 */
import type { ListenerCounters } from '../../actors/listener.ts';
import type { ClusterCounters } from '../../actors/cluster.ts';
import type { EndpointHealthMetrics } from '../../routing/health.ts';
import { zeroCounts, type SessionRecord, type TrafficCounts } from '../../actors/record.ts';
import type { HealthCheckStats } from '../main/health-check.ts';

/** Traffic totals (see {@link TrafficCounts}: rx = from the peer, tx = to the peer). */
export type Traffic = TrafficCounts;

/** One listener on one worker. */
export interface ListenerMetrics {
  name: string;
  protocol: string;
  /** Sessions accepted since the worker started. */
  sessions: number;
  /** Sessions alive now. */
  active: number;
  /** Downstream traffic: ended sessions plus live ones. */
  traffic: Traffic;
  /** Ended sessions by reason (`normal` or an error code). */
  ended: Record<string, number>;
  /** Protocol events by name (`filtered`, `handoff_in`, `handoff_out`...). */
  events: Record<string, number>;
}

/** One cluster on one worker. */
export interface ClusterMetrics {
  name: string;
  protocol: string;
  /** Successful connects at session setup (l7mp's `cluster_requests_total`). */
  requests: number;
  /** Successful connects, reconnects included. */
  connections: number;
  attempts: number;
  retries: number;
  failures: number;
  /** Open connections (live session stages through this cluster). */
  active: number;
  /** Upstream traffic: stages of ended sessions plus live ones. */
  traffic: Traffic;
  /** Protocol events and drops by name (`sync_forwarded`, `transform_error`...); absent = none. */
  events?: Record<string, number>;
}

/** Everything one worker reports at a scrape. Plain data (crosses threads by structured clone). */
export interface WorkerMetrics {
  slot: number;
  /** The worker thread's id: a replacement worker in the same slot has another one. */
  threadId: number;
  /** Messages waiting in all mailboxes of this worker's actors. */
  mailbox: number;
  /** Live actors (worker, listeners, clusters, sessions). */
  actors: number;
  sessionsActive: number;
  handoffsIn: number;
  handoffsOut: number;
  /** Hand-off envelopes that could not be delivered (undecodable, or no such listener here). */
  handoffsDropped: number;
  /** Access log lines dropped because the file could not keep up or failed. */
  accessLogDropped: number;
  listeners: ListenerMetrics[];
  clusters: ClusterMetrics[];
  /**
   * Live session stages through clusters that export per-session metrics (Metric): bytes and
   * messages written into the stage. Optional.
   */
  sessionStages?: Array<{ session: string; cluster: string; bytes: number; packets: number }>;
  /** The worker's V8 heap (bytes): committed, used, and memory outside it held by its objects (Buffers). Optional. */
  heap?: { total: number; used: number; external: number };
  /** New datagram sessions this worker's overload guard refused, and its last probe's lag (ms). Optional. */
  overload?: { refused: number; lagMs: number };
  /** Full collections run to give memory back after a burst of sessions (runtime/worker/heap-reclaim.ts). Optional. */
  reclaims?: number;
  /** Endpoint health and outlier-detection counters of this worker, per cluster endpoint. Optional. */
  endpoints?: EndpointHealthMetrics[];
}

export function addTraffic(into: Traffic, t: Traffic): void {
  into.rxPackets += t.rxPackets;
  into.rxBytes += t.rxBytes;
  into.txPackets += t.txPackets;
  into.txBytes += t.txBytes;
  into.drops += t.drops;
  into.setupDrops += t.setupDrops;
  into.dropEmsgsize += t.dropEmsgsize;
  into.dropEnobufs += t.dropEnobufs;
  into.dropEconnrefused += t.dropEconnrefused;
  into.dropSendError += t.dropSendError;
}

/** Sends the kernel refused, all reasons. */
export function sendDrops(t: Traffic): number {
  return t.dropEmsgsize + t.dropEnobufs + t.dropEconnrefused + t.dropSendError;
}

function isZero(t: Traffic): boolean {
  return t.rxPackets === 0 && t.txPackets === 0 && t.rxBytes === 0 && t.txBytes === 0 && t.drops === 0 && t.setupDrops === 0 && sendDrops(t) === 0;
}

function bump(m: Record<string, number>, key: string, n = 1): void {
  m[key] = (m[key] ?? 0) + n;
}

/** Ended-session totals of one worker, and the scrape-time sum over its live sessions. */
export class TrafficTally {
  private readonly listeners = new Map<string, { traffic: Traffic; ended: Record<string, number> }>();
  private readonly clusters = new Map<string, Traffic>();

  /** A session ended: add its final record to its listener's and its clusters' totals. */
  ended(r: SessionRecord): void {
    let l = this.listeners.get(r.listener);
    if (l === undefined) {
      l = { traffic: zeroCounts(), ended: {} };
      this.listeners.set(r.listener, l);
    }
    addTraffic(l.traffic, r);
    bump(l.ended, r.reason);
    for (const s of r.stages) if (!isZero(s)) addTraffic(this.clusterTotals(s.cluster), s);
  }

  private clusterTotals(name: string): Traffic {
    let t = this.clusters.get(name);
    if (t === undefined) {
      t = zeroCounts();
      this.clusters.set(name, t);
    }
    return t;
  }

  /**
   * Listener and cluster metrics of this worker: the counters of every listener and cluster it
   * has had, ended totals, plus `live` (records of the sessions alive now).
   */
  collect(
    listeners: ReadonlyMap<string, ListenerCounters>,
    clusters: ReadonlyMap<string, ClusterCounters>,
    live: Iterable<SessionRecord>,
  ): { listeners: ListenerMetrics[]; clusters: ClusterMetrics[] } {
    const lm = new Map<string, ListenerMetrics>();
    const cm = new Map<string, ClusterMetrics>();
    const listener = (name: string): ListenerMetrics => {
      let m = lm.get(name);
      if (m === undefined) {
        const c = listeners.get(name);
        const e = this.listeners.get(name);
        const traffic = zeroCounts();
        if (e !== undefined) addTraffic(traffic, e.traffic);
        m = { name, protocol: c?.protocol ?? '', sessions: c?.sessions ?? 0, active: 0, traffic, ended: { ...e?.ended }, events: c === undefined ? {} : Object.fromEntries(c.named) };
        lm.set(name, m);
      }
      return m;
    };
    const cluster = (name: string): ClusterMetrics => {
      let m = cm.get(name);
      if (m === undefined) {
        const c = clusters.get(name);
        const traffic = zeroCounts();
        const e = this.clusters.get(name);
        if (e !== undefined) addTraffic(traffic, e);
        m = {
          name,
          protocol: c?.protocol ?? '',
          requests: c?.requests ?? 0,
          connections: c?.connections ?? 0,
          attempts: c?.attempts ?? 0,
          retries: c?.retries ?? 0,
          failures: c?.failures ?? 0,
          active: 0,
          traffic,
          events: c === undefined ? {} : Object.fromEntries(c.named),
        };
        cm.set(name, m);
      }
      return m;
    };
    for (const name of listeners.keys()) listener(name);
    for (const name of this.listeners.keys()) listener(name);
    for (const name of clusters.keys()) cluster(name);
    for (const name of this.clusters.keys()) cluster(name);
    for (const r of live) {
      const l = listener(r.listener);
      l.active++;
      addTraffic(l.traffic, r);
      for (const s of r.stages) {
        const c = cluster(s.cluster);
        if (s.connected) c.active++;
        addTraffic(c.traffic, s);
      }
    }
    return { listeners: [...lm.values()], clusters: [...cm.values()] };
  }
}

/** What `Runtime.metrics` returns (runtime/main/runtime.ts): one entry per worker slot the runtime has. */
export interface RuntimeMetrics {
  /** Configured worker slots. */
  workers: number;
  /** Per slot: the worker's metrics, or null if it is not live or did not answer in time. */
  slots: Array<{ slot: number; metrics: WorkerMetrics | null }>;
  /** Worker restarts by slot since start. */
  restarts: Record<number, number>;
  /** Sessions of dead workers rebuilt elsewhere, and lost by reason, since start. */
  recovery?: { recovered: number; lost: Record<string, number> };
  /**
   * Process-wide: sessions and their cap, open fds and the soft open-file limit (-1: unknown), and
   * whether the process drains (1 from the start of a drain on, else 0).
   */
  process?: { sessions: number; sessionLimit: number; sessionFds: number; openFds: number; maxFds: number; draining?: number };
  /** Active health checks per endpoint (run once per process, on the main thread). */
  healthChecks?: HealthCheckStats[];
}
