/**
 * Upstream health (issue 12 item 4): passive outlier detection and active health checks, over
 * real sockets on loopback. Two endpoints per cluster on one port, at 127.0.0.1 ("A:") and
 * 127.0.0.2 ("B:"); one of them is killed (UDP: its socket closed, so the kernel answers ICMP
 * port unreachable; TCP: its server closed, so connects are refused). New sessions must all
 * succeed, the dead endpoint must be ejected (counted) so that later sessions go to the live one
 * at once, and it must come back after the back-off. Waits are bounded waits on counters.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import type { Runtime } from '../../runtime/main/runtime.ts';
import { ProxyMetrics } from '../../runtime/main/admin/metrics.ts';
import type { EndpointHealthMetrics } from '../../routing/health.ts';
import { freePort, freeUdpPort, streamClient, udpEcho, waitFor } from '../helpers.ts';
import { closing, proxy, sessions, streamServer, udpClient } from './proto-helpers.ts';

type Echo = Awaited<ReturnType<typeof udpEcho>>;

/** Two UDP echo servers on one port at 127.0.0.1 ("A:") and 127.0.0.2 ("B:"). */
async function twoUdp(t: TestContext): Promise<{ port: number; a: Echo; b: Echo }> {
  for (let i = 0; i < 20; i++) {
    const port = await freeUdpPort('127.0.0.1');
    try {
      const a = await udpEcho('A:', '127.0.0.1', port);
      closing(t, a, (e) => e.close().catch(() => {}));
      const b = await udpEcho('B:', '127.0.0.2', port);
      closing(t, b, (e) => e.close().catch(() => {}));
      return { port, a, b };
    } catch {
      // taken on 127.0.0.2: try another port
    }
  }
  throw new Error('no UDP port free on both 127.0.0.1 and 127.0.0.2');
}

function udpDoc(lport: number, upPort: number, cluster: Record<string, unknown>, retry: Record<string, unknown>): Record<string, unknown> {
  return {
    clusters: [
      {
        name: 'pool',
        spec: { protocol: 'UDP', port: upPort },
        endpoints: [
          { name: 'a', spec: { address: '127.0.0.1' } },
          { name: 'b', spec: { address: '127.0.0.2' } },
        ],
        ...cluster,
      },
    ],
    listeners: [{ name: 'l', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'pool', retry } } }] }],
  };
}

/** One endpoint's health over every worker: healthy on all, ejections and failures summed. */
async function endpoint(rt: Runtime, name: string): Promise<{ healthy: boolean; ejections: number; failures: number }> {
  const m = await rt.metrics();
  const rows: EndpointHealthMetrics[] = [];
  for (const s of m.slots) for (const e of s.metrics?.endpoints ?? []) if (e.endpoint === name) rows.push(e);
  assert.ok(rows.length > 0, `no metrics for endpoint ${name}`);
  return { healthy: rows.every((r) => r.healthy), ejections: rows.reduce((a, r) => a + r.ejections, 0), failures: rows.reduce((a, r) => a + r.failures, 0) };
}

/** One request per new client (one datagram, no resend): the prefix of the endpoint that answered. */
async function oneShot(t: TestContext, lport: number, n: number, msg = 'q'): Promise<string[]> {
  const clients = await Promise.all(Array.from({ length: n }, () => udpClient(t)));
  return Promise.all(clients.map(async (c) => (await c.request(msg, lport, '127.0.0.1', 2000, 1)).toString()));
}

const RETRY = { retry_on: 'connect-failure', num_retries: 2, timeout: 1000 };

test('UDP Trivial, first endpoint dead: every new session is answered by the other; it is ejected, then skipped at the first attempt, and back after the back-off', async (t) => {
  const { port, a } = await twoUdp(t);
  const lport = await freePort();
  const rt = await proxy(t, udpDoc(lport, port, { loadbalancer: { policy: 'Trivial' }, outlier_detection: { consecutive_failures: 2, base_ejection_time: 2000 } }, RETRY));
  assert.deepEqual(await oneShot(t, lport, 2), ['A:q', 'A:q']);
  await a.close();
  // Sequentially, so that the ejection happens between two sessions.
  for (let i = 0; i < 3; i++) assert.deepEqual(await oneShot(t, lport, 1, `k${i}`), [`B:k${i}`]);
  const ejected = await endpoint(rt, 'a');
  assert.equal(ejected.healthy, false);
  assert.equal(ejected.ejections, 1);
  assert.equal(ejected.failures, 2);
  const text = await new ProxyMetrics(rt).scrape();
  assert.match(text, /^l7mp_endpoint_health\{clusterName="pool",endpoint="a",worker="0"\} 0$/m);
  assert.match(text, /^l7mp_endpoint_health\{clusterName="pool",endpoint="b",worker="0"\} 1$/m);
  assert.match(text, /^l7mp_endpoint_ejections_total\{clusterName="pool",endpoint="a",worker="0"\} 1$/m);
  assert.match(text, /^l7mp_endpoint_connect_failures_total\{clusterName="pool",endpoint="a",worker="0"\} 2$/m);
  // The actor tree shows it on the cluster.
  const tree = JSON.stringify(await rt.tree());
  assert.match(tree, /"a":\{"status":"ejected"/);
  // Ejected: the first attempt of new sessions goes to b, so a sees no more failures.
  assert.deepEqual(await oneShot(t, lport, 6), Array(6).fill('B:q'));
  assert.equal((await endpoint(rt, 'a')).failures, 2);
  // a comes back; after the back-off (2 s) new sessions go to it again.
  const back = await udpEcho('A:', '127.0.0.1', port);
  closing(t, back, (e) => e.close());
  await waitFor(async () => (await endpoint(rt, 'a')).healthy, 5000, 'endpoint a back after its ejection');
  assert.deepEqual(await oneShot(t, lport, 2, 'again'), ['A:again', 'A:again']);
});

test('UDP ConsistentHash, one endpoint dead: every new session is answered (the next endpoint on the ring), the dead one is ejected', async (t) => {
  const { port, b } = await twoUdp(t);
  const lport = await freePort();
  const rt = await proxy(t, udpDoc(lport, port, { loadbalancer: { policy: 'ConsistentHash' }, outlier_detection: { consecutive_failures: 2, base_ejection_time: 30000 } }, RETRY), 2);
  const before = await oneShot(t, lport, 20);
  assert.ok(before.includes('B:q') && before.includes('A:q'), before.join());
  await b.close();
  const after = await oneShot(t, lport, 20);
  assert.deepEqual(after, Array(20).fill('A:q'));
  const s = await endpoint(rt, 'b');
  assert.ok(s.failures >= 2, `failures ${s.failures}`);
  assert.ok(s.ejections >= 1, `ejections ${s.ejections}`);
  assert.equal((await endpoint(rt, 'a')).ejections, 0);
});

/** Two TCP echo servers on one port at 127.0.0.1 ("A:") and 127.0.0.2 ("B:"). */
async function twoTcp(t: TestContext): Promise<{ port: number; a: Awaited<ReturnType<typeof streamServer>>; b: Awaited<ReturnType<typeof streamServer>> }> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort();
    try {
      const a = await streamServer(t, { port, host: '127.0.0.1' }, 'A:');
      const b = await streamServer(t, { port, host: '127.0.0.2' }, 'B:');
      return { port, a, b };
    } catch {
      // taken: try another
    }
  }
  throw new Error('no TCP port free on both 127.0.0.1 and 127.0.0.2');
}

function tcpDoc(lport: number, upPort: number, policy: string, failures: number): Record<string, unknown> {
  return {
    clusters: [
      {
        name: 'pool',
        spec: { protocol: 'TCP', port: upPort },
        endpoints: [
          { name: 'a', spec: { address: '127.0.0.1' } },
          { name: 'b', spec: { address: '127.0.0.2' } },
        ],
        loadbalancer: { policy },
        outlier_detection: { consecutive_failures: failures, base_ejection_time: 30000 },
      },
    ],
    listeners: [{ name: 'l', spec: { protocol: 'TCP', port: lport, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'pool', retry: RETRY } } }] }],
  };
}

async function tcpRequest(t: TestContext, lport: number, msg: string): Promise<string> {
  const c = await streamClient({ port: lport, host: '127.0.0.1' });
  closing(t, c.sock, (s) => s.destroy());
  c.sock.write(msg);
  return (await c.recv(3000)).toString();
}

for (const policy of ['Trivial', 'ConsistentHash']) {
  test(`TCP ${policy}, one endpoint refusing: every new connection is served by the other at once; the dead one is ejected`, async (t) => {
    const { port, a, b } = await twoTcp(t);
    const lport = await freePort();
    // ConsistentHash spreads clients: eject at the first failure so that 12 clients surely cause one.
    const rt = await proxy(t, tcpDoc(lport, port, policy, policy === 'Trivial' ? 2 : 1));
    // Kill the endpoint the first connections go to.
    const first = await tcpRequest(t, lport, 'x');
    const [dead, live, deadName] = first === 'A:x' ? [a, 'B:', 'a'] : [b, 'A:', 'b'];
    // Stop accepting (connections already open stay: close() would wait for them).
    dead.server.close();
    const started = Date.now();
    for (let i = 0; i < 12; i++) assert.equal(await tcpRequest(t, lport, `m${i}`), `${live}m${i}`);
    // No retry waited for `timeout` (1 s): the retry went to the other endpoint at once.
    assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`);
    const s = await endpoint(rt, deadName);
    assert.equal(s.ejections, 1);
    assert.equal(s.healthy, false);
    assert.equal(s.failures, policy === 'Trivial' ? 2 : 1);
  });
}

/** A UDP server that answers "ping" with "pong" only while `answering`, and echoes anything else with a prefix. */
async function probeServer(t: TestContext, prefix: string, address: string, port: number): Promise<{ answering: boolean; probes: number }> {
  const s = dgram.createSocket('udp4');
  const st = { answering: true, probes: 0 };
  s.on('message', (m, r) => {
    if (m.toString() === 'ping') {
      st.probes++;
      if (st.answering) s.send('pong', r.port, r.address);
      return;
    }
    s.send(Buffer.concat([Buffer.from(prefix), m]), r.port, r.address);
  });
  await new Promise<void>((res) => s.bind(port, address, () => res()));
  closing(t, s, (x) => x.close());
  return st;
}

test('active UDP health check: an endpoint that stops answering its probe is marked unhealthy (its session moves, new ones skip it) and healthy again when it answers', async (t) => {
  const port = await freeUdpPort('127.0.0.1');
  const a = await probeServer(t, 'A:', '127.0.0.1', port);
  await probeServer(t, 'B:', '127.0.0.2', port);
  const lport = await freePort();
  const doc = udpDoc(
    lport,
    port,
    {
      loadbalancer: { policy: 'Trivial' },
      outlier_detection: { enabled: false },
      health_check: { interval: 100, timeout: 100, unhealthy_threshold: 2, healthy_threshold: 2, send: 'ping', receive: 'pong' },
    },
    { retry_on: 'always', num_retries: 2, timeout: 1000 },
  );
  const rt = await proxy(t, doc, 2);
  const checks = async (): Promise<{ success: number; failure: number }> => {
    const h = ((await rt.metrics()).healthChecks ?? []).find((x) => x.endpoint === 'a');
    return { success: h?.passed ?? 0, failure: h?.failed ?? 0 };
  };
  await waitFor(async () => (await checks()).success >= 2, 3000, 'probes of a passing');
  const c = await udpClient(t);
  assert.equal((await c.request('s1', lport)).toString(), 'A:s1');
  a.answering = false;
  await waitFor(async () => !(await endpoint(rt, 'a')).healthy, 3000, 'a marked unhealthy');
  assert.ok((await checks()).failure >= 2);
  const text = await new ProxyMetrics(rt).scrape();
  assert.match(text, /^l7mp_endpoint_health_checks_total\{clusterName="pool",endpoint="a",result="failure"\} \d+$/m);
  assert.match(text, /^l7mp_endpoint_health\{clusterName="pool",endpoint="a",worker="1"\} 0$/m);
  // New sessions skip a; the live session (retry_on: always) moved to b.
  assert.deepEqual(await oneShot(t, lport, 3), ['B:q', 'B:q', 'B:q']);
  assert.equal((await c.request('s2', lport)).toString(), 'B:s2');
  const moved = (await sessions(rt)).find((s) => JSON.stringify(s).includes('reconnected to b'));
  assert.ok(moved !== undefined, 'a session reconnected to b');
  a.answering = true;
  await waitFor(async () => (await endpoint(rt, 'a')).healthy, 3000, 'a healthy again');
  assert.deepEqual(await oneShot(t, lport, 2, 'back'), ['A:back', 'A:back']);
});

test('active health check, retry_on never: the sessions on an endpoint that turns unhealthy end with a reason', async (t) => {
  const port = await freeUdpPort('127.0.0.1');
  const a = await probeServer(t, 'A:', '127.0.0.1', port);
  await probeServer(t, 'B:', '127.0.0.2', port);
  const lport = await freePort();
  const doc = udpDoc(lport, port, { loadbalancer: { policy: 'Trivial' }, health_check: { interval: 100, timeout: 100, unhealthy_threshold: 2, send: 'ping', receive: 'pong' } }, { retry_on: 'never' });
  const rt = await proxy(t, doc);
  const c = await udpClient(t);
  assert.equal((await c.request('s1', lport)).toString(), 'A:s1');
  a.answering = false;
  await waitFor(async () => {
    const st = await rt.stats();
    return st.some((w) => w.sessionsEnded >= 1);
  }, 3000, 'the session on a ended');
  const m = await rt.metrics();
  const ended = m.slots.flatMap((s) => s.metrics?.listeners ?? []).find((l) => l.name === 'l')?.ended ?? {};
  assert.equal(ended.L7_ERR_UPSTREAM_RESET, 1, JSON.stringify(ended));
});

test('active TCP health check: an endpoint that refuses connects is marked unhealthy, and healthy again when it accepts', async (t) => {
  const { port, a } = await twoTcp(t);
  const lport = await freePort();
  const doc = tcpDoc(lport, port, 'Trivial', 1) as { clusters: Array<Record<string, unknown>> };
  doc.clusters[0] = { ...doc.clusters[0], outlier_detection: { enabled: false }, health_check: { interval: 100, timeout: 200, unhealthy_threshold: 1, healthy_threshold: 1 } };
  const rt = await proxy(t, doc);
  assert.equal(await tcpRequest(t, lport, 'x'), 'A:x');
  a.server.close();
  await waitFor(async () => !(await endpoint(rt, 'a')).healthy, 3000, 'a marked unhealthy');
  // Outlier detection is off: only the active check keeps new connections off a.
  assert.equal(await tcpRequest(t, lport, 'y'), 'B:y');
  assert.equal((await endpoint(rt, 'a')).failures, 0);
  await streamServer(t, { port, host: '127.0.0.1' }, 'A:');
  await waitFor(async () => (await endpoint(rt, 'a')).healthy, 3000, 'a healthy again');
  assert.equal(await tcpRequest(t, lport, 'z'), 'A:z');
});
