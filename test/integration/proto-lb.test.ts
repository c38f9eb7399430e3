/**
 * Load balancing through the proxy (docs/l7mp-compat.md §4.5): Trivial picks the first endpoint;
 * ConsistentHash over two UDP echo servers (127.0.0.1 and 127.0.0.2, same port: a UDP cluster has
 * one port) keeps each client on one endpoint across requests, sessions, workers and proxies,
 * spreads clients over both, and hashes the metadata at `key` when one is given.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { normalize } from '../../cluster-config/normalize.ts';
import { makeLoadBalancer } from '../../routing/loadbalancer.ts';
import { freePort, freeUdpPort, udpEcho, type UdpClient } from '../helpers.ts';
import { closing, proxy, udpClient, waitTotals } from './proto-helpers.ts';

/** Two UDP echo servers on one port, at 127.0.0.1 ("A:") and 127.0.0.2 ("B:"). */
async function twoEndpoints(t: TestContext): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freeUdpPort('127.0.0.1');
    try {
      const a = await udpEcho('A:', '127.0.0.1', port);
      closing(t, a, (e) => e.close());
      const b = await udpEcho('B:', '127.0.0.2', port);
      closing(t, b, (e) => e.close());
      return port;
    } catch {
      // taken on 127.0.0.2: try another port
    }
  }
  throw new Error('no UDP port free on both 127.0.0.1 and 127.0.0.2');
}

function doc(lport: number, upPort: number, loadbalancer: Record<string, unknown>, idle?: number): Record<string, unknown> {
  return {
    clusters: [
      {
        name: 'pool',
        spec: { protocol: 'UDP', port: upPort },
        endpoints: [{ name: 'a', spec: { address: '127.0.0.1' } }, { name: 'b', spec: { address: '127.0.0.2' } }],
        loadbalancer,
      },
    ],
    listeners: [{ name: 'l', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1', ...(idle === undefined ? {} : { options: { idle_timeout: idle } }) }, rules: [{ action: { route: { destination: 'pool' } } }] }],
  };
}

/** The endpoint ("A" or "B") that answered a client. */
async function which(c: UdpClient, port: number, msg = 'q'): Promise<string> {
  const r = (await c.request(msg, port)).toString();
  assert.ok(r === `A:${msg}` || r === `B:${msg}`, r);
  return r.slice(0, 1);
}

/** The endpoint a locally built balancer predicts for a UDP client (same config, same metadata). */
function predict(d: Record<string, unknown>, c: UdpClient, lport: number): string {
  const lb = makeLoadBalancer(normalize(d).clusters[0] as Parameters<typeof makeLoadBalancer>[0]);
  const meta = { IP: { src_addr: '127.0.0.1', dst_addr: '127.0.0.1' }, UDP: { src_port: c.port, dst_port: lport } };
  return lb.pick(meta, 'x')?.name === 'a' ? 'A' : 'B';
}

test('Trivial always picks the first endpoint', async (t) => {
  const up = await twoEndpoints(t);
  const lport = await freePort();
  await proxy(t, doc(lport, up, { policy: 'Trivial' }));
  const clients = await Promise.all(Array.from({ length: 8 }, () => udpClient(t)));
  assert.deepEqual(await Promise.all(clients.map((c) => which(c, lport))), clients.map(() => 'A'));
});

test('ConsistentHash without a key: each client sticks to one endpoint across requests, sessions, workers and proxies; both endpoints get clients', async (t) => {
  const up = await twoEndpoints(t);
  const [p1, p2] = [await freePort(), await freePort()];
  // Two proxies with the same endpoints (one of them with 2 workers and a short idle timeout).
  const rt1 = await proxy(t, doc(p1, up, { policy: 'ConsistentHash' }, 0.3), 2);
  const d2 = doc(p2, up, { policy: 'HashRing' });
  await proxy(t, d2);
  const clients = await Promise.all(Array.from({ length: 20 }, () => udpClient(t)));
  const first = await Promise.all(clients.map((c) => which(c, p1)));
  // Several requests in the same session.
  for (let round = 0; round < 3; round++) assert.deepEqual(await Promise.all(clients.map((c) => which(c, p1, `r${round}`))), first);
  // New sessions after the idle timeout ended the old ones: same endpoints.
  await waitTotals(rt1, { active: 0, ended: 20 }, 3000);
  assert.deepEqual(await Promise.all(clients.map((c) => which(c, p1, 'new'))), first);
  // Another proxy, built separately: same choice for the same client address:port.
  assert.deepEqual(await Promise.all(clients.map((c) => which(c, p2))), first);
  // And it is the hash of address:port that decides.
  assert.deepEqual(clients.map((c) => predict(d2, c, p2)), first);
  assert.ok(first.includes('A') && first.includes('B'), `all clients on one endpoint: ${first.join('')}`);
});

test('ConsistentHash with key /UDP/src_port hashes the source port', async (t) => {
  const up = await twoEndpoints(t);
  const lport = await freePort();
  const d = doc(lport, up, { policy: 'ConsistentHash', key: '/UDP/src_port' });
  await proxy(t, d);
  const clients = await Promise.all(Array.from({ length: 20 }, () => udpClient(t)));
  const got = await Promise.all(clients.map((c) => which(c, lport)));
  assert.deepEqual(got, clients.map((c) => predict(d, c, lport)));
  // The key matters: hashing address:port instead would put some of these clients elsewhere.
  const byAddrPort = clients.map((c) => predict(doc(lport, up, { policy: 'ConsistentHash' }), c, lport));
  assert.notDeepEqual(got, byAddrPort);
  assert.ok(got.includes('A') && got.includes('B'), got.join(''));
});
