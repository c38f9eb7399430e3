/**
 * Regression: replies must reach the session they belong to. Upstream UDP sockets once used
 * SO_REUSEADDR, so the kernel could give two sessions one ephemeral port; both connected to the
 * same endpoint, they shared a 4-tuple and replies crossed between clients.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startProxy, udpEcho, UdpClient } from '../helpers.ts';

test('200 concurrent UDP sessions to one upstream: every reply reaches its own client', async () => {
  const echo = await udpEcho('e:');
  const port = await freePort();
  const rt = await startProxy({
    listeners: [{ name: 'gw', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'up' } } }] }],
    clusters: [{ name: 'up', spec: { protocol: 'UDP', port: echo.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] }],
  });
  const clients: UdpClient[] = [];
  try {
    for (let i = 0; i < 200; i++) clients.push(await UdpClient.open());
    await Promise.all(clients.map((c, i) => c.request(`c${i}`, port, '127.0.0.1', 2000, 3).then((r) => assert.equal(r.toString(), `e:c${i}`))));
    // The upstream saw 200 distinct source ports: one socket, one port per session.
    assert.equal(echo.peers.size, 200);
    await Promise.all(clients.map((c, i) => c.request(`d${i}`, port).then((r) => assert.equal(r.toString(), `e:d${i}`))));
  } finally {
    clients.forEach((c) => c.close());
    await rt.shutdown();
    await echo.close();
  }
});
