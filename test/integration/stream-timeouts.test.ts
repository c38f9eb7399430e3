/**
 * Timeouts of the stream listeners (issue 12 item 3): the session idle timeout of TCP, Unix
 * stream and WebSocket listeners (nginx proxy_timeout), the WebSocket handshake deadline (from
 * accept to a complete upgrade request), and the JSONSocket header deadline on byte-stream and
 * WebSocket transports, including a peer that never sends its FIN. Real sockets on loopback,
 * short configured timeouts, bounded waits (no fixed sleeps).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { WebSocket } from 'ws';
import type { Runtime } from '../../runtime/main/runtime.ts';
import { freeTcpPort, tmpDir, waitFor, wsRecv } from '../helpers.ts';
import { closing, listenerCounter, proxy, StreamPeer, streamServer } from './proto-helpers.ts';

async function endedWith(rt: Runtime, listener: string, code: string): Promise<number> {
  let n = 0;
  for (const s of (await rt.metrics()).slots) for (const l of s.metrics?.listeners ?? []) if (l.name === listener) n += l.ended[code] ?? 0;
  return n;
}

/** Keep `p` busy: one byte every 100 ms until the test ends. */
function chatter(t: TestContext, p: StreamPeer): void {
  const i = setInterval(() => p.closed || p.sock.write('.'), 100);
  closing(t, i, (x) => clearInterval(x));
}

test('TCP listener idle_timeout: a silent session is closed (L7_ERR_SESSION_IDLE), a chatty one stays', async (t) => {
  const up = await streamServer(t, { port: 0, host: '127.0.0.1' });
  const port = await freeTcpPort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'tcp',
        spec: { protocol: 'TCP', port, address: '127.0.0.1', options: { idle_timeout: 0.4 } },
        rules: [{ action: { route: { destination: { spec: { protocol: 'TCP', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }],
      },
    ],
  });
  const busy = await StreamPeer.open(t, { host: '127.0.0.1', port });
  chatter(t, busy);
  const quiet = await StreamPeer.open(t, { host: '127.0.0.1', port });
  quiet.sock.write('hello');
  await waitFor(() => quiet.received === 'hello', 3000, 'the echo');
  const t0 = Date.now();
  await waitFor(() => quiet.closed, 5000, 'the idle session to be closed');
  assert.ok(Date.now() - t0 >= 300, 'not before the idle timeout');
  assert.equal(await endedWith(rt, 'tcp', 'L7_ERR_SESSION_IDLE'), 1);
  assert.equal(busy.closed, false, 'the session with traffic stays');
  assert.ok(busy.received.length > 0, 'and its bytes flow');
});

test('Unix stream listener idle_timeout closes a silent session', async (t) => {
  const d = closing(t, tmpDir(), (x) => fs.rmSync(x, { recursive: true, force: true }));
  const file = path.join(d, 'in.sock');
  const rt = await proxy(t, {
    listeners: [{ name: 'ux', spec: { protocol: 'UnixDomainSocket', filename: file, options: { idle_timeout: 0.3 } }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }],
  });
  const p = await StreamPeer.open(t, { path: file });
  p.sock.write('x');
  await waitFor(() => p.received === 'x', 3000, 'the echo');
  await waitFor(() => p.closed, 5000, 'the idle session to be closed');
  assert.equal(await endedWith(rt, 'ux', 'L7_ERR_SESSION_IDLE'), 1);
});

test('WebSocket listener: no complete upgrade within handshake_timeout is a 408 and a close; an upgraded connection outlives it; idle_timeout ends an idle one', async (t) => {
  const port = await freeTcpPort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'ws',
        spec: { protocol: 'WebSocket', port, address: '127.0.0.1', options: { handshake_timeout: 0.4, idle_timeout: 2 } },
        rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }],
      },
    ],
  });
  const ws = closing(t, new WebSocket(`ws://127.0.0.1:${port}/`), (x) => x.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let wsClosed = false;
  ws.on('close', () => {
    wsClosed = true;
  });
  const silent = await StreamPeer.open(t, { host: '127.0.0.1', port });
  const slow = await StreamPeer.open(t, { host: '127.0.0.1', port });
  const req = 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
  let i = 0;
  const drip = setInterval(() => slow.closed || slow.sock.write(req[i++ % req.length] as string), 30);
  closing(t, drip, (x) => clearInterval(x));
  await waitFor(() => silent.closed && slow.closed, 5000, 'both handshakes to be cut');
  assert.match(silent.received, /^HTTP\/1\.1 408 /);
  assert.match(slow.received, /^HTTP\/1\.1 408 /);
  assert.equal(await listenerCounter(rt, 'ws', 'handshake_timeout'), 2);
  // Well past the handshake deadline, the upgraded connection still works.
  const echoed = wsRecv(ws);
  ws.send('still here');
  assert.equal((await echoed).toString(), 'still here');
  assert.equal(wsClosed, false);
  // Then, silent, it hits the session idle timeout.
  await waitFor(() => wsClosed, 8000, 'the idle WebSocket session to end');
  assert.equal(await endedWith(rt, 'ws', 'L7_ERR_SESSION_IDLE'), 1);
});

test('JSONSocket over TCP: a peer that drips bytes and never sends its FIN gets 408 and its connection is destroyed; counted header_timeout', async (t) => {
  const port = await freeTcpPort();
  const rt = await proxy(t, {
    listeners: [{ name: 'js', spec: { protocol: 'JSONSocket', transport: { protocol: 'TCP', port, address: '127.0.0.1' }, options: { header_timeout: 0.3 } }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }],
  });
  // allowHalfOpen: the client keeps its side open after the proxy's FIN, and keeps writing.
  const sock = net.createConnection({ host: '127.0.0.1', port, allowHalfOpen: true });
  closing(t, sock, (s) => s.destroy());
  let data = '';
  let closed = false;
  sock.on('data', (d: Buffer) => {
    data += d.toString();
  });
  sock.on('error', () => {});
  sock.on('close', () => {
    closed = true;
  });
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write('{"JSONSocketVersion":1, "pad": "');
  const drip = setInterval(() => closed || sock.write('a'), 50);
  closing(t, drip, (x) => clearInterval(x));
  await waitFor(() => closed, 6000, 'the connection to be destroyed');
  assert.equal((JSON.parse(data) as { JSONSocketStatus: number }).JSONSocketStatus, 408);
  assert.equal(await listenerCounter(rt, 'js', 'header_timeout'), 1);
  assert.equal(await listenerCounter(rt, 'js', 'malformed'), 0);
});

test('JSONSocket over WebSocket: a connection that sends no header message gets 408 and is closed', async (t) => {
  const port = await freeTcpPort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'js',
        spec: { protocol: 'JSONSocket', transport: { protocol: 'WebSocket', port, address: '127.0.0.1' }, options: { header_timeout: 0.3 } },
        rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }],
      },
    ],
  });
  const ws = closing(t, new WebSocket(`ws://127.0.0.1:${port}/`), (x) => x.terminate());
  const first = new Promise<Buffer>((resolve, reject) => {
    ws.once('open', () => wsRecv(ws, 5000).then(resolve, reject));
    ws.once('error', reject);
  });
  let closed = false;
  ws.on('close', () => {
    closed = true;
  });
  assert.equal((JSON.parse((await first).toString()) as { JSONSocketStatus: number }).JSONSocketStatus, 408);
  await waitFor(() => closed, 5000, 'the WebSocket to close');
  assert.equal(await listenerCounter(rt, 'js', 'header_timeout'), 1);
});
