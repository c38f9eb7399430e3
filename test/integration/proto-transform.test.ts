/**
 * Transform clusters over real sockets: a user function on every message in the pool threads,
 * errors and nulls dropped and counted while the session goes on, the worker serving other
 * sessions while a transform is blocked, and order kept per session under a concurrent pool.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, startProxy, tmpDir, udpEcho, UdpClient, waitFor, wsClient } from '../helpers.ts';
import type { Runtime } from '../../runtime/main/runtime.ts';
import type { WebSocket } from 'ws';

const MODULE = path.resolve(import.meta.dirname, '..', 'fixtures', 'transforms.ts');

function tf(exportName: string, extra: Record<string, unknown> = {}): unknown {
  return { spec: { protocol: 'Transform', module: MODULE, export: exportName, ...extra } };
}

/** A UDP listener on `port` whose route's destination is `destination` (inline or by name). */
function udp(name: string, port: number, route: Record<string, unknown>, rewrite: unknown[] = []): unknown {
  return { name, spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { rewrite, route } }] };
}

async function clusterCount(rt: Runtime, counter: string): Promise<number> {
  let n = 0;
  for (const s of await rt.stats()) for (const c of Object.values(s.clusters)) n += c[counter] ?? 0;
  return n;
}

async function sessionCount(rt: Runtime): Promise<number> {
  return (await rt.stats()).reduce((a, s) => a + s.sessionsActive, 0);
}

test('Transform: upper-cases as a destination and as an ingress chain element (UDP, 2 workers)', async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  const echo = await udpEcho('e:');
  const rt = await startProxy(
    {
      listeners: [udp('direct', p1, { destination: tf('upper') }), udp('chain', p2, { ingress: [tf('upper')], destination: 'up' })],
      clusters: [{ name: 'up', spec: { protocol: 'UDP', port: echo.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] }],
    },
    2,
  );
  const clients: UdpClient[] = [];
  try {
    for (let i = 0; i < 12; i++) clients.push(await UdpClient.open());
    // One datagram each (held by its session while it is set up), no resends: replies are exact.
    await Promise.all(
      clients.map(async (c, i) => {
        const [port, msg, want] = i % 2 === 0 ? [p1, `hello ${i}`, `HELLO ${i}`] : [p2, `chain ${i}`, `e:CHAIN ${i}`];
        c.send(msg, port);
        assert.equal((await c.recv(10_000)).toString(), want);
        c.send(`${msg} again`, port);
        assert.equal((await c.recv(5000)).toString(), want.replace(/(\d+)$/, '$1 AGAIN'));
      }),
    );
  } finally {
    clients.forEach((c) => c.close());
    await rt.shutdown();
    await echo.close();
  }
});

test('Transform: a function that throws drops that message (counted), a non-Uint8Array result too; the session goes on', async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  const rt = await startProxy({ listeners: [udp('picky', p1, { destination: tf('picky') }), udp('wrong', p2, { destination: tf('wrongType') })] }, 1);
  const c = await UdpClient.open();
  try {
    assert.equal((await c.request('good 1', p1)).toString(), 'GOOD 1');
    c.send('bad 1', p1);
    c.send('bad 2', p1);
    c.send('good 2', p1);
    // Order is kept: the reply to good 2 comes after both bad ones were dropped.
    assert.equal((await c.recv()).toString(), 'GOOD 2');
    assert.equal(await clusterCount(rt, 'transform_error'), 2);
    assert.equal(await sessionCount(rt), 1, 'the session survived');
    c.send('a string comes back', p2);
    await waitFor(async () => (await clusterCount(rt, 'transform_error')) === 3, 3000, 'wrong result type counted');
    assert.equal((await c.request('good 3', p1)).toString(), 'GOOD 3');
    assert.equal(await sessionCount(rt), 2);
    const m = await rt.metrics();
    const drops = m.slots.flatMap((s) => s.metrics?.clusters ?? []).reduce((a, x) => a + x.traffic.drops, 0);
    assert.equal(drops, 3, 'dropped messages show in the stages\' drop counts');
  } finally {
    c.close();
    await rt.shutdown();
  }
});

test('Transform: null drops the message, counted apart from errors', async () => {
  const port = await freePort();
  const rt = await startProxy({ listeners: [udp('filter', port, { destination: tf('filter') })] }, 1);
  const c = await UdpClient.open();
  try {
    assert.equal((await c.request('keep 1', port)).toString(), 'keep 1');
    for (let i = 0; i < 5; i++) c.send(`drop ${i}`, port);
    c.send('keep 2', port);
    assert.equal((await c.recv()).toString(), 'keep 2');
    assert.equal(await clusterCount(rt, 'transform_null'), 5);
    assert.equal(await clusterCount(rt, 'transform_error'), 0);
  } finally {
    c.close();
    await rt.shutdown();
  }
});

test('Transform: while a transform is blocked in the pool, the same worker serves other sessions', async () => {
  const dir = tmpDir();
  const latch = path.join(dir, 'latch');
  const [p1, p2] = [await freePort(), await freePort()];
  const rt = await startProxy(
    {
      // A deadline far above the test's bound: the watchdog must not end this one.
      listeners: [udp('slow', p1, { destination: tf('latched', { timeout: 60_000 }) }, [{ path: 'labels/latch', value: latch }]), udp('echo', p2, { destination: 'echo' })],
      clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }],
    },
    1,
  );
  const slow = await UdpClient.open();
  const other = await UdpClient.open();
  try {
    slow.send('wait for me', p1);
    await waitFor(() => fs.existsSync(`${latch}.entered`), 5000, 'the transform to block');
    // The worker's only transform is stuck; new and old sessions through Echo are served.
    for (let i = 0; i < 5; i++) assert.equal((await other.request(`ping ${i}`, p2)).toString(), `ping ${i}`);
    const fresh = await UdpClient.open();
    assert.equal((await fresh.request('new session', p2)).toString(), 'new session');
    fresh.close();
    fs.writeFileSync(latch, '');
    assert.equal((await slow.recv(5000)).toString(), 'WAIT FOR ME');
  } finally {
    fs.writeFileSync(latch, '');
    slow.close();
    other.close();
    await rt.shutdown();
  }
});

test('Transform: replies keep the order of the messages of a session under a concurrent pool (WebSocket, 4 pool threads)', async () => {
  const prev = process.env.L7MP_TRANSFORM_THREADS;
  process.env.L7MP_TRANSFORM_THREADS = '4';
  const port = await freePort();
  const rt = await startProxy({ listeners: [{ name: 'ws', spec: { protocol: 'WebSocket', port }, rules: [{ action: { route: { destination: tf('jitter') } } }] }] }, 1);
  if (prev === undefined) delete process.env.L7MP_TRANSFORM_THREADS;
  else process.env.L7MP_TRANSFORM_THREADS = prev;
  const N = 400;
  const sockets: WebSocket[] = [];
  try {
    for (let k = 0; k < 3; k++) sockets.push(await wsClient(`ws://127.0.0.1:${port}/`));
    await Promise.all(
      sockets.map(
        (ws, k) =>
          new Promise<void>((resolve, reject) => {
            let next = 0;
            const t = setTimeout(() => reject(new Error(`socket ${k}: ${next} of ${N} replies`)), 30_000);
            ws.on('message', (d: Buffer) => {
              try {
                assert.equal(d.toString(), `t:s${k} m${next}`);
              } catch (e) {
                clearTimeout(t);
                reject(e);
                return;
              }
              if (++next === N) {
                clearTimeout(t);
                resolve();
              }
            });
            for (let i = 0; i < N; i++) ws.send(`s${k} m${i}`);
          }),
      ),
    );
  } finally {
    sockets.forEach((s) => s.close());
    await rt.shutdown();
  }
});

test('Transform watchdog: a message that busy-loops its pool thread is dropped at its deadline and counted (transform_timeout); the thread is replaced; the session goes on in order', async () => {
  const prev = process.env.L7MP_TRANSFORM_THREADS;
  // One pool thread: the messages behind the stuck one wait in the queue (queue time is not held against them).
  process.env.L7MP_TRANSFORM_THREADS = '1';
  const port = await freePort();
  let rt: Runtime;
  try {
    rt = await startProxy({ listeners: [udp('spin', port, { destination: tf('spin', { timeout: 300 }) })] }, 1);
  } finally {
    if (prev === undefined) delete process.env.L7MP_TRANSFORM_THREADS;
    else process.env.L7MP_TRANSFORM_THREADS = prev;
  }
  const c = await UdpClient.open();
  try {
    assert.equal((await c.request('one', port)).toString(), 'ONE');
    c.send('spin forever', port);
    c.send('two', port);
    c.send('three', port);
    // Bounded waits: the deadline is 300 ms; a new pool thread has to start.
    assert.equal((await c.recv(15_000)).toString(), 'TWO');
    assert.equal((await c.recv(5000)).toString(), 'THREE');
    assert.equal(await clusterCount(rt, 'transform_timeout'), 1);
    assert.equal(await clusterCount(rt, 'transform_error'), 0);
    assert.equal(await sessionCount(rt), 1, 'the session survived');
    // Again: the replacement thread is killed and replaced in turn.
    c.send('spin again', port);
    c.send('four', port);
    assert.equal((await c.recv(15_000)).toString(), 'FOUR');
    assert.equal(await clusterCount(rt, 'transform_timeout'), 2);
    const m = await rt.metrics();
    const drops = m.slots.flatMap((s) => s.metrics?.clusters ?? []).reduce((a, x) => a + x.traffic.drops, 0);
    assert.equal(drops, 2, 'the stuck messages show in the stage\'s drop count');
  } finally {
    c.close();
    await rt!.shutdown();
  }
});
