/**
 * `GET /metrics` and the access log over real sockets: traffic through two workers, counted
 * exactly, while the sessions live and after they end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { WebSocket } from 'ws';
import { freePort, freeTcpPort, startProxy, tmpDir, udpEcho, UdpClient, waitFor, wsClient, wsEcho, wsRecv } from '../helpers.ts';
import { startAdmin } from '../../runtime/main/admin/index.ts';
import { FAMILIES } from '../../runtime/main/admin/metrics.ts';
import { makeLogger } from '../../common/log.ts';
import type { ActorNode } from '../../actors/tree.ts';

const log = makeLogger('silent');

/** Samples of a Prometheus text exposition: `name{a="x",...} value`. */
function parse(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m !== null, `unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of a metric's samples whose labels include `match`. */
function sum(text: string, name: string, match: Record<string, string> = {}): number {
  return parse(text)
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return res.text();
}

function sessionIds(tree: ActorNode, listener: string): string[] {
  const out: string[] = [];
  const walk = (n: ActorNode): void => {
    if (n.kind === 'session' && n.listener === listener) out.push(n.id);
    n.children.forEach(walk);
  };
  walk(tree);
  return out;
}

test('metrics: UDP and WebSocket traffic through 2 workers is counted exactly, live and after the sessions end; access log lines match', { timeout: 90_000 }, async () => {
  const dir = tmpDir();
  const accessLog = path.join(dir, 'access.log');
  const uecho = await udpEcho('u:');
  const wecho = await wsEcho('w:');
  const udpPort = await freePort();
  const wsPort = await freeTcpPort();
  const doc = {
    admin: { access_log_path: accessLog },
    listeners: [
      { name: 'udp-gw', spec: { protocol: 'UDP', port: udpPort, address: '127.0.0.1', options: { idle_timeout: 4 } }, rules: [{ action: { route: { destination: 'udp-up' } } }] },
      { name: 'ws-gw', spec: { protocol: 'WebSocket', port: wsPort, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'ws-up' } } }] },
    ],
    clusters: [
      { name: 'udp-up', spec: { protocol: 'UDP', port: uecho.port }, endpoints: [{ name: 'ue', spec: { address: '127.0.0.1' } }] },
      { name: 'ws-up', spec: { protocol: 'WebSocket', port: wecho.port }, endpoints: [{ name: 'we', spec: { address: '127.0.0.1' } }] },
    ],
  };
  const rt = await startProxy(doc, 2);
  const admin = await startAdmin(rt, { host: '127.0.0.1', port: 0, log });
  const udp: UdpClient[] = [];
  const ws: WebSocket[] = [];
  try {
    // 10 UDP clients × 5 datagrams, 4 WebSocket clients × 5 messages; each waits for its echo (no resends).
    const UDP_CLIENTS = 10;
    const WS_CLIENTS = 4;
    const N = 5;
    for (let i = 0; i < UDP_CLIENTS; i++) udp.push(await UdpClient.open());
    for (let i = 0; i < WS_CLIENTS; i++) ws.push(await wsClient(`ws://127.0.0.1:${wsPort}/`));
    let udpBytes = 0;
    let wsBytes = 0;
    await Promise.all([
      ...udp.map(async (c, i) => {
        for (let k = 0; k < N; k++) {
          const m = `udp-${i}-${k}`;
          udpBytes += m.length;
          c.send(m, udpPort);
          assert.equal((await c.recv(10_000)).toString(), `u:${m}`);
        }
      }),
      ...ws.map(async (c, i) => {
        for (let k = 0; k < N; k++) {
          const m = `ws-${i}-${k}`;
          wsBytes += m.length;
          const reply = wsRecv(c, 10_000);
          c.send(m);
          assert.equal((await reply).toString(), `w:${m}`);
        }
      }),
    ]);
    const udpPkts = UDP_CLIENTS * N;
    const wsPkts = WS_CLIENTS * N;
    const exact = (text: string): void => {
      for (const [l, c, pkts, bytes, prefix] of [
        ['udp-gw', 'udp-up', udpPkts, udpBytes, 2],
        ['ws-gw', 'ws-up', wsPkts, wsBytes, 2],
      ] as const) {
        assert.equal(sum(text, 'l7mp_listener_rx_packets_total', { listenerName: l }), pkts, `${l} rx packets`);
        assert.equal(sum(text, 'l7mp_listener_tx_packets_total', { listenerName: l }), pkts, `${l} tx packets`);
        assert.equal(sum(text, 'l7mp_cluster_tx_packets_total', { clusterName: c }), pkts, `${c} tx packets`);
        assert.equal(sum(text, 'l7mp_cluster_rx_packets_total', { clusterName: c }), pkts, `${c} rx packets`);
        assert.equal(sum(text, 'l7mp_listener_rx_bytes_total', { listenerName: l }), bytes, `${l} rx bytes`);
        assert.equal(sum(text, 'l7mp_cluster_tx_bytes_total', { clusterName: c }), bytes, `${c} tx bytes`);
        assert.equal(sum(text, 'l7mp_cluster_rx_bytes_total', { clusterName: c }), bytes + pkts * prefix, `${c} rx bytes`);
        assert.equal(sum(text, 'l7mp_listener_tx_bytes_total', { listenerName: l }), bytes + pkts * prefix, `${l} tx bytes`);
        assert.equal(sum(text, 'l7mp_listener_dropped_packets_total', { listenerName: l }), 0, `${l} drops`);
      }
      assert.equal(sum(text, 'listener_requests_total', { listenerName: 'udp-gw', protocol: 'UDP' }), UDP_CLIENTS);
      assert.equal(sum(text, 'listener_requests_total', { listenerName: 'ws-gw', protocol: 'WebSocket' }), WS_CLIENTS);
      assert.equal(sum(text, 'cluster_requests_total', { clusterName: 'udp-up', protocol: 'UDP' }), UDP_CLIENTS);
      assert.equal(sum(text, 'cluster_requests_total', { clusterName: 'ws-up', protocol: 'WebSocket' }), WS_CLIENTS);
      assert.equal(sum(text, 'l7mp_listener_sessions_total', { listenerName: 'udp-gw' }), UDP_CLIENTS);
      assert.equal(sum(text, 'l7mp_cluster_connections_total', { clusterName: 'ws-up' }), WS_CLIENTS);
      assert.equal(sum(text, 'l7mp_cluster_connect_retries_total'), 0);
    };

    // Live sessions: counted from their connections at scrape time.
    const live = await scrape(admin.port);
    if (process.env.L7_SHOW_METRICS) process.stderr.write(live);
    exact(live);
    // Every session is alive (idle timeout 4 s): these counts come from live connections only.
    assert.equal(sum(live, 'l7mp_listener_sessions_active', { listenerName: 'udp-gw' }), UDP_CLIENTS);
    assert.equal(sum(live, 'l7mp_listener_sessions_active', { listenerName: 'ws-gw' }), WS_CLIENTS);
    assert.equal(sum(live, 'l7mp_listener_sessions_ended_total'), 0);
    assert.equal(sum(live, 'l7mp_cluster_connections_active', { clusterName: 'ws-up' }), WS_CLIENTS);
    assert.equal(sum(live, 'l7mp_worker_up', { worker: '0' }) + sum(live, 'l7mp_worker_up', { worker: '1' }), 2);
    // Every family is declared, and l7mp's names carry l7mp's labels only.
    for (const f of FAMILIES) assert.match(live, new RegExp(`^# TYPE ${f.name} ${f.type}$`, 'm'), f.name);
    assert.match(live, /^listener_requests_total\{listenerName="udp-gw",protocol="UDP"\} 10$/m);
    assert.match(live, /^cluster_requests_total\{clusterName="ws-up",protocol="WebSocket"\} 4$/m);
    assert.doesNotMatch(live, /sessionName=|UDP:127/, 'no per-session labels');

    // End the sessions: UDP by idle timeout, one WebSocket session by the actor API, the rest by closing.
    const [victim] = sessionIds(await rt.tree(), 'ws-gw');
    assert.equal(await rt.stopActor(victim as string), 'ok');
    for (const c of ws) c.close();
    const ended = (await waitFor(
      async () => {
        const t = await scrape(admin.port);
        return sum(t, 'l7mp_worker_sessions_active') === 0 ? t : null;
      },
      30_000,
      'every session to end',
    )) as string;
    exact(ended);
    assert.equal(sum(ended, 'l7mp_listener_sessions_active'), 0);
    assert.equal(sum(ended, 'l7mp_cluster_connections_active'), 0);
    assert.equal(sum(ended, 'l7mp_listener_sessions_ended_total', { listenerName: 'udp-gw', reason: 'L7_ERR_SESSION_IDLE' }), UDP_CLIENTS);
    assert.equal(sum(ended, 'l7mp_listener_sessions_ended_total', { listenerName: 'ws-gw' }), WS_CLIENTS);
    assert.equal(sum(ended, 'l7mp_listener_sessions_ended_total', { listenerName: 'ws-gw', reason: 'L7_ERR_SESSION_STOPPED' }), 1);

    // One access log line per session, whole lines, from both workers.
    const lines = (await waitFor(
      () => {
        const l = fs.existsSync(accessLog) ? fs.readFileSync(accessLog, 'utf8').split('\n').filter((x) => x !== '') : [];
        return l.length >= UDP_CLIENTS + WS_CLIENTS ? l : null;
      },
      10_000,
      'access log lines',
    )) as string[];
    assert.equal(lines.length, UDP_CLIENTS + WS_CLIENTS);
    const recs = lines.map((l) => JSON.parse(l) as Record<string, any>);
    for (const r of recs) {
      const isUdp = r.listener === 'udp-gw';
      assert.equal(r.rx_packets, N);
      assert.equal(r.tx_packets, N);
      assert.equal(r.tx_bytes, r.rx_bytes + 2 * N);
      assert.equal(r.drops, 0);
      assert.equal(typeof r.duration_ms, 'number');
      assert.equal(typeof r.time, 'string');
      assert.match(r.session, isUdp ? /^UDP:127\.0\.0\.1:\d+-/ : /^WS:/);
      assert.equal(r.stages.length, 1);
      const st = r.stages[0];
      assert.deepEqual([st.role, st.cluster, st.endpoint, st.address], ['destination', isUdp ? 'udp-up' : 'ws-up', isUdp ? 'ue' : 'we', '127.0.0.1']);
      assert.equal(st.remote, isUdp ? `127.0.0.1:${uecho.port}` : `ws://127.0.0.1:${wecho.port}/`);
      assert.deepEqual([st.tx_packets, st.rx_packets, st.tx_bytes, st.rx_bytes, st.drops], [N, N, r.rx_bytes, r.tx_bytes, 0]);
    }
    const udpRecs = recs.filter((r) => r.listener === 'udp-gw');
    assert.equal(udpRecs.length, UDP_CLIENTS);
    assert.ok(udpRecs.every((r) => r.reason === 'L7_ERR_SESSION_IDLE'));
    assert.equal(udpRecs.reduce((a, r) => a + r.rx_bytes, 0), udpBytes);
    assert.equal(recs.filter((r) => r.listener === 'ws-gw').reduce((a, r) => a + r.rx_bytes, 0), wsBytes);
    assert.deepEqual(new Set(recs.map((r) => r.worker)), new Set([0, 1]), 'both workers wrote lines');
  } finally {
    udp.forEach((c) => c.close());
    ws.forEach((c) => c.terminate());
    await admin.close();
    await rt.shutdown();
    await uecho.close();
    await wecho.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('metrics: connect retries and failures per cluster; the held datagram of a session that never connected is a setup drop', { timeout: 60_000 }, async () => {
  const deadPort = await freeTcpPort();
  const udpPort = await freePort();
  const doc = {
    listeners: [
      {
        name: 'gw',
        spec: { protocol: 'UDP', port: udpPort, address: '127.0.0.1' },
        rules: [{ action: { route: { destination: 'dead', retry: { retry_on: 'connect-failure', num_retries: 2, timeout: 200 } } } }],
      },
    ],
    clusters: [{ name: 'dead', spec: { protocol: 'WebSocket', port: deadPort }, endpoints: [{ spec: { address: '127.0.0.1' } }] }],
  };
  const rt = await startProxy(doc, 1);
  const admin = await startAdmin(rt, { host: '127.0.0.1', port: 0, log });
  const c = await UdpClient.open();
  try {
    c.send('hello', udpPort);
    const text = (await waitFor(
      async () => {
        const t = await scrape(admin.port);
        return sum(t, 'l7mp_listener_sessions_ended_total', { listenerName: 'gw' }) === 1 ? t : null;
      },
      20_000,
      'the session to fail',
    )) as string;
    assert.equal(sum(text, 'l7mp_listener_sessions_ended_total', { listenerName: 'gw', reason: 'L7_ERR_UPSTREAM_CONNECT' }), 1);
    assert.equal(sum(text, 'l7mp_cluster_connect_attempts_total', { clusterName: 'dead', protocol: 'WebSocket' }), 3);
    assert.equal(sum(text, 'l7mp_cluster_connect_retries_total', { clusterName: 'dead' }), 2);
    assert.equal(sum(text, 'l7mp_cluster_connect_failures_total', { clusterName: 'dead' }), 3);
    assert.equal(sum(text, 'l7mp_cluster_connections_total', { clusterName: 'dead' }), 0);
    assert.equal(sum(text, 'cluster_requests_total', { clusterName: 'dead' }), 0);
    assert.equal(sum(text, 'listener_requests_total', { listenerName: 'gw' }), 1);
    assert.equal(sum(text, 'l7mp_listener_rx_packets_total', { listenerName: 'gw' }), 1);
    assert.equal(sum(text, 'l7mp_listener_dropped_packets_total', { listenerName: 'gw', reason: 'setup' }), 1);
  } finally {
    c.close();
    await admin.close();
    await rt.shutdown();
  }
});

test('metrics: a killed worker is counted in l7mp_worker_restarts_total and counters do not go back', { timeout: 60_000 }, async () => {
  const echo = await udpEcho('e:');
  const udpPort = await freePort();
  const doc = {
    listeners: [{ name: 'gw', spec: { protocol: 'UDP', port: udpPort, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'up' } } }] }],
    clusters: [{ name: 'up', spec: { protocol: 'UDP', port: echo.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] }],
  };
  const rt = await startProxy(doc, 2);
  const admin = await startAdmin(rt, { host: '127.0.0.1', port: 0, log });
  const clients: UdpClient[] = [];
  try {
    for (let i = 0; i < 8; i++) clients.push(await UdpClient.open());
    await Promise.all(clients.map((c, i) => c.request(`m${i}`, udpPort, '127.0.0.1', 5000, 1)));
    const before = await scrape(admin.port);
    const reqs = sum(before, 'listener_requests_total', { listenerName: 'gw' });
    const rx = sum(before, 'l7mp_listener_rx_packets_total', { listenerName: 'gw' });
    assert.equal(reqs, 8);
    assert.equal(rx, 8);
    const ready = new Promise<void>((resolve) => rt.once('workerReady', () => resolve()));
    await rt.thread(0)?.terminate();
    await ready;
    const after = (await waitFor(
      async () => {
        const t = await scrape(admin.port);
        return sum(t, 'l7mp_worker_up') === 2 ? t : null;
      },
      20_000,
      'both workers to answer',
    )) as string;
    assert.equal(sum(after, 'l7mp_worker_restarts_total', { worker: '0' }), 1);
    assert.equal(sum(after, 'l7mp_worker_restarts_total', { worker: '1' }), 0);
    assert.equal(sum(after, 'listener_requests_total', { listenerName: 'gw' }), reqs);
    assert.equal(sum(after, 'l7mp_listener_rx_packets_total', { listenerName: 'gw' }), rx);
  } finally {
    clients.forEach((c) => c.close());
    await admin.close();
    await rt.shutdown();
    await echo.close();
  }
});
