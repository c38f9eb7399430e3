/**
 * Upstream health, pure parts: the load balancers' pick with endpoints to avoid and endpoint
 * health (Trivial: next in order; ConsistentHash: next on the ring; panic when none is usable),
 * outlier detection's ejection rules on a fake clock, and the config fields' defaults and errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalize } from '../../cluster-config/normalize.ts';
import { toDocument } from '../../cluster-config/document.ts';
import { makeLoadBalancer } from '../../routing/loadbalancer.ts';
import { ClusterHealth, type HealthView } from '../../routing/health.ts';
import { DEFAULT_OUTLIER_DETECTION, type ClusterConfig, type OutlierDetectionConfig } from '../../cluster-config/snapshot.ts';

function cluster(policy: string, names: string[], extra: Record<string, unknown> = {}): ClusterConfig {
  const doc = { clusters: [{ name: 'c', spec: { protocol: 'UDP', port: 9 }, endpoints: names.map((n, i) => ({ name: n, spec: { address: `127.0.0.${i + 1}` } })), loadbalancer: { policy }, ...extra }] };
  return normalize(doc).clusters[0] as ClusterConfig;
}

/** A health view with a fixed set of unusable endpoints. */
function down(...names: string[]): HealthView {
  return { usable: (n) => !names.includes(n), anyDown: () => names.length > 0 };
}

const meta = (port: number): Record<string, unknown> => ({ IP: { src_addr: '10.0.0.1' }, UDP: { src_port: port } });

test('Trivial: the first endpoint; with it avoided or down, the next one in order; all down or avoided: panic picks anyway', () => {
  const lb = makeLoadBalancer(cluster('Trivial', ['a', 'b', 'c']));
  const m = meta(1);
  assert.equal(lb.pick(m, 's')?.name, 'a');
  assert.equal(lb.pick(m, 's', ['a'])?.name, 'b');
  assert.equal(lb.pick(m, 's', ['a', 'b'])?.name, 'c');
  assert.equal(lb.pick(m, 's', null, down('a'))?.name, 'b');
  assert.equal(lb.pick(m, 's', ['b'], down('a'))?.name, 'c');
  // Preference: not avoided (though down) over avoided; usable-but-avoided over nothing.
  assert.equal(lb.pick(m, 's', ['a', 'b'], down('c'))?.name, 'c');
  assert.equal(lb.pick(m, 's', ['a'], down('b', 'c'))?.name, 'b');
  assert.equal(lb.pick(m, 's', ['a', 'b', 'c'], down('b'))?.name, 'a');
  assert.equal(lb.pick(m, 's', null, down('a', 'b', 'c'))?.name, 'a');
  assert.equal(makeLoadBalancer(cluster('Trivial', [])).pick(m, 's', ['x'], down('x')), null);
});

test('ConsistentHash: an avoided or down endpoint gives the next endpoint on the ring for that key; others keep theirs', () => {
  const c = cluster('ConsistentHash', ['a', 'b', 'c', 'd']);
  const lb = makeLoadBalancer(c);
  const keys = Array.from({ length: 200 }, (_, i) => meta(1000 + i));
  let moved = 0;
  for (const k of keys) {
    const home = lb.pick(k, 's')?.name as string;
    // Avoiding another endpoint changes nothing for this key.
    const other = home === 'a' ? 'b' : 'a';
    assert.equal(lb.pick(k, 's', [other])?.name, home);
    assert.equal(lb.pick(k, 's', null, down(other))?.name, home);
    // Its own endpoint avoided: another one, the same whether avoided or down, and stable.
    const next = lb.pick(k, 's', [home])?.name as string;
    assert.notEqual(next, home);
    assert.equal(lb.pick(k, 's', null, down(home))?.name, next);
    assert.equal(makeLoadBalancer(c).pick(k, 's', [home])?.name, next);
    // Two gone: a third one, never one of them.
    const third = lb.pick(k, 's', [home], down(next))?.name as string;
    assert.ok(third !== home && third !== next);
    moved++;
  }
  assert.equal(moved, 200);
  // The next endpoint on the ring is spread over the others, not always the same one.
  const nexts = new Set(keys.filter((k) => lb.pick(k, 's')?.name === 'a').map((k) => lb.pick(k, 's', ['a'])?.name));
  assert.ok(nexts.size >= 2, [...nexts].join());
  // Panic: all down, the plain choice.
  for (const k of keys.slice(0, 20)) assert.equal(lb.pick(k, 's', null, down('a', 'b', 'c', 'd'))?.name, lb.pick(k, 's')?.name);
});

function health(names: string[], cfg: Partial<OutlierDetectionConfig>, clock: { t: number }): ClusterHealth {
  const h = new ClusterHealth('c', () => clock.t);
  h.configure(names.map((n) => ({ name: n, spec: { address: n } })), { ...DEFAULT_OUTLIER_DETECTION, ...cfg });
  return h;
}

test('outlier detection: consecutive failures eject for base x ejections in a row (capped), a success resets the count, the multiplier decays per interval', () => {
  const clock = { t: 1_000_000 };
  const h = health(['a', 'b'], { consecutive_failures: 3, base_ejection_time: 100, max_ejection_time: 250, interval: 1000 }, clock);
  assert.equal(h.failure('a'), false);
  assert.equal(h.failure('a'), false);
  h.success('a');
  assert.equal(h.failure('a'), false);
  assert.equal(h.failure('a'), false);
  assert.equal(h.usable('a'), true);
  assert.equal(h.failure('a'), true);
  assert.equal(h.usable('a'), false);
  assert.equal(h.anyDown(), true);
  // While ejected, failures are counted but do not extend it.
  assert.equal(h.failure('a'), false);
  clock.t += 100;
  assert.equal(h.usable('a'), true);
  assert.equal(h.anyDown(), false);
  // Again at once: twice as long; then capped at max_ejection_time.
  for (let i = 0; i < 2; i++) h.failure('a');
  assert.equal(h.failure('a'), true);
  clock.t += 199;
  assert.equal(h.usable('a'), false);
  clock.t += 1;
  assert.equal(h.usable('a'), true);
  for (let i = 0; i < 3; i++) h.failure('a');
  clock.t += 249;
  assert.equal(h.usable('a'), false);
  clock.t += 1;
  assert.equal(h.usable('a'), true);
  // Two intervals in: the multiplier (3) went down by two, so the next ejection is 2 x base.
  clock.t += 2000;
  for (let i = 0; i < 3; i++) h.failure('a');
  clock.t += 199;
  assert.equal(h.usable('a'), false);
  clock.t += 1;
  assert.equal(h.usable('a'), true);
  const m = h.metrics().find((x) => x.endpoint === 'a');
  assert.equal(m?.ejections, 4);
  assert.equal(m?.failures, 15);
  assert.equal(m?.successes, 1);
});

test('outlier detection: max_ejection_percent bounds ejections (at least one always); disabled never ejects; the active verdict counts too', () => {
  const clock = { t: 5000 };
  const h = health(['a', 'b', 'c', 'd'], { consecutive_failures: 1, max_ejection_percent: 50 }, clock);
  assert.equal(h.failure('a'), true);
  assert.equal(h.failure('b'), true);
  assert.equal(h.failure('c'), false);
  assert.equal(h.usable('c'), true);
  const one = health(['a', 'b', 'c'], { consecutive_failures: 1, max_ejection_percent: 0 }, clock);
  assert.equal(one.failure('a'), true);
  assert.equal(one.failure('b'), false);
  const off = health(['a'], { enabled: false, consecutive_failures: 1 }, clock);
  assert.equal(off.failure('a'), false);
  assert.equal(off.usable('a'), true);
  assert.equal(off.setActive('a', false), true);
  assert.equal(off.setActive('a', false), false);
  assert.equal(off.usable('a'), false);
  assert.deepEqual(off.metrics().map((x) => [x.healthy, x.ejected, x.activeHealthy]), [[false, false, false]]);
  // A config change keeps the state of endpoints that stay and forgets the others.
  off.configure([{ name: 'a', spec: { address: 'a' } }, { name: 'z', spec: { address: 'z' } }], DEFAULT_OUTLIER_DETECTION);
  assert.equal(off.usable('a'), false);
  assert.deepEqual([...off.endpoints.keys()], ['a', 'z']);
});

test('config: outlier_detection is on with Envoy defaults; health_check gets defaults, needs a port, checks hex; both survive toDocument', () => {
  const c = cluster('Trivial', ['a']);
  assert.deepEqual(c.outlier_detection, { enabled: true, consecutive_failures: 5, base_ejection_time: 30000, max_ejection_time: 300000, max_ejection_percent: 10, interval: 10000 });
  assert.equal(c.health_check, undefined);
  const h = cluster('Trivial', ['a'], { health_check: { send: 'ping' }, outlier_detection: { consecutive_failures: 2 } });
  assert.deepEqual(h.health_check, { protocol: 'UDP', port: 9, interval: 5000, timeout: 1000, unhealthy_threshold: 3, healthy_threshold: 2, send: 'ping', encoding: 'utf8' });
  assert.equal(h.outlier_detection?.consecutive_failures, 2);
  assert.equal(h.outlier_detection?.base_ejection_time, 30000);
  const doc = { clusters: [{ name: 'c', spec: { protocol: 'UDP', port: 9 }, endpoints: [{ spec: { address: '127.0.0.1' } }], health_check: { send: 'ping' }, outlier_detection: { consecutive_failures: 2 } }] };
  const snap = normalize(doc);
  assert.deepEqual(normalize(toDocument(snap)).clusters, snap.clusters);
  assert.throws(() => cluster('Trivial', ['a'], { health_check: { send: 'zz', encoding: 'hex' } }), /clusters\[0\]\.health_check\.send: must be hex/);
  assert.throws(() => cluster('Trivial', ['a'], { outlier_detection: { consecutive_failures: 0 } }), /consecutive_failures/);
  assert.throws(() => cluster('Trivial', ['a'], { health_check: { interval: 1 } }), /health_check\.interval/);
  const uds = { clusters: [{ name: 'u', spec: { protocol: 'UnixDomainSocket' }, endpoints: [{ spec: { address: '/tmp/x.sock' } }], health_check: {} }] };
  assert.throws(() => normalize(uds), /clusters\[0\]\.health_check\.port: must be set/);
});
