import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { TrafficTally, type WorkerMetrics } from '../../runtime/worker/stats.ts';
import { FAMILIES, ProxyMetrics, WorkerSeries, workerSamples, type Sample } from '../../runtime/main/admin/metrics.ts';
import type { RuntimeMetrics } from '../../runtime/worker/stats.ts';
import { ListenerCounters } from '../../actors/listener.ts';
import { ClusterCounters } from '../../actors/cluster.ts';
import type { SessionRecord, StageRecord } from '../../actors/record.ts';

function stage(cluster: string, n: number, extra: Partial<StageRecord> = {}): StageRecord {
  return { role: 'destination', cluster, endpoint: 'e', address: '127.0.0.1', remote: '127.0.0.1:1', connected: true, rxPackets: n, rxBytes: 10 * n, txPackets: n, txBytes: 10 * n, drops: 0, setupDrops: 0, dropEmsgsize: 0, dropEnobufs: 0, dropEconnrefused: 0, dropSendError: 0, ...extra };
}

function rec(listener: string, n: number, stages: StageRecord[], extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    name: `s-${listener}-${n}`,
    listener,
    route: 'r',
    status: 'CONNECTED',
    reason: 'active',
    durationMs: 1,
    remote: '127.0.0.1:2',
    rxPackets: n,
    rxBytes: 10 * n,
    txPackets: n,
    txBytes: 12 * n,
    drops: 0,
    setupDrops: 0, dropEmsgsize: 0, dropEnobufs: 0, dropEconnrefused: 0, dropSendError: 0,
    stages,
    ...extra,
  };
}

test('TrafficTally: ended totals plus live sessions, by listener and cluster; end reasons; counters and protocols from the actors', () => {
  const t = new TrafficTally();
  const lc = new ListenerCounters();
  lc.protocol = 'UDP';
  lc.sessions = 3;
  lc.count('filtered', 2);
  const cc = new ClusterCounters('UDP');
  cc.requests = 3;
  cc.retries = 1;
  const listeners = new Map([['l', lc]]);
  const clusters = new Map([['c', cc]]);
  t.ended(rec('l', 5, [stage('c', 5, { connected: false })], { status: 'DESTROYED', reason: 'L7_ERR_SESSION_IDLE' }));
  t.ended(rec('l', 1, [stage('c', 0, { setupDrops: 1 })], { status: 'DESTROYED', reason: 'normal', setupDrops: 1 }));
  // A stage that never carried anything through an unknown cluster leaves no series behind.
  t.ended(rec('l', 0, [stage('ghost', 0)], { status: 'DESTROYED', reason: 'normal' }));
  const m = t.collect(listeners, clusters, [rec('l', 2, [stage('c', 2), stage('c', 4, { connected: false })])]);
  assert.deepEqual(m.listeners, [
    {
      name: 'l',
      protocol: 'UDP',
      sessions: 3,
      active: 1,
      traffic: { rxPackets: 8, rxBytes: 80, txPackets: 8, txBytes: 96, drops: 0, setupDrops: 1, dropEmsgsize: 0, dropEnobufs: 0, dropEconnrefused: 0, dropSendError: 0 },
      ended: { L7_ERR_SESSION_IDLE: 1, normal: 2 },
      events: { filtered: 2 },
    },
  ]);
  assert.deepEqual(m.clusters, [
    {
      name: 'c',
      protocol: 'UDP',
      requests: 3,
      connections: 0,
      attempts: 0,
      retries: 1,
      failures: 0,
      active: 1,
      traffic: { rxPackets: 11, rxBytes: 110, txPackets: 11, txBytes: 110, drops: 0, setupDrops: 1, dropEmsgsize: 0, dropEnobufs: 0, dropEconnrefused: 0, dropSendError: 0 },
      events: {},
    },
  ]);
  // Collecting does not change the ended totals.
  assert.equal(t.collect(listeners, clusters, []).listeners[0]?.traffic.rxPackets, 6);
});

function worker(slot: number, threadId: number, rx: number, active = 1): WorkerMetrics {
  const traffic = { rxPackets: rx, rxBytes: rx * 10, txPackets: rx, txBytes: rx * 10, drops: 0, setupDrops: 0, dropEmsgsize: 0, dropEnobufs: 0, dropEconnrefused: 0, dropSendError: 0 };
  return {
    slot,
    threadId,
    mailbox: 2,
    actors: 4,
    sessionsActive: active,
    handoffsIn: 0,
    handoffsOut: 0,
    handoffsDropped: 1,
    accessLogDropped: 0,
    listeners: [{ name: 'gw', protocol: 'UDP', sessions: rx, active, traffic, ended: { normal: 1 }, events: { filtered: 3, handoff_in: 1 } }],
    clusters: [{ name: 'up', protocol: 'UDP', requests: rx, connections: rx, attempts: rx, retries: 0, failures: 0, active, traffic, events: { sync_forwarded: 2, transform_error: 4 } }],
  };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const s = samples.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s.length === 0 ? undefined : s.reduce((a, x) => a + x.value, 0);
}

test('workerSamples: every sample names a declared family and carries the worker label; drop events become drop reasons', () => {
  const s = workerSamples(worker(1, 7, 5));
  const names = new Set(FAMILIES.map((f) => f.name));
  for (const x of s) {
    assert.ok(names.has(x.name), x.name);
    assert.equal(x.labels.worker, '1');
  }
  assert.equal(value(s, 'l7mp_listener_dropped_packets_total', { reason: 'filtered' }), 3);
  assert.equal(value(s, 'l7mp_listener_events_total', { event: 'handoff_in' }), 1);
  assert.equal(value(s, 'l7mp_listener_events_total', { event: 'filtered' }), undefined);
  assert.equal(value(s, 'l7mp_worker_dropped_packets_total', { reason: 'handoff' }), 1);
  assert.equal(value(s, 'l7mp_cluster_events_total', { event: 'sync_forwarded' }), 2);
  assert.equal(value(s, 'l7mp_cluster_dropped_packets_total', { reason: 'transform_error' }), 4);
  assert.equal(value(s, 'l7mp_cluster_events_total', { event: 'transform_error' }), undefined);
});

test('workerSamples: refused sends are drop reasons by errno (listener and cluster); size limits are drops, deadlines are events', () => {
  const w = worker(0, 1, 5);
  const lt = { ...w.listeners[0]!.traffic, dropEmsgsize: 2, dropEconnrefused: 1 };
  const ct = { ...w.clusters[0]!.traffic, dropEnobufs: 3, dropSendError: 4 };
  w.listeners[0] = { ...w.listeners[0]!, traffic: lt, events: { body_too_large: 5, header_too_large: 6, header_timeout: 7, handshake_timeout: 8 } };
  w.clusters[0] = { ...w.clusters[0]!, traffic: ct };
  const s = workerSamples(w);
  assert.equal(value(s, 'l7mp_listener_dropped_packets_total', { reason: 'emsgsize' }), 2);
  assert.equal(value(s, 'l7mp_listener_dropped_packets_total', { reason: 'econnrefused' }), 1);
  assert.equal(value(s, 'l7mp_listener_dropped_packets_total', { reason: 'enobufs' }), undefined, 'a reason with no drop is left out');
  assert.equal(value(s, 'l7mp_cluster_dropped_packets_total', { reason: 'enobufs' }), 3);
  assert.equal(value(s, 'l7mp_cluster_dropped_packets_total', { reason: 'send_error' }), 4);
  assert.equal(value(s, 'l7mp_listener_tx_packets_total'), 5, 'refused sends are not tx');
  assert.equal(value(s, 'l7mp_listener_dropped_packets_total', { reason: 'body_too_large' }), 5);
  assert.equal(value(s, 'l7mp_listener_dropped_packets_total', { reason: 'header_too_large' }), 6);
  assert.equal(value(s, 'l7mp_listener_events_total', { event: 'header_timeout' }), 7);
  assert.equal(value(s, 'l7mp_listener_events_total', { event: 'handshake_timeout' }), 8);
});

test('WorkerSeries: a worker that does not answer keeps its counters (not its gauges); a replacement adds to its slot; restarts per slot', () => {
  const ws = new WorkerSeries();
  const rm = (slots: RuntimeMetrics['slots'], restarts: Record<number, number> = {}): RuntimeMetrics => ({ workers: 2, slots, restarts });
  let s = ws.update(rm([{ slot: 0, metrics: worker(0, 10, 5) }, { slot: 1, metrics: worker(1, 11, 7) }]));
  assert.equal(value(s, 'l7mp_listener_rx_packets_total'), 12);
  assert.equal(value(s, 'listener_requests_total'), 12);
  assert.equal(value(s, 'l7mp_worker_up'), 2);
  // Worker 0 died: its last counters stay, its gauges go, it is down.
  s = ws.update(rm([{ slot: 0, metrics: null }, { slot: 1, metrics: worker(1, 11, 8) }], { 0: 1 }));
  assert.equal(value(s, 'l7mp_listener_rx_packets_total', { worker: '0' }), 5);
  assert.equal(value(s, 'l7mp_listener_sessions_active', { worker: '0' }), undefined);
  assert.equal(value(s, 'l7mp_worker_up', { worker: '0' }), 0);
  assert.equal(value(s, 'l7mp_worker_restarts_total', { worker: '0' }), 1);
  // Its replacement (another thread) starts from 0: the slot's counters go on from 5.
  s = ws.update(rm([{ slot: 0, metrics: worker(0, 12, 2) }, { slot: 1, metrics: worker(1, 11, 8) }], { 0: 1 }));
  assert.equal(value(s, 'l7mp_listener_rx_packets_total', { worker: '0' }), 7);
  assert.equal(value(s, 'l7mp_listener_sessions_active', { worker: '0' }), 1);
  assert.equal(value(s, 'listener_requests_total'), 15);
  assert.equal(value(s, 'l7mp_worker_up'), 2);
  // The same thread again is not a restart.
  s = ws.update(rm([{ slot: 0, metrics: worker(0, 12, 3) }, { slot: 1, metrics: worker(1, 11, 8) }], { 0: 1 }));
  assert.equal(value(s, 'l7mp_listener_rx_packets_total', { worker: '0' }), 8);
});

test('ProxyMetrics: text exposition sums l7mp families over workers and keeps ours per worker; concurrent scrapes share one collection', async () => {
  let calls = 0;
  const source = {
    async metrics(): Promise<RuntimeMetrics> {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
      return { workers: 2, slots: [{ slot: 0, metrics: worker(0, 1, 3) }, { slot: 1, metrics: worker(1, 2, 4) }], restarts: {} };
    },
  };
  const m = new ProxyMetrics(source);
  const [a, b] = await Promise.all([m.scrape(), m.scrape()]);
  assert.equal(a, b);
  assert.equal(calls, 1);
  assert.match(a, /^# TYPE listener_requests_total counter$/m);
  assert.match(a, /^listener_requests_total\{listenerName="gw",protocol="UDP"\} 7$/m);
  assert.match(a, /^cluster_requests_total\{clusterName="up",protocol="UDP"\} 7$/m);
  assert.match(a, /^l7mp_listener_rx_packets_total\{listenerName="gw",protocol="UDP",worker="0"\} 3$/m);
  assert.match(a, /^l7mp_listener_rx_packets_total\{listenerName="gw",protocol="UDP",worker="1"\} 4$/m);
  assert.match(a, /^l7mp_worker_mailbox_messages\{worker="1"\} 2$/m);
  assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
  // A second scrape resets and refills: values are not added up across scrapes.
  const c = await m.scrape();
  assert.equal(calls, 2);
  assert.match(c, /^listener_requests_total\{listenerName="gw",protocol="UDP"\} 7$/m);
});

test('examples/grafana-dashboard.json: valid dashboard JSON over declared metric families, with a Prometheus data source variable', () => {
  const d = JSON.parse(fs.readFileSync(new URL('../../examples/grafana-dashboard.json', import.meta.url), 'utf8')) as {
    uid: string;
    title: string;
    schemaVersion: number;
    panels: Array<{ id: number; type: string; datasource?: { type: string; uid: string }; targets?: Array<{ expr: string }> }>;
    templating: { list: Array<{ name: string; type: string; query: unknown }> };
  };
  assert.equal(typeof d.uid, 'string');
  assert.equal(typeof d.schemaVersion, 'number');
  const ds = d.templating.list.find((v) => v.type === 'datasource');
  assert.deepEqual([ds?.name, ds?.query], ['datasource', 'prometheus']);
  const declared = new Set(FAMILIES.map((f) => f.name));
  const ids = new Set<number>();
  let exprs = 0;
  for (const p of d.panels) {
    assert.ok(!ids.has(p.id), `panel id ${p.id} is unique`);
    ids.add(p.id);
    if (p.type === 'row') continue;
    assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' });
    for (const t of p.targets ?? []) {
      exprs++;
      for (const m of t.expr.matchAll(/\b(l7mp_[a-z_]+|listener_requests_total|cluster_requests_total)\b/g)) {
        // Regex alternatives inside {__name__=~"..."} are prefixes, not names.
        if (t.expr.includes(`(${m[1]}`) || m[1]?.endsWith('_')) continue;
        assert.ok(declared.has(m[1] as string), `${m[1]} is a declared family`);
      }
    }
  }
  assert.ok(exprs >= 15);
  for (const name of ['l7mp_listener_sessions_active', 'l7mp_listener_rx_packets_total', 'l7mp_listener_tx_packets_total', 'l7mp_worker_restarts_total', 'l7mp_worker_mailbox_messages', 'l7mp_listener_dropped_packets_total']) {
    assert.ok(d.panels.some((p) => p.targets?.some((t) => t.expr.includes(name))), `a panel shows ${name}`);
  }
});
