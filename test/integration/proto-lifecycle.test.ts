/**
 * Upstream failures, retries and connect timeouts (docs/l7mp-compat.md §4.6), and listener bind
 * failures: a port in use is an error naming the listener and the address (l7mp bug B22 fixed), a
 * stale Unix socket file is replaced, a live one is an error, and the file is removed on shutdown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, freeTcpPort, freeUdpPort, startProxy, tmpDir, waitFor } from '../helpers.ts';
import { blackHole, closing, proxy, sessions, startFailure, StreamPeer, streamServer, udpClient, waitTotals } from './proto-helpers.ts';

const ep = (address = '127.0.0.1') => [{ spec: { address } }];

test('UDP upstream down: the client gets nothing and the session ends (ICMP unreachable is an upstream failure)', async (t) => {
  const dead = await freeUdpPort(); // nobody listens here
  const lport = await freePort();
  const rt = await proxy(t, { listeners: [{ name: 'l', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'UDP', port: dead }, endpoints: ep() } } } }] }] });
  const c = await udpClient(t);
  c.send('anyone?', lport);
  await waitTotals(rt, { active: 0, ended: 1 });
  await assert.rejects(c.recv(50));
});

test('TCP upstream down: the downstream connection is closed without data and the session ends', async (t) => {
  const dead = await freeTcpPort();
  const lport = await freeTcpPort();
  const rt = await proxy(t, { listeners: [{ name: 'l', spec: { protocol: 'TCP', port: lport, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'TCP', port: dead }, endpoints: ep() } } } }] }] });
  const c = await StreamPeer.open(t, { host: '127.0.0.1', port: lport });
  c.sock.write('hello?');
  await waitFor(() => c.closed, 3000, 'the downstream to be closed');
  assert.equal(c.received, '');
  await waitTotals(rt, { active: 0, ended: 1 });
});

test('retry_on connect-failure (3 retries, 200 ms): a TCP upstream that comes up after ~300 ms is reached', async (t) => {
  const upPort = await freeTcpPort();
  const lport = await freeTcpPort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'TCP', port: lport, address: '127.0.0.1' },
        rules: [{ action: { route: { destination: { spec: { protocol: 'TCP', port: upPort }, endpoints: ep() }, retry: { retry_on: 'connect-failure', num_retries: 3, timeout: 200 } } } }],
      },
    ],
  });
  const start = Date.now();
  const c = await StreamPeer.open(t, { host: '127.0.0.1', port: lport });
  c.sock.write('early bird');
  // The upstream starts late; the proxy holds the downstream's bytes meanwhile.
  const late = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      streamServer(t, { port: upPort, host: '127.0.0.1' }, 'late: ').then(() => resolve(), reject);
    }, 300);
    closing(t, timer, (x) => clearTimeout(x));
  });
  await late;
  await c.expect('late: early bird');
  assert.ok(Date.now() - start >= 300);
  assert.equal((await sessions(rt))[0]?.status, 'CONNECTED');
  assert.deepEqual(await waitTotals(rt, { active: 1, ended: 0 }), { active: 1, ended: 0 });
});

test('without retries the same late upstream is not reached', async (t) => {
  const upPort = await freeTcpPort();
  const lport = await freeTcpPort();
  const rt = await proxy(t, { listeners: [{ name: 'l', spec: { protocol: 'TCP', port: lport, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'TCP', port: upPort }, endpoints: ep() }, retry: { timeout: 200 } } } }] }] });
  const c = await StreamPeer.open(t, { host: '127.0.0.1', port: lport });
  c.sock.write('x');
  await waitTotals(rt, { active: 0, ended: 1 });
  await waitFor(() => c.closed, 3000, 'the downstream to be closed');
});

test('retry.timeout bounds each connect attempt: a WebSocket upgrade that never completes fails after ~timeout', async (t) => {
  const hole = await blackHole(t);
  const lport = await freePort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'UDP', port: lport, address: '127.0.0.1' },
        rules: [{ action: { route: { destination: { spec: { protocol: 'WebSocket', port: hole.port }, endpoints: ep() }, retry: { retry_on: 'never', timeout: 300 } } } }],
      },
    ],
  });
  const c = await udpClient(t);
  const start = Date.now();
  c.send('stuck', lport);
  await waitFor(() => hole.accepted === 1, 2000, 'the upgrade request');
  await waitTotals(rt, { active: 0, ended: 1 }, 3000);
  const took = Date.now() - start;
  assert.ok(took >= 280 && took < 1500, `ended after ${took} ms, timeout 300 ms`);
  // The aborted attempt released its connection.
  await waitFor(() => hole.closed === 1, 2000, 'the upstream connection to be closed');
  await assert.rejects(c.recv(20));
});

test('retry.timeout with connect-failure: 2 attempts, each bounded, timeout apart, then the session ends', async (t) => {
  const hole = await blackHole(t);
  const lport = await freePort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'UDP', port: lport, address: '127.0.0.1' },
        rules: [{ action: { route: { destination: { spec: { protocol: 'WebSocket', port: hole.port }, endpoints: ep() }, retry: { retry_on: 'connect-failure', num_retries: 1, timeout: 200 } } } }],
      },
    ],
  });
  const c = await udpClient(t);
  const start = Date.now();
  c.send('stuck', lport);
  await waitTotals(rt, { active: 0, ended: 1 }, 3000);
  const took = Date.now() - start;
  // attempt 1 times out at ~200 ms, attempt 2 starts at ~400 ms and times out at ~600 ms.
  assert.ok(took >= 550 && took < 2000, `ended after ${took} ms`);
  assert.equal(hole.accepted, 2);
  await waitFor(() => hole.closed === 2, 2000, 'both upstream connections to be closed');
});

for (const family of ['127.0.0.1', '::1']) {
  test(`a TCP listener on a port in use on ${family}: startProxy rejects naming the listener and the address`, async (t) => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, family, () => r()));
    closing(t, busy, (s) => new Promise<void>((r) => s.close(() => r())));
    const port = (busy.address() as net.AddressInfo).port;
    const shown = family.includes(':') ? `[${family}]:${port}` : `${family}:${port}`;
    const e = await startFailure({ listeners: [{ name: 'busy-l', spec: { protocol: 'TCP', port, address: family }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }] }, 2);
    assert.equal(e.code, 'L7_ERR_WORKER_START');
    assert.match(e.message, /listener "busy-l"/);
    assert.ok(e.message.includes(`TCP ${shown}`), e.message);
    assert.match(e.message, /EADDRINUSE/);
    // Reported once, not once per worker.
    assert.equal(e.message.split('listener "busy-l"').length, 2, e.message);
  });
}

test('a UDP listener on a port in use: startProxy rejects naming the listener and the address', async (t) => {
  const busy = dgram.createSocket('udp4');
  await new Promise<void>((r) => busy.bind(0, '127.0.0.1', () => r()));
  closing(t, busy, (s) => s.close());
  const port = busy.address().port;
  const e = await startFailure({ listeners: [{ name: 'busy-u', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }] });
  assert.equal(e.code, 'L7_ERR_WORKER_START');
  assert.ok(e.message.includes(`listener "busy-u": cannot bind UDP 127.0.0.1:${port}`), e.message);
});

test('a stale Unix socket file is replaced and works; the file is removed after shutdown', async (t) => {
  const dir = closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
  const file = path.join(dir, 'stale.sock');
  // Leave a socket file nobody listens on: a hard link to a listening socket outlives the server.
  const tmp = net.createServer();
  await new Promise<void>((r) => tmp.listen(path.join(dir, 'tmp.sock'), () => r()));
  fs.linkSync(path.join(dir, 'tmp.sock'), file);
  await new Promise<void>((r) => tmp.close(() => r()));
  assert.ok(fs.lstatSync(file).isSocket());
  const rt = await startProxy({ listeners: [{ name: 'unix', spec: { protocol: 'UnixDomainSocket', filename: file }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }] });
  let down = false;
  t.after(async () => {
    if (!down) await rt.shutdown();
  });
  const c = await StreamPeer.open(t, { path: file });
  c.sock.write('fresh');
  await c.expect('fresh');
  c.sock.destroy();
  await rt.shutdown();
  down = true;
  assert.equal(fs.existsSync(file), false, 'the socket file is removed on shutdown');
});

test('a Unix socket path that someone listens on, or that is not a socket, is a bind error', async (t) => {
  const dir = closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
  const live = path.join(dir, 'live.sock');
  const other = net.createServer();
  await new Promise<void>((r) => other.listen(live, () => r()));
  closing(t, other, (s) => new Promise<void>((r) => s.close(() => r())));
  const rules = [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }];
  const e1 = await startFailure({ listeners: [{ name: 'u1', spec: { protocol: 'UnixDomainSocket', filename: live }, rules }] });
  assert.equal(e1.code, 'L7_ERR_WORKER_START');
  assert.equal(e1.message, `listener "u1": ${live} is in use by another process`);
  const plain = path.join(dir, 'plain.txt');
  fs.writeFileSync(plain, 'not a socket');
  const e2 = await startFailure({ listeners: [{ name: 'u2', spec: { protocol: 'UnixDomainSocket', filename: plain }, rules }] });
  assert.equal(e2.code, 'L7_ERR_WORKER_START');
  assert.equal(e2.message, `listener "u2": ${plain} exists and is not a socket`);
  // Neither was touched.
  assert.equal(fs.readFileSync(plain, 'utf8'), 'not a socket');
  assert.ok(fs.lstatSync(live).isSocket());
});

test('shutdown does not wait for half-open TCP and Unix peers that never close their side', async (t) => {
  const dir = closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
  const file = path.join(dir, 'h.sock');
  const port = await freeTcpPort();
  const echo = [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }];
  const rt = await startProxy({
    listeners: [
      { name: 'tcp', spec: { protocol: 'TCP', port, address: '127.0.0.1' }, rules: echo },
      { name: 'unix', spec: { protocol: 'UnixDomainSocket', filename: file }, rules: echo },
    ],
  });
  let down = false;
  t.after(async () => {
    if (!down) await rt.shutdown();
  });
  const peers: Array<{ sock: net.Socket; data: string; fin: boolean }> = [];
  for (const opts of [{ host: '127.0.0.1', port }, { path: file }]) {
    const sock = net.createConnection({ ...opts, allowHalfOpen: true });
    closing(t, sock, (s) => s.destroy());
    sock.on('error', () => {});
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const state = { sock, data: '', fin: false };
    sock.on('data', (d: Buffer) => {
      state.data += d.toString();
    });
    sock.on('end', () => {
      state.fin = true; // and never end our side
    });
    sock.write('hi');
    peers.push(state);
  }
  await waitFor(() => peers.every((p) => p.data === 'hi'), 3000, 'both echoes');
  const start = Date.now();
  await rt.shutdown();
  down = true;
  const took = Date.now() - start;
  assert.ok(took < 1000, `shutdown took ${took} ms`);
  // The FINs were sent before shutdown resolved; reading them is this process's next turns.
  await waitFor(() => peers.every((p) => p.fin), 2000, 'each peer to get a FIN');
  assert.equal(fs.existsSync(file), false);
});
