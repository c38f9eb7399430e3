/**
 * Telemetry a node publishes (pure computation; the agent publishes):
 * - a heartbeat ({@link Heartbeat}) on `l7mp.<fleet>.hb.<node>`, also the answer to `discover`;
 * - stats ({@link NodeStats}) on `l7mp.<fleet>.stats.<node>`: per listener and per cluster,
 *   sessions, packets per second, bytes and drops, summed over the node's workers.
 *
 * Rates are computed between two consecutive samples: (packets now - packets then) / seconds.
 * Packets and bytes count both directions (rx + tx), as seen at that listener or cluster.
 */
import type { RuntimeMetrics } from '../runtime/worker/stats.ts';
import type { Labels } from './labels.ts';
import { sendDrops, type Traffic } from '../runtime/worker/stats.ts';

/** Counters of one listener or cluster, all workers. */
export interface ObjectStats {
  name: string;
  protocol: string;
  /** Sessions (listener) or successful connects (cluster) since start. */
  sessions: number;
  /** Live sessions (listener) or open connections (cluster). */
  active: number;
  /** rx + tx packets since start. */
  packets: number;
  /** rx + tx payload bytes since start. */
  bytes: number;
  /** Packets dropped since start. */
  drops: number;
  /** Packets per second over the last interval (0 on the first sample). */
  pps: number;
}

/** The stats message. */
export interface NodeStats {
  nodeId: string;
  /** ISO 8601. */
  time: string;
  /** Seconds covered by the rates. */
  intervalS: number;
  listeners: ObjectStats[];
  clusters: ObjectStats[];
}

/** Node totals carried by the heartbeat (listeners only: what the node serves). */
export interface StatTotals {
  sessions: number;
  active: number;
  pps: number;
  bytes: number;
  drops: number;
}

/** Result of the last apply attempt. */
export interface ApplyResult {
  revision: number;
  ok: boolean;
  error?: { code: string; message: string };
}

/** The heartbeat message, and each item of `fleet status --json`. */
export interface Heartbeat {
  nodeId: string;
  fleet: string;
  labels: Labels;
  /** The address other nodes reach this node at (endpoints compiled from CRD selectors). */
  address: string;
  /** The KV revision of the config it serves. */
  revision: number;
  /**
   * `ok`: every worker is live; `degraded`: a worker is being replaced or gave up; `draining`: the
   * node takes no new sessions (SIGTERM, a drain command), whatever its workers.
   */
  health: 'ok' | 'degraded' | 'draining';
  workers: { live: number; total: number };
  /** The last apply attempt (an ACK or a NACK). */
  last: ApplyResult | null;
  /** When the node last finished reading its keys from KV (after a connect or reconnect); null before. ISO 8601. */
  synced: string | null;
  stats: StatTotals;
  pid: number;
  time: string;
}

/** Turns successive {@link RuntimeMetrics} samples into {@link NodeStats}. */
export class StatsSampler {
  private prev = new Map<string, number>();
  private prevAt = 0;
  /** Totals of the last sample. */
  totals: StatTotals = { sessions: 0, active: 0, pps: 0, bytes: 0, drops: 0 };

  /** Sum the workers' metrics, compute rates against the previous sample. `now` in ms. */
  sample(nodeId: string, m: RuntimeMetrics, now: number): NodeStats {
    const listeners = new Map<string, ObjectStats>();
    const clusters = new Map<string, ObjectStats>();
    const add = (into: Map<string, ObjectStats>, name: string, protocol: string, sessions: number, active: number, t: Traffic): void => {
      let s = into.get(name);
      if (s === undefined) {
        s = { name, protocol, sessions: 0, active: 0, packets: 0, bytes: 0, drops: 0, pps: 0 };
        into.set(name, s);
      }
      s.sessions += sessions;
      s.active += active;
      s.packets += t.rxPackets + t.txPackets;
      s.bytes += t.rxBytes + t.txBytes;
      s.drops += t.drops + t.setupDrops + sendDrops(t);
    };
    for (const slot of m.slots) {
      if (slot.metrics === null) continue;
      for (const l of slot.metrics.listeners) add(listeners, l.name, l.protocol, l.sessions, l.active, l.traffic);
      for (const c of slot.metrics.clusters) add(clusters, c.name, c.protocol, c.requests, c.active, c.traffic);
    }
    const dt = this.prevAt === 0 ? 0 : (now - this.prevAt) / 1000;
    const next = new Map<string, number>();
    const rate = (kind: string, s: ObjectStats): void => {
      const k = `${kind}/${s.name}`;
      const before = this.prev.get(k);
      // A counter that went back (object re-created) restarts the rate.
      s.pps = dt > 0 && before !== undefined && s.packets >= before ? Math.round(((s.packets - before) / dt) * 10) / 10 : 0;
      next.set(k, s.packets);
    };
    for (const s of listeners.values()) rate('l', s);
    for (const s of clusters.values()) rate('c', s);
    this.prev = next;
    this.prevAt = now;
    const ls = [...listeners.values()];
    this.totals = {
      sessions: ls.reduce((a, s) => a + s.sessions, 0),
      active: ls.reduce((a, s) => a + s.active, 0),
      pps: Math.round(ls.reduce((a, s) => a + s.pps, 0) * 10) / 10,
      bytes: ls.reduce((a, s) => a + s.bytes, 0),
      drops: ls.reduce((a, s) => a + s.drops, 0),
    };
    return { nodeId, time: new Date(now).toISOString(), intervalS: Math.round(dt * 1000) / 1000, listeners: ls, clusters: [...clusters.values()] };
  }
}
