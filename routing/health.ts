/**
 * Endpoint health of one cluster on one worker: passive outlier detection (Envoy
 * `outlier_detection`: consecutive failures eject an endpoint for `base_ejection_time` times the
 * number of ejections in a row, capped at `max_ejection_time`, at most `max_ejection_percent` of
 * the endpoints at once but always one) and the verdict of the active health checker (run once
 * per process on the main thread, pushed to every worker).
 *
 * Control path only: a session reports a connect result or the first reply of a datagram stage,
 * never a packet. Ejections end lazily: `usable` compares `ejectedUntil` with the clock, so no
 * timer is armed per endpoint. State is per worker thread: each worker counts the failures its own
 * sessions see (Envoy's outlier detection is per worker too).
 */
import type { OutlierDetectionConfig } from '../cluster-config/snapshot.ts';

/** What a load balancer asks of endpoint health (see {@link ClusterHealth}). */
export interface HealthView {
  /** False while the endpoint is ejected or marked unhealthy by the active checker. */
  usable(endpoint: string): boolean;
  /** True if some endpoint is not usable now (false lets the balancer take its plain path). */
  anyDown(): boolean;
}

/** Health and counters of one endpoint on one worker. */
export class EndpointHealth {
  /** Failures since the last success or ejection. */
  consecutive = 0;
  /** Ejected until this time (epoch ms); 0 = never ejected. */
  ejectedUntil = 0;
  /** Ejections in a row: the multiplier of the next ejection time (decays by one per `interval` in). */
  streak = 0;
  /** Active health check verdict (true until the checker says otherwise). */
  activeHealthy = true;
  /** Ejections since the worker started (counter). */
  ejections = 0;
  /** Failures reported: refused/timed-out connects, ICMP errors on datagram stages (counter). */
  failures = 0;
  /** Successes reported: stream connects, first replies of datagram stages (counter). */
  successes = 0;
}

/** Per-endpoint metrics of one cluster on one worker (plain data, crosses threads). */
export interface EndpointHealthMetrics {
  cluster: string;
  endpoint: string;
  address: string;
  /** The load balancer may pick it now: not ejected and not unhealthy. */
  healthy: boolean;
  ejected: boolean;
  activeHealthy: boolean;
  ejections: number;
  failures: number;
  successes: number;
}

export class ClusterHealth implements HealthView {
  readonly name: string;
  /** Endpoint name → state. Kept across config changes for endpoints that stay. */
  readonly endpoints = new Map<string, EndpointHealth>();
  /** Endpoint name → address, for metrics and the actor tree. */
  private readonly addresses = new Map<string, string>();
  private cfg: OutlierDetectionConfig | undefined;
  private readonly now: () => number;

  constructor(name: string, now: () => number = Date.now) {
    this.name = name;
    this.now = now;
  }

  /** (Re)configure from a cluster config: endpoints no longer listed are forgotten. */
  configure(endpoints: ReadonlyArray<{ name: string; spec: { address: string } }>, cfg: OutlierDetectionConfig | undefined): void {
    this.cfg = cfg;
    const keep = new Set<string>();
    for (const e of endpoints) {
      keep.add(e.name);
      this.addresses.set(e.name, e.spec.address);
      if (!this.endpoints.has(e.name)) this.endpoints.set(e.name, new EndpointHealth());
    }
    for (const n of [...this.endpoints.keys()]) {
      if (keep.has(n)) continue;
      this.endpoints.delete(n);
      this.addresses.delete(n);
    }
  }

  usable(endpoint: string): boolean {
    const e = this.endpoints.get(endpoint);
    return e === undefined || (e.activeHealthy && e.ejectedUntil <= this.now());
  }

  anyDown(): boolean {
    const now = this.now();
    for (const e of this.endpoints.values()) if (!e.activeHealthy || e.ejectedUntil > now) return true;
    return false;
  }

  /**
   * A failure of `endpoint` (a refused or timed-out connect, an ICMP error on a datagram stage).
   * @returns true if it ejected the endpoint now.
   */
  failure(endpoint: string): boolean {
    const e = this.endpoints.get(endpoint);
    if (e === undefined) return false;
    e.failures++;
    const cfg = this.cfg;
    const now = this.now();
    if (cfg === undefined || !cfg.enabled || e.ejectedUntil > now) return false;
    e.consecutive++;
    if (e.consecutive < cfg.consecutive_failures) return false;
    let ejected = 0;
    for (const x of this.endpoints.values()) if (x.ejectedUntil > now) ejected++;
    // Envoy: max_ejection_percent of the hosts, but at least one host may always be ejected.
    if (ejected >= Math.max(1, Math.floor((this.endpoints.size * cfg.max_ejection_percent) / 100))) return false;
    // The multiplier decays by one per interval the endpoint has been back in.
    if (e.ejectedUntil > 0) e.streak = Math.max(0, e.streak - Math.floor((now - e.ejectedUntil) / cfg.interval));
    e.streak++;
    e.consecutive = 0;
    e.ejections++;
    e.ejectedUntil = now + Math.min(cfg.base_ejection_time * e.streak, cfg.max_ejection_time);
    return true;
  }

  /** A success of `endpoint`: its consecutive failures start again from zero. */
  success(endpoint: string): void {
    const e = this.endpoints.get(endpoint);
    if (e === undefined) return;
    e.successes++;
    e.consecutive = 0;
  }

  /**
   * The active checker's verdict.
   * @returns true if it changed.
   */
  setActive(endpoint: string, healthy: boolean): boolean {
    const e = this.endpoints.get(endpoint);
    if (e === undefined || e.activeHealthy === healthy) return false;
    e.activeHealthy = healthy;
    return true;
  }

  /** Per-endpoint metrics now. */
  metrics(): EndpointHealthMetrics[] {
    const now = this.now();
    const out: EndpointHealthMetrics[] = [];
    for (const [name, e] of this.endpoints) {
      const ejected = e.ejectedUntil > now;
      out.push({
        cluster: this.name,
        endpoint: name,
        address: this.addresses.get(name) ?? '',
        healthy: !ejected && e.activeHealthy,
        ejected,
        activeHealthy: e.activeHealthy,
        ejections: e.ejections,
        failures: e.failures,
        successes: e.successes,
      });
    }
    return out;
  }

  /** For the actor tree: endpoint name → `healthy` | `ejected` (with ms left) | `unhealthy`. */
  describe(): Record<string, unknown> {
    const now = this.now();
    const out: Record<string, unknown> = {};
    for (const [name, e] of this.endpoints) {
      const left = e.ejectedUntil - now;
      out[name] = { status: !e.activeHealthy ? 'unhealthy' : left > 0 ? 'ejected' : 'healthy', ...(left > 0 ? { ejected_ms_left: left } : {}), ejections: e.ejections, failures: e.failures };
    }
    return out;
  }
}
