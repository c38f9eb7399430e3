/**
 * Active health checks (Envoy `health_checks`: interval, timeout, unhealthy/healthy thresholds,
 * a TCP connect or a payload sent and a reply expected; docs: intro/arch_overview/upstream/
 * health_checking). They run once per process, on the main thread, not once per worker: N workers
 * would probe every endpoint N times and could disagree. A verdict that changes is pushed to every
 * worker (`WorkerApi.setEndpointHealth`), whose load balancers then pass the endpoint over and
 * whose sessions on it move or end per their route's `retry_on`; a replacement worker gets the
 * current verdicts when it is up.
 *
 * One timer for all checks (period: half the shortest interval or timeout, 10..1000 ms): each
 * tick starts the probes that are due and fails the ones past their deadline. Endpoints start
 * healthy (optimistic, unlike Envoy, which waits for a first pass) so a start or a config change
 * never blackholes traffic; `unhealthy_threshold` failed checks in a row mark one unhealthy,
 * `healthy_threshold` passed checks in a row mark it healthy again.
 *
 * UDP: a socket connect()ed to address:port sends `send`; a reply that contains `receive` (any
 * reply when unset) within `timeout` passes; ICMP unreachable (ECONNREFUSED), a reply without
 * `receive`, or silence fails. TCP: the connect passes (with `receive` set: `send` is written and
 * the answer must contain `receive`); refused or silent fails.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import type { ConfigSnapshot, HealthCheckConfig } from '../../cluster-config/snapshot.ts';
import type { Logger } from '../../common/log.ts';

/** One endpoint's active checks, for metrics (plain data). */
export interface HealthCheckStats {
  cluster: string;
  endpoint: string;
  address: string;
  healthy: boolean;
  /** Checks passed since the check was configured. */
  passed: number;
  /** Checks failed since the check was configured. */
  failed: number;
}

/** Called when an endpoint's verdict changes (and with healthy=true when its check is removed while it was unhealthy). */
export type HealthChange = (cluster: string, endpoint: string, healthy: boolean) => void;

/** Bytes of an answer kept while waiting for `receive` (TCP). */
const MAX_ANSWER = 64 * 1024;

interface Probe {
  /** Epoch ms after which the probe fails. */
  readonly deadline: number;
  /** End the probe (idempotent): release its socket and record the result. */
  finish(ok: boolean): void;
  /** True once finished. */
  readonly done: boolean;
}

interface Target {
  readonly cluster: string;
  readonly endpoint: string;
  readonly address: string;
  readonly cfg: HealthCheckConfig;
  readonly send: Buffer;
  readonly receive: Buffer | null;
  healthy: boolean;
  /** Passes / failures in a row. */
  passes: number;
  fails: number;
  passed: number;
  failed: number;
  /** Epoch ms of the next probe. */
  nextDue: number;
  probe: Probe | null;
}

export class HealthChecker {
  private readonly targets = new Map<string, Target>();
  private readonly onChange: HealthChange;
  private readonly log: Logger;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private tickMs = 0;
  private closed = false;

  constructor(opts: { onChange: HealthChange; log: Logger; now?: () => number }) {
    this.onChange = opts.onChange;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Take the checks of a new snapshot: an endpoint whose address and check are unchanged keeps its
   * state; a new or changed one starts healthy and is probed at once; one whose check is gone is
   * told healthy if it was not.
   */
  update(s: ConfigSnapshot): void {
    if (this.closed) return;
    const next = new Map<string, { cluster: string; endpoint: string; address: string; cfg: HealthCheckConfig }>();
    for (const c of s.clusters) {
      if (c.health_check === undefined) continue;
      for (const e of c.endpoints) next.set(`${c.name}\u0000${e.name}`, { cluster: c.name, endpoint: e.name, address: e.spec.address, cfg: c.health_check });
    }
    for (const [k, t] of this.targets) {
      const n = next.get(k);
      if (n !== undefined && n.address === t.address && isDeepStrictEqual(n.cfg, t.cfg)) continue;
      this.targets.delete(k);
      t.probe?.finish(true); // not counted: the target is gone
      if (!t.healthy) this.onChange(t.cluster, t.endpoint, true);
    }
    const now = this.now();
    for (const [k, n] of next) {
      if (this.targets.has(k)) continue;
      const enc = n.cfg.encoding;
      this.targets.set(k, {
        ...n,
        send: Buffer.from(n.cfg.send, enc),
        receive: n.cfg.receive === undefined ? null : Buffer.from(n.cfg.receive, enc),
        healthy: true,
        passes: 0,
        fails: 0,
        passed: 0,
        failed: 0,
        nextDue: now,
        probe: null,
      });
    }
    this.arm();
  }

  /** Endpoints marked unhealthy now (for a replacement worker). */
  unhealthy(): Array<{ cluster: string; endpoint: string }> {
    const out: Array<{ cluster: string; endpoint: string }> = [];
    for (const t of this.targets.values()) if (!t.healthy) out.push({ cluster: t.cluster, endpoint: t.endpoint });
    return out;
  }

  /** Per-endpoint check counters (metrics). */
  stats(): HealthCheckStats[] {
    return [...this.targets.values()].map((t) => ({ cluster: t.cluster, endpoint: t.endpoint, address: t.address, healthy: t.healthy, passed: t.passed, failed: t.failed }));
  }

  /** Stop the timer and every probe in flight. Idempotent. */
  close(): void {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const all = [...this.targets.values()];
    this.targets.clear();
    for (const t of all) t.probe?.finish(true);
  }

  /** One timer at the resolution the shortest interval or timeout needs; none without checks. */
  private arm(): void {
    let min = Infinity;
    for (const t of this.targets.values()) min = Math.min(min, t.cfg.interval, t.cfg.timeout);
    const tick = min === Infinity ? 0 : Math.max(10, Math.min(1000, Math.floor(min / 2)));
    if (tick === this.tickMs) return;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.tickMs = tick;
    if (tick === 0) return;
    this.timer = setInterval(() => this.tick(), tick);
    this.timer.unref();
    this.tick();
  }

  private tick(): void {
    const now = this.now();
    for (const t of this.targets.values()) {
      if (t.probe !== null) {
        if (now >= t.probe.deadline) t.probe.finish(false);
        continue;
      }
      if (now < t.nextDue) continue;
      t.nextDue = now + t.cfg.interval;
      try {
        t.probe = t.cfg.protocol === 'UDP' ? this.udpProbe(t, now) : this.tcpProbe(t, now);
      } catch (e) {
        // A probe that cannot even start (bad address) is a failed check, never a crash.
        this.log.debug({ cluster: t.cluster, endpoint: t.endpoint, err: (e as Error).message }, 'health check could not start');
        this.result(t, false);
      }
    }
  }

  private result(t: Target, ok: boolean): void {
    if (this.targets.get(`${t.cluster}\u0000${t.endpoint}`) !== t) return; // replaced or removed meanwhile
    if (ok) {
      t.passed++;
      t.passes++;
      t.fails = 0;
      if (!t.healthy && t.passes >= t.cfg.healthy_threshold) {
        t.healthy = true;
        this.log.info({ cluster: t.cluster, endpoint: t.endpoint, address: t.address }, 'endpoint healthy again (active health check)');
        this.onChange(t.cluster, t.endpoint, true);
      }
      return;
    }
    t.failed++;
    t.fails++;
    t.passes = 0;
    if (t.healthy && t.fails >= t.cfg.unhealthy_threshold) {
      t.healthy = false;
      this.log.warn({ cluster: t.cluster, endpoint: t.endpoint, address: t.address, failures: t.fails }, 'endpoint unhealthy (active health check)');
      this.onChange(t.cluster, t.endpoint, false);
    }
  }

  /** A probe of `t` due by `now + timeout` whose first `finish` releases its socket and counts the result. */
  private probeOf(t: Target, now: number, release: () => void): Probe {
    const probe = {
      deadline: now + t.cfg.timeout,
      done: false,
      finish: (ok: boolean): void => {
        if (probe.done) return;
        probe.done = true;
        if (t.probe === probe) t.probe = null;
        release();
        this.result(t, ok);
      },
    };
    return probe;
  }

  private udpProbe(t: Target, now: number): Probe {
    const s = dgram.createSocket(net.isIPv6(t.address) ? 'udp6' : 'udp4');
    const probe = this.probeOf(t, now, () => {
      try {
        s.close();
      } catch {
        // not bound yet, or closed
      }
    });
    s.on('error', () => probe.finish(false));
    s.on('message', (m: Buffer) => probe.finish(t.receive === null || m.includes(t.receive)));
    s.connect(t.cfg.port, t.address, (err?: Error) => {
      if (err) return probe.finish(false);
      if (probe.done) return;
      s.send(t.send, (e) => {
        if (e) probe.finish(false);
      });
    });
    return probe;
  }

  private tcpProbe(t: Target, now: number): Probe {
    const sock = net.connect({ host: t.address, port: t.cfg.port });
    let answer = Buffer.alloc(0);
    const probe = this.probeOf(t, now, () => sock.destroy());
    sock.on('error', () => probe.finish(false));
    sock.on('close', () => probe.finish(false));
    sock.on('connect', () => {
      if (t.send.length > 0) sock.write(t.send);
      if (t.receive === null) probe.finish(true);
    });
    sock.on('data', (d: Buffer) => {
      const r = t.receive;
      if (r === null) return;
      answer = Buffer.concat([answer, d]);
      if (answer.includes(r)) probe.finish(true);
      else if (answer.length > MAX_ANSWER) probe.finish(false);
    });
    return probe;
  }
}
