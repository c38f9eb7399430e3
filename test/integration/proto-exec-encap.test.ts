/**
 * The virtual clusters JSONEncap, JSONDecap and Metric (docs/l7mp-compat.md §3.3, §6.1), and the Exec
 * cluster (a real process per session), over real sockets. Also the framing counter: a route that
 * feeds a datagram stream into a byte stream counts `framing_lost` on its listener.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { freePort, freeTcpPort, waitFor } from '../helpers.ts';
import { closing, listenerCounter, proxy, StreamPeer, streamServer, udpClient } from './proto-helpers.ts';
import { ProxyMetrics } from '../../runtime/main/admin/metrics.ts';
import type { Runtime } from '../../runtime/main/runtime.ts';

/** A UDP server that answers every datagram with itself and keeps what it got. */
async function recorder(t: import('node:test').TestContext): Promise<{ port: number; got: Buffer[] }> {
  const s = dgram.createSocket('udp4');
  const state = { port: 0, got: [] as Buffer[] };
  s.on('message', (m: Buffer, r: dgram.RemoteInfo) => {
    state.got.push(m);
    s.send(m, r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  state.port = s.address().port;
  closing(t, s, (x) => new Promise<void>((r) => x.close(() => r())));
  return state;
}

/** Cluster traffic of one cluster, summed over workers. */
async function clusterTraffic(rt: Runtime, name: string): Promise<{ txPackets: number; drops: number }> {
  const out = { txPackets: 0, drops: 0 };
  for (const s of (await rt.metrics()).slots) {
    for (const c of s.metrics?.clusters ?? []) {
      if (c.name !== name) continue;
      out.txPackets += c.traffic.txPackets;
      out.drops += c.traffic.drops;
    }
  }
  return out;
}

test('JSONEncap → upstream → JSONDecap: the upstream sees {metadata, payload: base64}; the client gets its bytes back', async (t) => {
  const up = await recorder(t);
  const port = await freePort();
  await proxy(t, {
    clusters: [
      { name: 'encap', spec: { protocol: 'JSONEncap' } },
      { name: 'decap', spec: { protocol: 'JSONDecap' } },
    ],
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'UDP', port, address: '127.0.0.1' },
        rules: [{ action: { route: { ingress: ['encap'], destination: { spec: { protocol: 'UDP', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] }, egress: ['decap'] } } }],
      },
    ],
  });
  const c = await udpClient(t);
  const bin = Buffer.from([0, 1, 2, 255, 254, 0x22, 0x7b]);
  assert.ok((await c.request(bin, port)).equals(bin));
  assert.equal((await c.request('text', port)).toString(), 'text');
  assert.equal(up.got.length, 2, 'one JSON message per datagram');
  const m = JSON.parse((up.got[0] as Buffer).toString()) as { metadata: { IP: { src_addr: string }; UDP: { src_port: number }; name: string }; payload: string };
  assert.ok(Buffer.from(m.payload, 'base64').equals(bin));
  assert.equal(m.metadata.IP.src_addr, '127.0.0.1');
  assert.equal(m.metadata.UDP.src_port, c.port);
  assert.match(m.metadata.name, /^UDP:127\.0\.0\.1:\d+-127\.0\.0\.1:\d+-\d+$/);
});

test('JSONDecap drops and counts what is not an encapsulated message', async (t) => {
  const port = await freePort();
  const rt = await proxy(t, {
    clusters: [{ name: 'decap', spec: { protocol: 'JSONDecap' } }],
    listeners: [{ name: 'l', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { ingress: ['decap'], destination: { spec: { protocol: 'Echo' } } } } }] }],
  });
  const c = await udpClient(t);
  const enc = (s: string) => JSON.stringify({ metadata: {}, payload: Buffer.from(s).toString('base64') });
  assert.equal((await c.request(enc('first'), port)).toString(), 'first');
  c.send('not json', port);
  c.send('{"payload": 5}', port);
  // The sentinel comes back first: the two bad messages produced nothing.
  assert.equal((await c.request(enc('sentinel'), port)).toString(), 'sentinel');
  assert.equal((await clusterTraffic(rt, 'decap')).drops, 2);
});

test('Metric: l7mp\'s session_byte_counter_total and session_packet_counter_total per live session', async (t) => {
  const port = await freePort();
  const rt = await proxy(t, {
    clusters: [{ name: 'm', spec: { protocol: 'Metric' } }],
    listeners: [{ name: 'l', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { ingress: ['m'], destination: { spec: { protocol: 'Echo' } } } } }] }],
  });
  const c = await udpClient(t);
  for (const s of ['a', 'bb', 'ccc']) assert.equal((await c.request(s, port)).toString(), s);
  const text = await new ProxyMetrics(rt).scrape();
  const name = `UDP:127.0.0.1:${c.port}-127.0.0.1:${port}-0`;
  assert.match(text, new RegExp(`session_byte_counter_total\\{sessionName="${name.replace(/\./g, '\\.')}",clusterName="m"\\} 6`));
  assert.match(text, new RegExp(`session_packet_counter_total\\{sessionName="${name.replace(/\./g, '\\.')}",clusterName="m"\\} 3`));
});

test('Exec: a TCP session piped through `cat`, one process per session, L7MP_SESSION in its environment', async (t) => {
  const port = await freeTcpPort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'TCP', port, address: '127.0.0.1' },
        rules: [{ action: { route: { destination: { name: 'sh', spec: { protocol: 'Exec', command: ['sh', '-c', 'printf "%s|" "$L7MP_SESSION"; exec cat'] } } } } }],
      },
    ],
  });
  const a = await StreamPeer.open(t, { host: '127.0.0.1', port });
  const b = await StreamPeer.open(t, { host: '127.0.0.1', port });
  await waitFor(() => a.received.includes('|') && b.received.includes('|'), 3000, 'both processes to start');
  const [na, nb] = [a.received, b.received];
  assert.match(na, /^TCP:127\.0\.0\.1:\d+-127\.0\.0\.1:\d+\|$/);
  assert.notEqual(na, nb, 'each session has its own process');
  a.sock.write('to a');
  b.sock.write('to b');
  await a.expect(`${na}to a`);
  await b.expect(`${nb}to b`);
  // A half-close reaches cat's stdin; cat exits, its stdout ends, and the session ends normally.
  a.sock.end();
  await waitFor(() => a.closed, 3000, 'the session to end after cat exits');
  assert.equal(await listenerCounter(rt, 'l', 'framing_lost'), 0, 'byte stream to byte stream keeps nothing to lose');
});

test('Exec: the process is killed when the session ends (UDP idle timeout); the route counts framing_lost', async (t) => {
  const port = await freePort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'UDP', port, address: '127.0.0.1', options: { idle_timeout: 0.5 } },
        rules: [{ action: { route: { destination: { spec: { protocol: 'Exec', command: ['sh', '-c', 'echo $$; exec sleep 1000'], kill_timeout: 1 } } } } }],
      },
    ],
  });
  const c = await udpClient(t);
  c.send('start', port);
  const pid = Number((await c.recv(3000)).toString().trim());
  assert.ok(pid > 0);
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  // It ran (it sent its pid); on a loaded machine the 0.5 s idle timeout may already have ended it.
  await waitFor(() => !alive(), 5000, `process ${pid} to be killed after the session ended`);
  assert.equal(await listenerCounter(rt, 'l', 'framing_lost'), 1, 'UDP (datagram) into Exec (byte stream)');
});

test('Exec: a program that cannot be spawned fails the stage connect', async (t) => {
  const port = await freePort();
  const rt = await proxy(t, {
    listeners: [{ name: 'l', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'Exec', command: ['/nonexistent/l7mp-ts-test'] } } } } }] }],
  });
  const c = await udpClient(t);
  c.send('x', port);
  await waitFor(
    async () => {
      for (const s of (await rt.metrics()).slots) for (const l of s.metrics?.listeners ?? []) if (l.name === 'l' && (l.ended.L7_ERR_UPSTREAM_CONNECT ?? 0) === 1) return true;
      return false;
    },
    3000,
    'the session to fail with L7_ERR_UPSTREAM_CONNECT',
  );
});

test('framing_lost: UDP → Logger → TCP counts each session once (in /metrics and the actor tree); TCP → Echo counts nothing', async (t) => {
  const up = await streamServer(t, { port: 0, host: '127.0.0.1' }, 'up: ');
  const port = await freePort();
  const tport = await freeTcpPort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'u',
        spec: { protocol: 'UDP', port, address: '127.0.0.1' },
        rules: [{ action: { route: { ingress: [{ spec: { protocol: 'Logger', log_file: '/dev/null' } }], destination: { spec: { protocol: 'TCP', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }],
      },
      { name: 't', spec: { protocol: 'TCP', port: tport, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] },
    ],
  });
  for (let i = 0; i < 2; i++) {
    const c = await udpClient(t);
    assert.equal((await c.request('x', port)).toString(), 'up: x');
  }
  const s = await StreamPeer.open(t, { host: '127.0.0.1', port: tport });
  s.sock.write('chunk');
  await s.expect('chunk');
  assert.equal(await listenerCounter(rt, 'u', 'framing_lost'), 2);
  assert.equal(await listenerCounter(rt, 't', 'framing_lost'), 0);
  const text = await new ProxyMetrics(rt).scrape();
  assert.match(text, /l7mp_listener_events_total\{listenerName="u",protocol="UDP",worker="0",event="framing_lost"\} 2/);
  const tree = await rt.tree();
  const lnode = tree.children[0]?.children.find((n) => n.name === 'u');
  assert.equal((lnode?.counters as Record<string, number> | undefined)?.framing_lost, 2);
});

test('Exec: the process gets a clean environment: no admin token, no NATS credentials; PATH by default, env_passthrough and env as listed', async (t) => {
  const saved = { L7MP_ADMIN_TOKEN: process.env.L7MP_ADMIN_TOKEN, NATS_CREDS: process.env.NATS_CREDS, L7MP_TEST_PASS: process.env.L7MP_TEST_PASS };
  // Set before the proxy starts: its worker threads take a copy of the environment.
  process.env.L7MP_ADMIN_TOKEN = 'sekrit-admin-token';
  process.env.NATS_CREDS = '/sekrit/nats.creds';
  process.env.L7MP_TEST_PASS = 'passed-through';
  t.after(() => {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  });
  const [p1, p2] = [await freeTcpPort(), await freeTcpPort()];
  const dump = ['sh', '-c', 'env; printf "@END@"; exec cat'];
  await proxy(t, {
    listeners: [
      { name: 'plain', spec: { protocol: 'TCP', port: p1, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'Exec', command: dump } } } } }] },
      {
        name: 'listed',
        spec: { protocol: 'TCP', port: p2, address: '127.0.0.1' },
        rules: [{ action: { route: { destination: { spec: { protocol: 'Exec', command: dump, env_passthrough: ['PATH', 'L7MP_TEST_PASS'], env: { GREETING: 'hi' } } } } } }],
      },
    ],
  });
  const envOf = async (port: number): Promise<Map<string, string>> => {
    const c = await StreamPeer.open(t, { host: '127.0.0.1', port });
    await waitFor(() => c.received.includes('@END@'), 5000, 'the process to print its environment');
    return new Map(c.received.slice(0, c.received.indexOf('@END@')).split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  };
  for (const port of [p1, p2]) {
    const env = await envOf(port);
    const all = [...env].map(([k, v]) => `${k}=${v}`).join('\n');
    assert.doesNotMatch(all, /sekrit/, 'no secret of the proxy\'s environment');
    assert.ok(!env.has('L7MP_ADMIN_TOKEN') && !env.has('NATS_CREDS'));
    assert.equal(env.get('PATH'), process.env.PATH, 'PATH is passed by default and when listed');
    assert.match(env.get('L7MP_SESSION') ?? '', /^TCP:127\.0\.0\.1:/);
    assert.ok(env.has('L7MP_METADATA'));
    if (port === p1) assert.ok(!env.has('L7MP_TEST_PASS') && !env.has('HOME'), 'nothing else by default');
    else {
      assert.equal(env.get('L7MP_TEST_PASS'), 'passed-through');
      assert.equal(env.get('GREETING'), 'hi');
    }
  }
});
