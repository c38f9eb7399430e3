/**
 * `GET /metrics`: Prometheus text exposition (prom-client), read from the workers at scrape time.
 *
 * Nothing here runs per packet. The data path increments plain connection fields; a scrape asks
 * every live worker for its {@link WorkerMetrics} (one comlink call each, in parallel), turns them
 * into samples ({@link workerSamples}), and sets the metric families declared once in
 * {@link FAMILIES}. Families without the `worker` label (l7mp's `listener_requests_total` and
 * `cluster_requests_total`) are summed over workers.
 *
 * Counters never go back, even across worker restarts: {@link WorkerSeries} keeps each slot's last
 * answer, reuses it when a worker does not answer (its gauges are then left out), and when a
 * replacement worker (another thread id) shows up in a slot it adds the dead worker's last
 * counters to the slot's base. Traffic a worker saw after the last scrape before it died is lost.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { Runtime } from '../runtime.ts';
import type { RuntimeMetrics } from '../../worker/stats.ts';
import type { WorkerMetrics } from '../../worker/stats.ts';
import type { AdminServer } from './server.ts';
import { ADMISSION_REASONS } from '../../../actors/admission.ts';
import { dropReasons } from '../../../protocols/registry.ts';

/** A metric family: declared once, filled at each scrape. */
export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  /** Label names; a sample's other labels are summed away. */
  readonly labels: readonly string[];
}

const L = ['listenerName', 'protocol', 'worker'] as const;
const C = ['clusterName', 'protocol', 'worker'] as const;
const W = ['worker'] as const;
const E = ['clusterName', 'endpoint', 'worker'] as const;

/** Every metric `/metrics` exposes. Units: packets are datagrams (or stream chunks), bytes are bytes. */
export const FAMILIES: readonly Family[] = Object.freeze([
  // l7mp's names and labels (docs/l7mp-compat.md §6.1), summed over workers.
  { name: 'listener_requests_total', type: 'counter', labels: ['listenerName', 'protocol'], help: 'Sessions emitted by a listener (counted before routing).' },
  { name: 'cluster_requests_total', type: 'counter', labels: ['clusterName', 'protocol'], help: 'Successful session stage connects to a cluster at session setup (reconnects not counted).' },
  { name: 'session_byte_counter_total', type: 'counter', labels: ['sessionName', 'clusterName'], help: 'Bytes through a Metric cluster stage, per live session.' },
  { name: 'session_packet_counter_total', type: 'counter', labels: ['sessionName', 'clusterName'], help: 'Messages (stream chunks) through a Metric cluster stage, per live session.' },
  // Listeners, per worker. rx = from the downstream peers, tx = to them.
  { name: 'l7mp_listener_sessions_total', type: 'counter', labels: L, help: 'Sessions accepted.' },
  { name: 'l7mp_listener_sessions_active', type: 'gauge', labels: L, help: 'Sessions alive now.' },
  { name: 'l7mp_listener_sessions_ended_total', type: 'counter', labels: [...L, 'reason'], help: 'Sessions ended, by reason: normal or an L7_ERR_* code.' },
  { name: 'l7mp_listener_rx_packets_total', type: 'counter', labels: L, help: 'Datagrams (stream chunks) received from downstream peers.' },
  { name: 'l7mp_listener_tx_packets_total', type: 'counter', labels: L, help: 'Datagrams (stream writes) sent to downstream peers.' },
  { name: 'l7mp_listener_rx_bytes_total', type: 'counter', labels: L, help: 'Bytes received from downstream peers.' },
  { name: 'l7mp_listener_tx_bytes_total', type: 'counter', labels: L, help: 'Bytes sent to downstream peers.' },
  { name: 'l7mp_listener_dropped_packets_total', type: 'counter', labels: [...L, 'reason'], help: 'Downstream datagrams (or connections) dropped, by reason: connection (sent after close or over the hold limit), setup (held by a session that ended before connecting), filtered (UDP connect filter), malformed, body_too_large (HTTP 413), header_too_large (HTTP 431), emsgsize / enobufs / econnrefused / send_error (a send to the peer the kernel refused, by errno; never counted as tx), session_rate (UDP per-session max_pps/max_bps), fd_exhausted (no file descriptor for a session socket), and admission control: process_sessions, listener_sessions, listener_rate, source_sessions, source_rate, source_table_full, overload (the worker event loop was late), draining (a new datagram peer while the process drains).' },
  { name: 'l7mp_listener_events_total', type: 'counter', labels: [...L, 'event'], help: 'Protocol events of a listener, by name (handoff_in, handoff_out; connections closed by a deadline: header_timeout, request_timeout, handshake_timeout, keepalive_timeout...).' },
  // Clusters, per worker. rx = from the upstream endpoints, tx = to them.
  { name: 'l7mp_cluster_connections_total', type: 'counter', labels: C, help: 'Successful connects of session stages, reconnects included.' },
  { name: 'l7mp_cluster_connections_active', type: 'gauge', labels: C, help: 'Open connections of live session stages.' },
  { name: 'l7mp_cluster_connect_attempts_total', type: 'counter', labels: C, help: 'Connect attempts.' },
  { name: 'l7mp_cluster_connect_retries_total', type: 'counter', labels: C, help: 'Connect attempts beyond the first of a setup, plus reconnect attempts.' },
  { name: 'l7mp_cluster_connect_failures_total', type: 'counter', labels: C, help: 'Connect attempts that failed (refused, timed out, no endpoint).' },
  { name: 'l7mp_cluster_rx_packets_total', type: 'counter', labels: C, help: 'Datagrams (stream chunks) received from upstream endpoints.' },
  { name: 'l7mp_cluster_tx_packets_total', type: 'counter', labels: C, help: 'Datagrams (stream writes) sent to upstream endpoints.' },
  { name: 'l7mp_cluster_rx_bytes_total', type: 'counter', labels: C, help: 'Bytes received from upstream endpoints.' },
  { name: 'l7mp_cluster_tx_bytes_total', type: 'counter', labels: C, help: 'Bytes sent to upstream endpoints.' },
  { name: 'l7mp_cluster_dropped_packets_total', type: 'counter', labels: [...C, 'reason'], help: 'Upstream datagrams dropped, by reason: connection, setup, emsgsize / enobufs / econnrefused / send_error (a send to the endpoint the kernel refused, by errno; never counted as tx), and cluster drops (transform_error, transform_null, transform_overflow, sync_unheard, sync_undeliverable).' },
  { name: 'l7mp_cluster_events_total', type: 'counter', labels: [...C, 'event'], help: 'Protocol events of a cluster, by name (sync_forwarded, sync_received...).' },
  // Endpoints, per worker (outlier detection state is per worker; the active checks' verdicts reach every worker).
  { name: 'l7mp_endpoint_health', type: 'gauge', labels: E, help: '1 if the worker\'s load balancer may pick the endpoint, 0 while it is ejected (outlier detection) or failing its health checks.' },
  { name: 'l7mp_endpoint_ejections_total', type: 'counter', labels: E, help: 'Ejections of the endpoint by outlier detection (consecutive failures).' },
  { name: 'l7mp_endpoint_connect_failures_total', type: 'counter', labels: E, help: 'Failures of the endpoint seen by sessions: refused or timed-out connects, ICMP errors on datagram stages.' },
  // Active health checks: run once per process (main thread), no worker label.
  { name: 'l7mp_endpoint_health_checks_total', type: 'counter', labels: ['clusterName', 'endpoint', 'result'], help: 'Active health checks of the endpoint, by result: success or failure.' },
  // Workers.
  { name: 'l7mp_worker_up', type: 'gauge', labels: W, help: '1 if the worker answered this scrape, else 0.' },
  { name: 'l7mp_worker_sessions_active', type: 'gauge', labels: W, help: 'Sessions alive on the worker.' },
  { name: 'l7mp_worker_mailbox_messages', type: 'gauge', labels: W, help: 'Messages waiting in the mailboxes of all actors of the worker.' },
  { name: 'l7mp_worker_actors', type: 'gauge', labels: W, help: 'Live actors of the worker (worker, listeners, clusters, sessions).' },
  { name: 'l7mp_worker_dropped_packets_total', type: 'counter', labels: [...W, 'reason'], help: 'Datagrams dropped by the worker, by reason: handoff (hand-off envelope not deliverable).' },
  { name: 'l7mp_worker_access_log_dropped_lines_total', type: 'counter', labels: W, help: 'Access log lines dropped (the file fell behind or failed).' },
  { name: 'l7mp_worker_restarts_total', type: 'counter', labels: W, help: 'Worker thread restarts (a dead worker replaced in its slot).' },
  { name: 'l7mp_sessions_recovered_total', type: 'counter', labels: [], help: 'UDP sessions of a dead worker rebuilt on a live worker with the same downstream and upstream addresses and ports.' },
  { name: 'l7mp_sessions_lost_total', type: 'counter', labels: ['reason'], help: 'Sessions of a dead worker that ended, by reason: worker_exit (not rebuildable: TCP, WebSocket, chains, Unix sockets...), rebuild_failed (a UDP session whose rebuild failed, e.g. its upstream port was taken).' },
  { name: 'l7mp_worker_heap_bytes', type: 'gauge', labels: [...W, 'kind'], help: 'The worker thread V8 heap: kind=total (committed), used, external (Buffers and other memory its objects hold).' },
  { name: 'l7mp_worker_heap_reclaims_total', type: 'counter', labels: W, help: 'Full garbage collections a worker ran to give memory back after a burst of sessions ended.' },
  { name: 'l7mp_worker_overload_lag_ms', type: 'gauge', labels: W, help: 'How late the worker event loop ran its last 10 ms overload probe (admin.overload_lag_ms); the probe runs while new sessions are admitted, and this is 0 once none was for 200 ms.' },
  // The process: admission control's count and cap, file descriptors.
  { name: 'l7mp_process_sessions', type: 'gauge', labels: [], help: 'Sessions of the whole process, as admission control counts them.' },
  { name: 'l7mp_process_session_limit', type: 'gauge', labels: [], help: 'The process-wide session cap in force: admin.max_sessions, at most (open-file soft limit - admin.fd_reserve) / the fewest file descriptors a session of the config holds (1 or 2).' },
  { name: 'l7mp_process_session_fds', type: 'gauge', labels: [], help: 'File descriptors the sessions of the process hold, as admission control charges them (1 or 2 per session, by listener); a session that would take it past open-file soft limit - admin.fd_reserve is refused (reason process_sessions).' },
  { name: 'l7mp_process_open_fds', type: 'gauge', labels: [], help: 'Open file descriptors of the process.' },
  { name: 'l7mp_process_max_fds', type: 'gauge', labels: [], help: 'The soft open-file limit (RLIMIT_NOFILE) of the process.' },
  { name: 'l7mp_process_draining', type: 'gauge', labels: [], help: '1 from the start of a drain on (SIGTERM, POST /api/v1/admin {"drain": ...}, the fleet drain command): listeners take no new sessions; else 0.' },
]);

const byName = new Map(FAMILIES.map((f) => [f.name, f]));

/**
 * Listener events that are drops (reported as a drop reason instead of an event): the ones each
 * protocol declares as drops (HTTP 413 `body_too_large`, 431 `header_too_large`, `malformed`...;
 * connections a deadline closed, `header_timeout` and the like, are events), and sessions refused
 * by admission control (actors/admission.ts).
 */
const DROP_EVENTS: ReadonlySet<string> = new Set([...dropReasons('listener'), ...ADMISSION_REASONS]);

/** Cluster events that are drops (reported as a drop reason instead of an event): each protocol declares its own. */
const CLUSTER_DROP_EVENTS: ReadonlySet<string> = dropReasons('cluster');

/** One value of a family, with all its labels (including ones the family sums away). */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

function isCounter(s: Sample): boolean {
  return byName.get(s.name)?.type === 'counter';
}

/**
 * Datagrams whose send the kernel refused, as drop reasons by errno (`emsgsize`, `enobufs`,
 * `econnrefused`, `send_error`); a reason with no drop yet is left out.
 */
function addSendDrops(add: (name: string, labels: Record<string, string>, value: number) => void, name: string, lab: Record<string, string>, t: WorkerMetrics['listeners'][number]['traffic']): void {
  if (t.dropEmsgsize > 0) add(name, { ...lab, reason: 'emsgsize' }, t.dropEmsgsize);
  if (t.dropEnobufs > 0) add(name, { ...lab, reason: 'enobufs' }, t.dropEnobufs);
  if (t.dropEconnrefused > 0) add(name, { ...lab, reason: 'econnrefused' }, t.dropEconnrefused);
  if (t.dropSendError > 0) add(name, { ...lab, reason: 'send_error' }, t.dropSendError);
}

/** The samples of one worker's answer; every sample has a `worker` label. */
export function workerSamples(w: WorkerMetrics): Sample[] {
  const worker = String(w.slot);
  const out: Sample[] = [];
  const add = (name: string, labels: Record<string, string>, value: number): void => {
    out.push({ name, labels, value });
  };
  for (const l of w.listeners) {
    const lab = { listenerName: l.name, protocol: l.protocol, worker };
    const t = l.traffic;
    add('listener_requests_total', lab, l.sessions);
    add('l7mp_listener_sessions_total', lab, l.sessions);
    add('l7mp_listener_sessions_active', lab, l.active);
    for (const [reason, n] of Object.entries(l.ended)) add('l7mp_listener_sessions_ended_total', { ...lab, reason }, n);
    add('l7mp_listener_rx_packets_total', lab, t.rxPackets);
    add('l7mp_listener_tx_packets_total', lab, t.txPackets);
    add('l7mp_listener_rx_bytes_total', lab, t.rxBytes);
    add('l7mp_listener_tx_bytes_total', lab, t.txBytes);
    add('l7mp_listener_dropped_packets_total', { ...lab, reason: 'connection' }, t.drops);
    add('l7mp_listener_dropped_packets_total', { ...lab, reason: 'setup' }, t.setupDrops);
    addSendDrops(add, 'l7mp_listener_dropped_packets_total', lab, t);
    for (const [event, n] of Object.entries(l.events)) {
      if (DROP_EVENTS.has(event)) add('l7mp_listener_dropped_packets_total', { ...lab, reason: event }, n);
      else add('l7mp_listener_events_total', { ...lab, event }, n);
    }
  }
  for (const c of w.clusters) {
    const lab = { clusterName: c.name, protocol: c.protocol, worker };
    const t = c.traffic;
    add('cluster_requests_total', lab, c.requests);
    add('l7mp_cluster_connections_total', lab, c.connections);
    add('l7mp_cluster_connections_active', lab, c.active);
    add('l7mp_cluster_connect_attempts_total', lab, c.attempts);
    add('l7mp_cluster_connect_retries_total', lab, c.retries);
    add('l7mp_cluster_connect_failures_total', lab, c.failures);
    add('l7mp_cluster_rx_packets_total', lab, t.rxPackets);
    add('l7mp_cluster_tx_packets_total', lab, t.txPackets);
    add('l7mp_cluster_rx_bytes_total', lab, t.rxBytes);
    add('l7mp_cluster_tx_bytes_total', lab, t.txBytes);
    add('l7mp_cluster_dropped_packets_total', { ...lab, reason: 'connection' }, t.drops);
    add('l7mp_cluster_dropped_packets_total', { ...lab, reason: 'setup' }, t.setupDrops);
    addSendDrops(add, 'l7mp_cluster_dropped_packets_total', lab, t);
    for (const [event, n] of Object.entries(c.events ?? {})) {
      if (CLUSTER_DROP_EVENTS.has(event)) add('l7mp_cluster_dropped_packets_total', { ...lab, reason: event }, n);
      else add('l7mp_cluster_events_total', { ...lab, event }, n);
    }
  }
  for (const s of w.sessionStages ?? []) {
    add('session_byte_counter_total', { sessionName: s.session, clusterName: s.cluster }, s.bytes);
    add('session_packet_counter_total', { sessionName: s.session, clusterName: s.cluster }, s.packets);
  }
  for (const e of w.endpoints ?? []) {
    const el = { clusterName: e.cluster, endpoint: e.endpoint, worker };
    add('l7mp_endpoint_health', el, e.healthy ? 1 : 0);
    add('l7mp_endpoint_ejections_total', el, e.ejections);
    add('l7mp_endpoint_connect_failures_total', el, e.failures);
  }
  const lab = { worker };
  add('l7mp_worker_sessions_active', lab, w.sessionsActive);
  add('l7mp_worker_mailbox_messages', lab, w.mailbox);
  add('l7mp_worker_actors', lab, w.actors);
  add('l7mp_worker_dropped_packets_total', { worker, reason: 'handoff' }, w.handoffsDropped);
  add('l7mp_worker_access_log_dropped_lines_total', lab, w.accessLogDropped);
  if (w.heap !== undefined) {
    add('l7mp_worker_heap_bytes', { worker, kind: 'total' }, w.heap.total);
    add('l7mp_worker_heap_bytes', { worker, kind: 'used' }, w.heap.used);
    add('l7mp_worker_heap_bytes', { worker, kind: 'external' }, w.heap.external);
  }
  if (w.overload !== undefined) add('l7mp_worker_overload_lag_ms', lab, w.overload.lagMs);
  if (w.reclaims !== undefined) add('l7mp_worker_heap_reclaims_total', lab, w.reclaims);
  return out;
}

function key(s: Sample): string {
  return `${s.name}${JSON.stringify(Object.entries(s.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))}`;
}

/** Add `samples` into `into` (same name and labels: values summed). */
function merge(into: Map<string, Sample>, samples: Iterable<Sample>): void {
  for (const s of samples) {
    const k = key(s);
    const prev = into.get(k);
    into.set(k, prev === undefined ? s : { name: s.name, labels: s.labels, value: prev.value + s.value });
  }
}

/**
 * Per-slot memory across scrapes: the last answer of each slot, and the counters of the workers
 * that slot had before (replaced after they died). See the module comment.
 */
export class WorkerSeries {
  private readonly slots = new Map<number, { last: WorkerMetrics | null; retired: Map<string, Sample> }>();

  /** This scrape's samples from the runtime's answer. */
  update(rm: RuntimeMetrics): Sample[] {
    const fresh = new Set<number>();
    for (const { slot, metrics } of rm.slots) {
      let st = this.slots.get(slot);
      if (st === undefined) {
        st = { last: null, retired: new Map() };
        this.slots.set(slot, st);
      }
      if (metrics === null) continue;
      if (st.last !== null && st.last.threadId !== metrics.threadId) merge(st.retired, workerSamples(st.last).filter(isCounter));
      st.last = metrics;
      fresh.add(slot);
    }
    const all = new Map<string, Sample>();
    for (const [slot, st] of this.slots) {
      const up = fresh.has(slot);
      merge(all, st.retired.values());
      if (st.last !== null) merge(all, up ? workerSamples(st.last) : workerSamples(st.last).filter(isCounter));
      merge(all, [{ name: 'l7mp_worker_up', labels: { worker: String(slot) }, value: up ? 1 : 0 }]);
    }
    for (const [slot, n] of Object.entries(rm.restarts)) merge(all, [{ name: 'l7mp_worker_restarts_total', labels: { worker: slot }, value: n }]);
    if (rm.recovery !== undefined) {
      merge(all, [{ name: 'l7mp_sessions_recovered_total', labels: {}, value: rm.recovery.recovered }]);
      for (const reason of ['worker_exit', 'rebuild_failed']) merge(all, [{ name: 'l7mp_sessions_lost_total', labels: { reason }, value: rm.recovery.lost[reason] ?? 0 }]);
    }
    const p = rm.process;
    if (p !== undefined) {
      merge(all, [
        { name: 'l7mp_process_sessions', labels: {}, value: p.sessions },
        { name: 'l7mp_process_session_limit', labels: {}, value: p.sessionLimit },
        { name: 'l7mp_process_session_fds', labels: {}, value: p.sessionFds },
        ...(p.openFds >= 0 ? [{ name: 'l7mp_process_open_fds', labels: {}, value: p.openFds }] : []),
        ...(p.maxFds >= 0 && Number.isFinite(p.maxFds) ? [{ name: 'l7mp_process_max_fds', labels: {}, value: p.maxFds }] : []),
        ...(p.draining !== undefined ? [{ name: 'l7mp_process_draining', labels: {}, value: p.draining }] : []),
      ]);
    }
    for (const h of rm.healthChecks ?? []) {
      const lab = { clusterName: h.cluster, endpoint: h.endpoint };
      merge(all, [
        { name: 'l7mp_endpoint_health_checks_total', labels: { ...lab, result: 'success' }, value: h.passed },
        { name: 'l7mp_endpoint_health_checks_total', labels: { ...lab, result: 'failure' }, value: h.failed },
      ]);
    }
    return [...all.values()];
  }
}

/** What the metrics need of the runtime. */
export type MetricsSource = Pick<Runtime, 'metrics'>;

/** The metrics of one runtime: a registry of its own (not prom-client's global one). */
export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly source: MetricsSource;
  private readonly series = new WorkerSeries();
  private readonly metrics = new Map<string, Counter | Gauge>();
  private pending: Promise<string> | null = null;

  constructor(source: MetricsSource) {
    this.source = source;
    for (const f of FAMILIES) {
      const cfg = { name: f.name, help: f.help, labelNames: [...f.labels], registers: [this.registry] };
      this.metrics.set(f.name, f.type === 'counter' ? new Counter(cfg) : new Gauge(cfg));
    }
  }

  /** The exposition's content type. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Ask every live worker for its counters, aggregate, and set every family. */
  async collect(): Promise<void> {
    const samples = this.series.update(await this.source.metrics());
    for (const m of this.metrics.values()) m.reset();
    for (const s of samples) {
      const f = byName.get(s.name);
      const m = this.metrics.get(s.name);
      if (f === undefined || m === undefined) continue;
      const labels: Record<string, string> = {};
      for (const l of f.labels) labels[l] = s.labels[l] ?? '';
      m.inc(labels, s.value);
    }
  }

  /** Collect and render the text exposition. Concurrent scrapes share one collection. */
  scrape(): Promise<string> {
    this.pending ??= (async () => {
      try {
        await this.collect();
        return await this.registry.metrics();
      } finally {
        this.pending = null;
      }
    })();
    return this.pending;
  }
}

/** `GET /metrics` on the admin server. */
export function registerMetrics(server: AdminServer, runtime: MetricsSource): void {
  const m = new ProxyMetrics(runtime);
  server.route('GET', '/metrics', async () => ({ headers: { 'content-type': m.contentType }, body: await m.scrape() }));
}
