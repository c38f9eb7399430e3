/**
 * Every protocol as a listener and as a cluster, over real sockets on 127.0.0.1 and ::1 (compat
 * reference §3.2, §3.3): UDP, TCP, UnixDomainSocket and WebSocket pairs, cross-protocol routes
 * (UDP→WebSocket with no HTTP metadata: l7mp bug B4 fixed), the virtual clusters Echo, Discard and
 * Logger, and UDP datagram boundaries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WebSocket } from 'ws';
import { freePort, freeTcpPort, freeUdpPort, tmpDir, udpEcho, waitFor, wsEcho, wsRecv } from '../helpers.ts';
import { closing, nothingBefore, proxy, sessions, StreamPeer, streamServer, udpClient } from './proto-helpers.ts';

/** A one-listener config whose single rule routes to `destination` (plus optional chains). */
function route(listenerSpec: Record<string, unknown>, destination: Record<string, unknown>, extra: Record<string, unknown> = {}): unknown {
  return { listeners: [{ name: 'l', spec: listenerSpec, rules: [{ action: { route: { destination, ...extra } } }] }] };
}

const udpCluster = (port: number, address = '127.0.0.1') => ({ spec: { protocol: 'UDP', port }, endpoints: [{ spec: { address } }] });
const tcpCluster = (port: number, address = '127.0.0.1') => ({ spec: { protocol: 'TCP', port }, endpoints: [{ spec: { address } }] });
const wsCluster = (port: number, address = '127.0.0.1') => ({ spec: { protocol: 'WebSocket', port }, endpoints: [{ spec: { address } }] });
const udsCluster = (file: string) => ({ spec: { protocol: 'UnixDomainSocket' }, endpoints: [{ spec: { address: file } }] });

/** A WebSocket client closed after the test. */
async function ws(t: import('node:test').TestContext, url: string, headers: Record<string, string> = {}, protocols: string[] = []): Promise<WebSocket> {
  const w = new WebSocket(url, protocols, { headers });
  await new Promise<void>((resolve, reject) => {
    w.once('open', () => resolve());
    w.once('error', reject);
  });
  return closing(t, w, (x) => x.terminate());
}

for (const family of ['127.0.0.1', '::1']) {
  test(`UDP → UDP on ${family}`, async (t) => {
    const echo = closing(t, await udpEcho('up: ', family), (e) => e.close());
    const port = await freeUdpPort(family);
    await proxy(t, route({ protocol: 'UDP', port, address: family }, udpCluster(echo.port, family)));
    const c = await udpClient(t, family);
    assert.equal((await c.request('hello', port, family)).toString(), 'up: hello');
    assert.equal((await c.request('again', port, family)).toString(), 'up: again');
    // One session, and the upstream saw one peer (the session's own socket).
    assert.equal(echo.peers.size, 1);
  });

  test(`TCP → TCP on ${family}`, async (t) => {
    const up = await streamServer(t, { port: 0, host: family }, 'up: ');
    const port = await freeTcpPort(family);
    await proxy(t, route({ protocol: 'TCP', port, address: family }, tcpCluster(up.port, family)));
    const c = await StreamPeer.open(t, { host: family, port });
    c.sock.write('hello');
    await c.expect('up: hello');
    c.sock.write('world');
    await c.expect('up: helloup: world');
    assert.equal(up.connections, 1);
  });
}

test('UDP → UDP keeps datagram boundaries: 1, 1400 and 8000 bytes arrive as exactly those datagrams', async (t) => {
  const echo = closing(t, await udpEcho(''), (e) => e.close());
  const port = await freePort();
  await proxy(t, route({ protocol: 'UDP', port, address: '127.0.0.1' }, udpCluster(echo.port)));
  const c = await udpClient(t);
  const sent = [Buffer.from('a'), Buffer.alloc(1400, 0x62), Buffer.from(Array.from({ length: 8000 }, (_, i) => i % 251))];
  // All three go out before the session exists: the proxy holds them and forwards them in order.
  for (const d of sent) c.send(d, port);
  for (const d of sent) {
    const r = await c.recv(3000);
    assert.equal(r.length, d.length);
    assert.ok(r.equals(d), `datagram of ${d.length} bytes changed`);
  }
  await nothingBefore(c, port, 'sentinel');
  assert.equal(echo.received, 4);
});

test('UnixDomainSocket → UnixDomainSocket', async (t) => {
  const dir = closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
  const upPath = path.join(dir, 'up.sock');
  const lPath = path.join(dir, 'l.sock');
  await streamServer(t, { path: upPath }, 'up: ');
  await proxy(t, route({ protocol: 'UnixDomainSocket', filename: lPath }, udsCluster(upPath)));
  const c = await StreamPeer.open(t, { path: lPath });
  c.sock.write('over unix');
  await c.expect('up: over unix');
});

test('WebSocket → WebSocket: the upstream sees the downstream\'s path, query and headers', async (t) => {
  const up = closing(t, await wsEcho('up: '), (e) => e.close());
  const port = await freeTcpPort();
  await proxy(t, route({ protocol: 'WebSocket', port, address: '127.0.0.1' }, wsCluster(up.port)));
  const c = await ws(t, `ws://127.0.0.1:${port}/foo?x=1`, { 'x-custom': 'hello' }, ['chat']);
  c.send('text message');
  assert.equal((await wsRecv(c)).toString(), 'up: text message');
  c.send(Buffer.from([0, 1, 2, 255]));
  assert.deepEqual([...(await wsRecv(c))], [...Buffer.from('up: '), 0, 1, 2, 255]);
  assert.equal(up.requests.length, 1);
  const req = up.requests[0];
  assert.equal(req?.url, '/foo?x=1');
  assert.equal(req?.headers['x-custom'], 'hello');
  // The subprotocol is passed on as a subprotocol, not a copied header.
  assert.equal(req?.headers['sec-websocket-protocol'], 'chat');
  assert.equal(c.protocol, 'chat');
  // Host is copied from the downstream request, as l7mp did.
  assert.equal(req?.headers.host, `127.0.0.1:${port}`);
});

test('UDP → WebSocket works without HTTP metadata (l7mp bug B4 fixed)', async (t) => {
  const up = closing(t, await wsEcho('ws: '), (e) => e.close());
  const port = await freePort();
  await proxy(t, route({ protocol: 'UDP', port, address: '127.0.0.1' }, wsCluster(up.port)));
  const c = await udpClient(t);
  assert.equal((await c.request('from udp', port)).toString(), 'ws: from udp');
  assert.equal((await c.request('second', port)).toString(), 'ws: second');
  assert.equal(up.requests.length, 1);
  assert.equal(up.requests[0]?.url, '/');
});

test('WebSocket → UnixDomainSocket', async (t) => {
  const dir = closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
  const upPath = path.join(dir, 'up.sock');
  await streamServer(t, { path: upPath }, 'unix: ');
  const port = await freeTcpPort();
  await proxy(t, route({ protocol: 'WebSocket', port, address: '127.0.0.1' }, udsCluster(upPath)));
  const c = await ws(t, `ws://127.0.0.1:${port}/`);
  c.send('from ws');
  assert.equal((await wsRecv(c)).toString(), 'unix: from ws');
});

test('TCP → UDP', async (t) => {
  const echo = closing(t, await udpEcho('udp: '), (e) => e.close());
  const port = await freePort();
  await proxy(t, route({ protocol: 'TCP', port, address: '127.0.0.1' }, udpCluster(echo.port)));
  const c = await StreamPeer.open(t, { host: '127.0.0.1', port });
  c.sock.write('from tcp');
  await c.expect('udp: from tcp');
  assert.equal(echo.received, 1);
});

test('UDP → Echo: every datagram comes back unchanged', async (t) => {
  const port = await freePort();
  await proxy(t, route({ protocol: 'UDP', port, address: '127.0.0.1' }, { spec: { protocol: 'Echo' } }));
  const c = await udpClient(t);
  assert.equal((await c.request('ping', port)).toString(), 'ping');
  const big = Buffer.alloc(5000, 7);
  assert.ok((await c.request(big, port)).equals(big));
});

test('UDP → Discard: no reply, but the session exists and counted the datagrams', async (t) => {
  const port = await freePort();
  const rt = await proxy(t, route({ protocol: 'UDP', port, address: '127.0.0.1' }, { spec: { protocol: 'Discard' } }));
  const c = await udpClient(t);
  c.send('into the void', port);
  c.send('and again', port);
  const s = await waitFor(async () => {
    const all = await sessions(rt);
    const st = all[0]?.stages as Array<{ cluster: string; tx_packets: number }> | undefined;
    return all.length === 1 && st?.[0]?.tx_packets === 2 ? all[0] : undefined;
  }, 3000, 'the Discard stage to have taken 2 datagrams');
  assert.ok(s !== undefined);
  assert.equal(s.status, 'CONNECTED');
  // Nothing went back to the client: the downstream sent no datagram.
  assert.equal((s.downstream as { tx_packets: number }).tx_packets, 0);
  await assert.rejects(c.recv(50));
});

test('TCP → Logger (ingress) → Echo: the chunk comes back and the log file has "<prefix>: <chunk>"', async (t) => {
  const dir = closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
  const logFile = path.join(dir, 'log.txt');
  const port = await freeTcpPort();
  await proxy(t, route({ protocol: 'TCP', port, address: '127.0.0.1' }, { spec: { protocol: 'Echo' } }, { ingress: [{ spec: { protocol: 'Logger', log_file: logFile, log_prefix: 'ing' } }] }));
  const c = await StreamPeer.open(t, { host: '127.0.0.1', port });
  c.sock.write('tcp-hello');
  await c.expect('tcp-hello');
  await waitFor(() => fs.existsSync(logFile) && fs.readFileSync(logFile, 'utf8') === 'ing: tcp-hello', 3000, 'the log file');
  // A second session appends: the file is not truncated per session (l7mp bug B25 fixed).
  const c2 = await StreamPeer.open(t, { host: '127.0.0.1', port });
  c2.sock.write('second');
  await c2.expect('second');
  await waitFor(() => fs.readFileSync(logFile, 'utf8') === 'ing: tcp-helloing: second', 3000, 'the second log line');
});

test('Logger with a log file it cannot open: traffic still passes, the worker does not die', async (t) => {
  const dir = closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
  const port = await freeTcpPort();
  const rt = await proxy(t, route({ protocol: 'TCP', port, address: '127.0.0.1' }, { spec: { protocol: 'Echo' } }, { ingress: [{ spec: { protocol: 'Logger', log_file: path.join(dir, 'no', 'such', 'dir.log'), log_prefix: 'x' } }] }));
  let exits = 0;
  rt.on('workerExit', () => exits++);
  const c = await StreamPeer.open(t, { host: '127.0.0.1', port });
  c.sock.write('still flowing');
  await c.expect('still flowing');
  assert.equal(exits, 0);
  assert.equal(rt.restarts, 0);
});

// A half-close propagates (docs/l7mp-compat.md §4.4: l7mp's pipes use end:true): the client's FIN goes
// upstream, the reply still comes back, then the upstream's FIN reaches the client.
test('TCP → TCP half-close: the client sends and shuts down its side; the reply still arrives', async (t) => {
  const up = await streamServer(t, { port: 0, host: '127.0.0.1' }, 'up: ');
  const port = await freeTcpPort();
  await proxy(t, route({ protocol: 'TCP', port, address: '127.0.0.1' }, tcpCluster(up.port)));
  const c = await StreamPeer.open(t, { host: '127.0.0.1', port, allowHalfOpen: true });
  c.sock.end('request');
  await c.expect('up: request', 2000);
  await waitFor(() => c.closed, 2000, 'the connection to close after the reply');
});

test('TCP → Logger → Echo half-close: the FIN goes round the chain and comes back after the data', async (t) => {
  const port = await freeTcpPort();
  await proxy(t, {
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'TCP', port, address: '127.0.0.1' },
        rules: [{ action: { route: { ingress: [{ spec: { protocol: 'Logger', log_file: '/dev/null' } }], destination: { spec: { protocol: 'Echo' } } } } }],
      },
    ],
  });
  const c = await StreamPeer.open(t, { host: '127.0.0.1', port, allowHalfOpen: true });
  c.sock.end('ping');
  await c.expect('ping', 2000);
  await waitFor(() => c.closed, 2000, 'the connection to close after the echo');
});

test('TCP → UDP half-close: the reply in flight still arrives, then the session ends', async (t) => {
  const echo = closing(t, await udpEcho('u: '), (e) => e.close());
  const port = await freeTcpPort();
  const rt = await proxy(t, route({ protocol: 'TCP', port, address: '127.0.0.1' }, udpCluster(echo.port)));
  const c = await StreamPeer.open(t, { host: '127.0.0.1', port, allowHalfOpen: true });
  c.sock.end('dgram');
  await c.expect('u: dgram', 2000);
  await waitFor(async () => (await rt.stats()).reduce((n, s) => n + s.sessionsEnded, 0) === 1, 3000, 'the session to end after the linger');
});
