/**
 * Datagram sends the kernel refuses (issue 12 item 7): EMSGSIZE, ECONNREFUSED and the rest are
 * drops counted by reason (`l7mp_listener_dropped_packets_total` / `l7mp_cluster_dropped_packets_total`
 * with reason=emsgsize|enobufs|econnrefused|send_error), never tx. Real sockets on loopback:
 * an IPv6 peer can send a 65527-byte datagram, which an IPv4 socket cannot send on (its limit is
 * 65507 bytes); a closed port answers with an ICMP port unreachable, which the next send on a
 * connected socket reports as ECONNREFUSED.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { UdpCluster } from '../../protocols/udp/cluster.ts';
import type { ConnectionHandler } from '../../protocols/types.ts';
import type { L7Error } from '../../common/errors.ts';
import { ProxyMetrics } from '../../runtime/main/admin/metrics.ts';
import type { Runtime } from '../../runtime/main/runtime.ts';
import type { Traffic } from '../../runtime/worker/stats.ts';
import { loadDgramSocket } from '../../protocols/uds/dgram-lib.ts';
import { freeUdpPort, tmpDir, waitFor } from '../helpers.ts';
import { closing, proxy, udpClient } from './proto-helpers.ts';

/** Largest UDP payload over IPv6 without jumbograms (65535 - 8), bytes; over IPv4 it is 65507. */
const V6_MAX = 65527;

/** Traffic of a listener or cluster, summed over workers. */
async function traffic(rt: Runtime, kind: 'listeners' | 'clusters', name: string): Promise<Traffic> {
  const t: Traffic = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, drops: 0, setupDrops: 0, dropEmsgsize: 0, dropEnobufs: 0, dropEconnrefused: 0, dropSendError: 0 };
  for (const s of (await rt.metrics()).slots) {
    for (const x of s.metrics?.[kind] ?? []) {
      if (x.name !== name) continue;
      for (const k of Object.keys(t) as Array<keyof Traffic>) t[k] += x.traffic[k];
    }
  }
  return t;
}

/** A UDP server on `address` that answers every datagram with `replies(datagram)`, in one burst. */
async function replier(t: TestContext, address: string, replies: (d: Buffer) => Buffer[]): Promise<{ port: number; got: number }> {
  const s = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
  s.on('error', () => {});
  const state = { port: 0, got: 0 };
  s.on('message', (d, r) => {
    state.got++;
    for (const b of replies(d)) s.send(b, r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(0, address, () => r()));
  state.port = s.address().port;
  closing(t, s, (x) => x.close());
  return state;
}

test('UDP cluster: a datagram larger than the IPv4 path allows is an emsgsize drop, never tx; the session carries on', async (t) => {
  const up = await replier(t, '127.0.0.1', (d) => [d]);
  const port = await freeUdpPort('::1');
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'in6',
        spec: { protocol: 'UDP', port, address: '::1' },
        rules: [{ action: { route: { destination: { name: 'up4', spec: { protocol: 'UDP', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }],
      },
    ],
  });
  const c = await udpClient(t, '::1');
  assert.equal((await c.request('small', port, '::1')).toString(), 'small');
  c.send(Buffer.alloc(V6_MAX, 1), port, '::1');
  c.send('after', port, '::1');
  assert.equal((await c.recv()).toString(), 'after', 'the session outlives the refused send');
  const cl = await waitFor(async () => {
    const x = await traffic(rt, 'clusters', 'up4');
    return x.dropEmsgsize === 1 ? x : null;
  }, 5000, 'the emsgsize drop') as Traffic;
  assert.equal(up.got >= 2, true);
  assert.equal(cl.txPackets, up.got, 'tx counts exactly the datagrams that reached the upstream');
  assert.equal(cl.txBytes, 5 * up.got, 'tx bytes are the 5-byte datagrams only');
  const l = await traffic(rt, 'listeners', 'in6');
  assert.equal(l.rxPackets, up.got + 1, 'the listener received it');

  const m = new ProxyMetrics(rt);
  const text = await m.scrape();
  assert.match(text, /l7mp_cluster_dropped_packets_total\{clusterName="up4",protocol="UDP",worker="0",reason="emsgsize"\} 1\b/);
});

test('UDP listener: a reply larger than the IPv4 downstream path allows is an emsgsize drop on the listener, never tx', async (t) => {
  // The upstream (IPv6) answers each datagram with a 65527-byte one, then an echo.
  const up = await replier(t, '::1', (d) => [Buffer.alloc(V6_MAX, 2), d]);
  const port = await freeUdpPort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'in4',
        spec: { protocol: 'UDP', port, address: '127.0.0.1' },
        rules: [{ action: { route: { destination: { name: 'up6', spec: { protocol: 'UDP', port: up.port }, endpoints: [{ spec: { address: '::1' } }] } } } }],
      },
    ],
  });
  const c = await udpClient(t);
  assert.equal((await c.request('ping', port)).toString(), 'ping', 'only the echo reaches the client');
  const l = await waitFor(async () => {
    const x = await traffic(rt, 'listeners', 'in4');
    return x.dropEmsgsize >= 1 ? x : null;
  }, 5000, 'the emsgsize drop') as Traffic;
  assert.equal(l.dropEmsgsize, up.got, 'one refused reply per request');
  assert.equal(l.txPackets, up.got, 'tx counts the echoes only');
  assert.equal(l.txBytes, 4 * up.got);
  const cl = await traffic(rt, 'clusters', 'up6');
  assert.equal(cl.rxPackets, 2 * up.got, 'both replies came from the upstream');

  const text = await new ProxyMetrics(rt).scrape();
  assert.match(text, new RegExp(`l7mp_listener_dropped_packets_total\\{listenerName="in4",protocol="UDP",worker="0",reason="emsgsize"\\} ${up.got}\\b`));
});

test('UDP listener: replies to a peer whose port closed are econnrefused drops, never tx, and the session ends as before', async (t) => {
  // The upstream answers with a burst of 3: the first reaches the closed port and draws an ICMP
  // error, which the next send reports.
  let peerGone: (() => void) | null = null;
  const up = await replier(t, '127.0.0.1', (d) => {
    peerGone?.();
    return [d, d, d];
  });
  const port = await freeUdpPort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'in',
        // Only a socket connected to the peer hears its ICMP errors (one worker defaults to listener sockets).
        spec: { protocol: 'UDP', port, address: '127.0.0.1', options: { session_sockets: 'connected' } },
        rules: [{ action: { route: { destination: { name: 'up', spec: { protocol: 'UDP', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }],
      },
    ],
  });
  // Warm the session up with a client that stays, then a client that leaves before the answer.
  const c = dgram.createSocket('udp4');
  await new Promise<void>((r) => c.bind(0, '127.0.0.1', () => r()));
  const got: Buffer[] = [];
  c.on('message', (m) => got.push(m));
  c.send('hello', port, '127.0.0.1');
  await waitFor(() => got.length === 3, 3000, 'the first burst');
  // The session's own socket connects to the client asynchronously (bind, then connect): only a
  // connected socket hears the ICMP error. Wait until the kernel lists it as connected.
  const cport = c.address().port;
  await waitFor(() => connectedUdp4(port, cport), 5000, 'the session socket connected to the client');
  peerGone = () => {
    peerGone = null;
    c.close();
  };
  const closed = new Promise<void>((r) => c.once('close', () => r()));
  // The proxy's session socket is connected to the client by now; the upstream closes the client
  // before it answers this one.
  c.send('bye', port, '127.0.0.1');
  await closed;
  // The ICMP error reaches the session socket either through the next send (an econnrefused
  // drop) or, when libuv reads it first, as a socket error that closes the connection (replies
  // after that are drops after close, or never read once the session is gone). Either way the
  // session ends as a downstream reset and no reply after the close is tx.
  const ended = await waitFor(async () => {
    for (const s of (await rt.metrics()).slots) for (const x of s.metrics?.listeners ?? []) if (x.name === 'in' && (x.ended.L7_ERR_DOWNSTREAM_RESET ?? 0) > 0) return true;
    return false;
  }, 5000, 'the session to end with L7_ERR_DOWNSTREAM_RESET');
  assert.ok(ended);
  const l = await traffic(rt, 'listeners', 'in');
  assert.ok(l.txPackets <= 4, `at most one reply after the close left the proxy (tx ${l.txPackets})`);
  assert.ok(l.dropEconnrefused + l.drops >= 1, `a reply after the close is refused or dropped: ${JSON.stringify(l)}`);
  assert.ok(l.txPackets + l.dropEconnrefused + l.drops <= 6, `no reply is counted twice: ${JSON.stringify(l)}`);
  const text = await new ProxyMetrics(rt).scrape();
  assert.match(text, /l7mp_listener_dropped_packets_total\{listenerName="in",protocol="UDP",worker="0",reason="(econnrefused|connection)"\} [1-9]/);
});

test('UDP cluster connection to a closed port: the refused send is an econnrefused drop, not tx, and ends the stage as an upstream failure', async (t) => {
  const dead = await freeUdpPort();
  const cluster = new UdpCluster({ name: 'c', spec: { protocol: 'UDP', port: dead } });
  const conn = await cluster.connect({ name: 's', metadata: {} }, { name: 'e', address: '127.0.0.1', weight: 1 }, new AbortController().signal);
  let closedWith: L7Error | null | undefined;
  const h: ConnectionHandler = { onData() {}, onDrain() {}, onEnd() {}, onClose: (e) => (closedWith = e) };
  conn.setHandler(h);
  closing(t, conn, (x) => x.close());
  // On loopback the ICMP error of the first is there before the second send.
  conn.send(Buffer.from('one'));
  conn.send(Buffer.from('two'));
  await waitFor(() => closedWith !== undefined, 3000, 'the connection to close');
  assert.equal(conn.stats.txPackets, 1, 'only the first left');
  assert.equal(conn.stats.txBytes, 3);
  assert.equal(conn.stats.dropEconnrefused, 1);
  assert.equal(closedWith?.code, 'L7_ERR_UPSTREAM_RESET');
  conn.send(Buffer.from('three'));
  assert.equal(conn.stats.drops, 1, 'a send after the close is a connection drop');
  assert.equal(conn.stats.txPackets, 1);
});

test('Unix dgram cluster: sends to a path nobody is bound to are econnrefused drops, never tx; tx counts the acknowledged sends', async (t) => {
  const DgramSocket = loadDgramSocket();
  const d = closing(t, tmpDir(), (x) => fs.rmSync(x, { recursive: true, force: true }));
  const upFile = path.join(d, 'up.sock');
  const up = new DgramSocket();
  up.bind(upFile);
  const got: Buffer[] = [];
  up.on('data', (b: Buffer, from: string) => {
    got.push(b);
    up.sendTo(b, 0, b.length, from);
  });
  let upOpen = true;
  closing(t, up, (x) => upOpen && x.close());
  const port = await freeUdpPort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'in',
        spec: { protocol: 'UDP', port, address: '127.0.0.1' },
        rules: [{ action: { route: { destination: { name: 'ux', spec: { protocol: 'UnixDomainSocket', type: 'dgram' }, endpoints: [{ spec: { address: upFile } }] } } } }],
      },
    ],
  });
  const c = await udpClient(t);
  assert.equal((await c.request('a', port)).toString(), 'a');
  const before = await waitFor(async () => {
    const x = await traffic(rt, 'clusters', 'ux');
    return x.txPackets === got.length ? x : null;
  }, 3000, 'tx to match what the endpoint got') as Traffic;
  assert.equal(before.txBytes, got.length);
  // The endpoint closes; its file stays: a send there is "Connection refused".
  up.close();
  upOpen = false;
  c.send('b', port);
  const after = await waitFor(async () => {
    const x = await traffic(rt, 'clusters', 'ux');
    return x.dropEconnrefused === 1 ? x : null;
  }, 5000, 'the econnrefused drop') as Traffic;
  assert.equal(after.txPackets, before.txPackets, 'the refused datagram is not tx');
  assert.equal(after.txBytes, before.txBytes);
});

test('UDP singleton and JSONSocket over UDP: a reply too large for the IPv4 downstream is an emsgsize drop on the listener, the echo after it is tx', async (t) => {
  const up = await replier(t, '::1', (d) => [Buffer.alloc(V6_MAX, 3), d]);
  const remote = await udpClient(t);
  const sport = await freeUdpPort();
  const jport = await freeUdpPort();
  const toUp = [{ action: { route: { destination: 'up6' } } }];
  const rt = await proxy(t, {
    clusters: [{ name: 'up6', spec: { protocol: 'UDP', port: up.port }, endpoints: [{ spec: { address: '::1' } }] }],
    listeners: [
      { name: 'single', spec: { protocol: 'UDP', port: sport, address: '127.0.0.1', connect: { address: '127.0.0.1', port: remote.port } }, rules: toUp },
      { name: 'js', spec: { protocol: 'JSONSocket', transport: { protocol: 'UDP', port: jport, address: '127.0.0.1' } }, rules: toUp },
    ],
  });
  assert.equal((await remote.request('s1', sport)).toString(), 's1');
  const js = await udpClient(t);
  js.send('{"JSONSocketVersion":1}', jport);
  assert.equal(JSON.parse((await js.recv(5000)).toString()).JSONSocketStatus, 200);
  js.send('j1', jport);
  assert.equal((await js.recv()).toString(), 'j1');
  const single = await waitFor(async () => {
    const x = await traffic(rt, 'listeners', 'single');
    return x.dropEmsgsize >= 1 && x.txPackets >= 1 ? x : null;
  }, 5000, 'the singleton emsgsize drop') as Traffic;
  assert.equal(single.txPackets + single.dropEmsgsize, 2 * single.rxPackets, `every reply is tx or a drop: ${JSON.stringify(single)}`);
  assert.equal(single.txBytes, 2 * single.txPackets, 'tx bytes are the echoes only');
  const j = await waitFor(async () => {
    const x = await traffic(rt, 'listeners', 'js');
    return x.dropEmsgsize >= 1 && x.txPackets >= 2 ? x : null;
  }, 5000, 'the JSONSocket emsgsize drop') as Traffic;
  assert.equal(j.dropEmsgsize, 1, 'the big reply to j1 is refused; the 200 and the echo are tx');
  assert.equal(j.txPackets, 2);
  assert.ok(j.txBytes < V6_MAX, `the refused reply is not in tx bytes (${j.txBytes})`);
});

/** True if a UDP socket bound to 127.0.0.1:`local` is connected to 127.0.0.1:`remote` (/proc/net/udp, state 01). */
function connectedUdp4(local: number, remote: number): boolean {
  const hex = (p: number): string => p.toString(16).toUpperCase().padStart(4, '0');
  const want = `0100007F:${hex(local)} 0100007F:${hex(remote)} 01`;
  return fs.readFileSync('/proc/net/udp', 'utf8').split('\n').some((l) => l.includes(want));
}
