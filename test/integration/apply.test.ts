/** Live config changes: Runtime.apply diffs on every worker, all or nothing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { normalize } from '../../cluster-config/normalize.ts';
import { freePort, freeTcpPort, startProxy, udpEcho, UdpClient, waitFor } from '../helpers.ts';

const echoRoute = { action: { route: { destination: 'echo' } } };

test('a listener added at runtime serves on every worker; removing it ends its sessions and frees the port', async () => {
  const p1 = await freePort();
  const p2 = await freePort();
  const base = {
    listeners: [{ name: 'a', spec: { protocol: 'UDP', port: p1, address: '127.0.0.1' }, rules: [echoRoute] }],
    clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }],
  };
  const rt = await startProxy(base, 2);
  const clients: UdpClient[] = [];
  try {
    await rt.apply(normalize({ ...base, listeners: [...base.listeners, { name: 'b', spec: { protocol: 'UDP', port: p2, address: '127.0.0.1' }, rules: [echoRoute] }] }));
    for (let i = 0; i < 10; i++) clients.push(await UdpClient.open());
    await Promise.all(clients.map((c, i) => c.request(`x${i}`, p2).then((r) => assert.equal(r.toString(), `x${i}`))));
    const stats = await rt.stats();
    assert.equal(stats.reduce((n, s) => n + (s.listeners.b?.sessions ?? 0), 0), 10);
    assert.ok(stats.every((s) => s.listeners.b !== undefined), 'listener b runs on both workers');
    // The old listener kept working through the change.
    assert.equal((await clients[0]!.request('old', p1)).toString(), 'old');

    await rt.apply(normalize(base));
    await waitFor(async () => (await rt.stats()).reduce((n, s) => n + s.sessionsActive, 0) === 1, 2000, 'b sessions to end');
    // Port p2 is free again: nobody answers, and we can bind it.
    const s = (await import('node:dgram')).default.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(p2, '127.0.0.1', () => resolve());
    });
    s.close();
  } finally {
    clients.forEach((c) => c.close());
    await rt.shutdown();
  }
});

test('an apply that fails on a worker (port in use) is rolled back everywhere and throws', async () => {
  const p1 = await freePort();
  const busyPort = await freeTcpPort();
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen({ port: busyPort, host: '127.0.0.1', exclusive: true }, () => r()));
  const p3 = await freePort();
  const base = {
    listeners: [{ name: 'a', spec: { protocol: 'UDP', port: p1, address: '127.0.0.1' }, rules: [echoRoute] }],
    clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }],
  };
  const rt = await startProxy(base, 2);
  try {
    const bad = normalize({
      ...base,
      listeners: [
        ...base.listeners,
        { name: 'fine', spec: { protocol: 'UDP', port: p3, address: '127.0.0.1' }, rules: [echoRoute] },
        { name: 'taken', spec: { protocol: 'TCP', port: busyPort, address: '127.0.0.1' }, rules: [echoRoute] },
      ],
    });
    await assert.rejects(rt.apply(bad), (e: Error & { code?: string }) => e.code === 'L7_ERR_LISTENER_BIND' && /listener "taken"/.test(e.message));
    assert.deepEqual(rt.snapshot.listeners.map((l) => l.name), ['a']);
    const stats = await rt.stats();
    for (const w of stats) {
      const tree = JSON.stringify(await rt.tree());
      assert.ok(!tree.includes('"name":"fine"') && !tree.includes('"name":"taken"'), `no listener of the failed apply is left (worker ${w.slot})`);
    }
    // The listener of the failed apply that did bind has released its port.
    const s = (await import('node:dgram')).default.createSocket('udp4');
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          s.once('error', () => resolve(false));
          s.bind(p3, '127.0.0.1', () => resolve(true));
        }),
      2000,
      'port of the rolled-back listener to be free',
    );
    s.close();
    const c = await UdpClient.open();
    assert.equal((await c.request('still', p1)).toString(), 'still');
    c.close();
  } finally {
    busy.close();
    await rt.shutdown();
  }
});

test('removing a cluster ends the sessions that go through it; other sessions go on', async () => {
  const e1 = await udpEcho('one:');
  const p1 = await freePort();
  const p2 = await freePort();
  const doc = {
    listeners: [
      { name: 'via-up', spec: { protocol: 'UDP', port: p1, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'up' } } }] },
      { name: 'via-echo', spec: { protocol: 'UDP', port: p2, address: '127.0.0.1' }, rules: [echoRoute] },
    ],
    clusters: [
      { name: 'up', spec: { protocol: 'UDP', port: e1.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] },
      { name: 'echo', spec: { protocol: 'Echo' } },
    ],
  };
  const rt = await startProxy(doc, 1);
  const a = await UdpClient.open();
  const b = await UdpClient.open();
  try {
    assert.equal((await a.request('hi', p1)).toString(), 'one:hi');
    assert.equal((await b.request('hi', p2)).toString(), 'hi');
    await rt.apply(normalize({ ...doc, clusters: [doc.clusters[1]] }));
    await waitFor(async () => (await rt.stats())[0]!.sessionsEnded === 1, 2000, 'the session through "up" to end');
    assert.equal((await b.request('still', p2)).toString(), 'still');
  } finally {
    a.close();
    b.close();
    await rt.shutdown();
    await e1.close();
  }
});
