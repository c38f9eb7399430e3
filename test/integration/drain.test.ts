/**
 * Drain per protocol (runtime/main/drain.ts, `Runtime.drain`), in process with real sockets: live
 * WebSocket, Unix stream and JSONSocket-over-TCP sessions carry on while new connections are
 * refused by the kernel; a Unix datagram listener keeps its socket for known senders and refuses
 * a new one (counted `draining`); a quiet datagram session ends after the drain grace.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { loadDgramSocket } from '../../protocols/uds/dgram-lib.ts';
import { freeTcpPort, freeUdpPort, streamClient, tmpDir, waitFor, wsClient, wsRecv } from '../helpers.ts';
import { closing, listenerCounter, proxy, udpClient } from './proto-helpers.ts';
import { DRAIN_QUIET_MS } from '../../actors/session-core.ts';

const DgramSocket = loadDgramSocket();
const echo = [{ action: { route: { destination: 'echo' } } }];

function refused(opts: net.NetConnectOpts): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(opts);
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

function dir(t: TestContext): string {
  return closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
}

test('drain: WebSocket, Unix stream and JSONSocket/TCP sessions carry on, new connections are refused; Unix dgram refuses a new sender only', async (t) => {
  const d = dir(t);
  const [wsPort, jsPort] = [await freeTcpPort(), await freeTcpPort()];
  const [streamPath, dgramPath] = [path.join(d, 's.sock'), path.join(d, 'g.sock')];
  const rt = await proxy(
    t,
    {
      listeners: [
        { name: 'ws', spec: { protocol: 'WebSocket', port: wsPort, address: '127.0.0.1' }, rules: echo },
        { name: 'us', spec: { protocol: 'UnixDomainSocket', filename: streamPath }, rules: echo },
        { name: 'ug', spec: { protocol: 'UnixDomainSocket', type: 'dgram', filename: dgramPath }, rules: echo },
        { name: 'js', spec: { protocol: 'JSONSocket', transport: { protocol: 'TCP', port: jsPort, address: '127.0.0.1' } }, rules: echo },
      ],
      clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }],
    },
    2,
  );
  const ws = closing(t, await wsClient(`ws://127.0.0.1:${wsPort}/`), (w) => w.terminate());
  ws.send('w1');
  assert.equal((await wsRecv(ws, 5000)).toString(), 'w1');
  const us = closing(t, await streamClient({ path: streamPath }), (c) => c.sock.destroy());
  us.sock.write('s1');
  assert.equal((await us.recv(5000)).toString(), 's1');
  const js = closing(t, await streamClient({ port: jsPort, host: '127.0.0.1' }), (c) => c.sock.destroy());
  let jsGot = '';
  js.sock.on('data', (b: Buffer) => (jsGot += b.toString()));
  js.sock.write('{"JSONSocketVersion":1}\n');
  await waitFor(() => /"JSONSocketStatus":200.*\n/.test(jsGot), 5000, 'the JSONSocket handshake');
  js.sock.write('j1');
  await waitFor(() => jsGot.endsWith('j1'), 5000, 'the JSONSocket echo');
  const known = closing(t, new DgramSocket(), (s) => s.close());
  known.bind(path.join(d, 'known.sock'));
  const got: string[] = [];
  known.on('data', (b: Buffer) => got.push(b.toString()));
  known.sendTo(Buffer.from('g1'), 0, 2, dgramPath);
  await waitFor(() => got.includes('g1'), 5000, 'the Unix dgram echo');

  const st = rt.drain({ timeoutS: 30, source: 'test', exit: false });
  assert.equal(st.state, 'draining');
  assert.equal(st.sessions_left, 4);
  await waitFor(async () => (await refused({ port: wsPort, host: '127.0.0.1' })) && (await refused({ port: jsPort, host: '127.0.0.1' })), 5000, 'new TCP connections refused');
  assert.equal(await refused({ path: streamPath }), true, 'a new Unix stream connection is refused');
  assert.equal(fs.existsSync(streamPath), false, 'the stream socket file is gone');
  assert.equal(fs.existsSync(dgramPath), true, 'the dgram socket stays for its live sessions');

  // The live sessions carry on.
  ws.send('w2');
  assert.equal((await wsRecv(ws, 5000)).toString(), 'w2');
  us.sock.write('s2');
  assert.equal((await us.recv(5000)).toString(), 's2');
  js.sock.write('j2');
  await waitFor(() => jsGot.endsWith('j2'), 5000, 'the JSONSocket echo while draining');
  known.sendTo(Buffer.from('g2'), 0, 2, dgramPath);
  await waitFor(() => got.includes('g2'), 5000, 'the known sender answered while draining');
  const fresh = closing(t, new DgramSocket(), (s) => s.close());
  fresh.bind(path.join(d, 'new.sock'));
  const freshGot: string[] = [];
  fresh.on('data', (b: Buffer) => freshGot.push(b.toString()));
  fresh.sendTo(Buffer.from('n1'), 0, 2, dgramPath);
  await waitFor(async () => (await listenerCounter(rt, 'ug', 'draining')) >= 1, 5000, 'the new sender refused, counted draining');
  assert.deepEqual(freshGot, []);

  // The stream sessions end as their peers close them; the quiet Unix dgram session after the grace.
  ws.close();
  us.sock.end();
  js.sock.end();
  await waitFor(() => rt.sessionCount() === 0, DRAIN_QUIET_MS + 5000, 'every session ended');
  await waitFor(() => rt.drainStatus().state === 'drained', 3000, 'drained');
  assert.equal(rt.drainStatus().cut, 0);
});

test('drain: a quiet UDP session ends after the drain grace, long before its idle timeout (60 s); it is served until then', async (t) => {
  const port = await freeUdpPort();
  const rt = await proxy(t, { listeners: [{ name: 'u', spec: { protocol: 'UDP', port, address: '127.0.0.1', options: { idle_timeout: 60 } }, rules: echo }], clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }] }, 2);
  const c = await udpClient(t);
  assert.equal((await c.request('a', port)).toString(), 'a');
  const t0 = Date.now();
  rt.drain({ timeoutS: 30, source: 'test', exit: false });
  assert.equal((await c.request('b', port)).toString(), 'b');
  await waitFor(() => rt.drainStatus().state === 'drained', DRAIN_QUIET_MS + 8000, 'drained');
  const ms = Date.now() - t0;
  t.diagnostic(`drained ${ms} ms after the drain began`);
  assert.ok(ms >= DRAIN_QUIET_MS - 100, `drained after ${ms} ms, before the grace`);
  assert.equal(await listenerCounter(rt, 'u', 'draining'), 0);
  const late = await udpClient(t);
  await assert.rejects(late.request('c', port, '127.0.0.1', 300, 1), /no UDP reply/);
  assert.equal(await listenerCounter(rt, 'u', 'draining'), 1);
});

test('drain: a session still live at the deadline is cut with L7_ERR_SESSION_DRAINED; the drain then reports it', async (t) => {
  const port = await freeTcpPort();
  const rt = await proxy(t, { listeners: [{ name: 't', spec: { protocol: 'TCP', port, address: '127.0.0.1' }, rules: echo }], clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }] }, 1);
  const c = closing(t, await streamClient({ port, host: '127.0.0.1' }), (x) => x.sock.destroy());
  c.sock.write('x');
  assert.equal((await c.recv(5000)).toString(), 'x');
  const closed = new Promise<void>((resolve) => c.sock.once('close', () => resolve()));
  rt.drain({ timeoutS: 0.5, source: 'test', exit: false });
  await closed;
  await waitFor(() => rt.drainStatus().state === 'drained', 3000, 'drained');
  assert.equal(rt.drainStatus().cut, 1);
  const ended = await waitFor(async () => (await rt.metrics()).slots[0]?.metrics?.listeners.find((l) => l.name === 't')?.ended.L7_ERR_SESSION_DRAINED, 3000, 'the cut session counted');
  assert.equal(ended, 1);
});
