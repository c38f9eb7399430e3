import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startProxy, udpEcho, UdpClient } from '../helpers.ts';

test('UDP listener to UDP cluster, 2 workers, 20 clients', async () => {
  const echo = await udpEcho('echo: ');
  const port = await freePort();
  const rt = await startProxy({
    listeners: [{ name: 'l', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'UDP', port: echo.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }] }],
  }, 2);
  try {
    const clients = await Promise.all(Array.from({ length: 20 }, () => UdpClient.open()));
    const replies = await Promise.all(clients.map((c, i) => c.request(`m${i}`, port)));
    replies.forEach((r, i) => assert.equal(r.toString(), `echo: m${i}`));
    const stats = await rt.stats();
    const total = stats.reduce((a, s) => a + s.sessionsActive, 0);
    assert.equal(total, 20);
    assert.ok(stats.every((s) => s.sessionsActive > 0), JSON.stringify(stats));
    console.log(JSON.stringify(stats));
    clients.forEach((c) => c.close());
  } finally {
    await rt.shutdown();
    await echo.close();
  }
});
