/** Fleet bus pure parts: names, labels and selectors, desired-state merge, NATS flags, stats rates. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkToken, defaultNodeId, fleetNames } from '../../fleet/names.ts';
import { checkSelector, formatLabels, matches, parseLabels } from '../../fleet/labels.ts';
import { desiredFor, mergeConfig, type DesiredEntry } from '../../fleet/desired.ts';
import { connectionOptions, redactServers } from '../../fleet/options.ts';
import { StatsSampler } from '../../fleet/telemetry.ts';
import type { RuntimeMetrics } from '../../runtime/worker/stats.ts';

test('names: tokens, default node id, keys and subjects', () => {
  assert.equal(checkToken('--fleet', 'prod_1'), 'prod_1');
  assert.throws(() => checkToken('--node-id', 'a.b'), /--node-id: must be 1\.\.64 letters, digits, '_' or '-', got "a\.b"/);
  assert.equal(defaultNodeId('host.example.com', 42), 'host-example-com-42');
  const n = fleetNames('f');
  assert.equal(n.bucket, 'l7mp-f');
  assert.equal(n.nodeKey('n1'), 'node.n1');
  assert.equal(n.selectorKey('app=x'), `selector.${Buffer.from('app=x').toString('base64url')}`);
  assert.equal(n.resourceKey('Target', 'default', 'udp'), 'k8s.Target.default.udp');
  assert.equal(n.status('n1'), 'l7mp.f.status.n1');
  assert.equal(n.discover, 'l7mp.f.discover');
});

test('labels: parse, canonical form, k8s selector semantics', () => {
  assert.deepEqual(parseLabels('--labels', 'app=transcoder,tier=edge'), { app: 'transcoder', tier: 'edge' });
  assert.deepEqual(parseLabels('--labels', ''), {});
  assert.deepEqual(parseLabels('--labels', 'l7mp.io/role=gw'), { 'l7mp.io/role': 'gw' });
  assert.throws(() => parseLabels('--labels', 'app'), /--labels: each item must be key=value .*got "app"/);
  assert.throws(() => parseLabels('--selector', 'a=1,a=2'), /--selector: label "a" given twice/);
  assert.throws(() => parseLabels('--labels', 'a=b c'), /got "a=b c"/);
  assert.equal(formatLabels({ z: '1', a: '2' }), 'a=2,z=1');
  const l = { app: 'transcoder', tier: 'edge' };
  assert.ok(matches({}, l));
  assert.ok(matches({ matchLabels: { app: 'transcoder' } }, l));
  assert.ok(!matches({ matchLabels: { app: 'worker' } }, l));
  assert.ok(matches({ matchExpressions: [{ key: 'app', operator: 'In', values: ['x', 'transcoder'] }] }, l));
  assert.ok(!matches({ matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['transcoder'] }] }, l));
  assert.ok(matches({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, l));
  assert.ok(matches({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, l));
  assert.ok(!matches({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, l));
  assert.ok(!matches({ matchLabels: { app: 'transcoder' }, matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, l));
  assert.throws(() => checkSelector({ matchFields: [] }, 'X: spec.selector'), /X: spec\.selector\.matchFields: is not supported/);
  assert.throws(() => checkSelector({ matchExpressions: [{ key: 'a', operator: 'Has' }] }, 'S'), /S\.matchExpressions\[0\]\.operator: must be In, NotIn, Exists or DoesNotExist, got "Has"/);
  assert.throws(() => checkSelector({ matchExpressions: [{ key: 'a', operator: 'In' }] }, 'S'), /S\.matchExpressions\[0\]\.values: must be an array of strings for In/);
});

const udp = (name: string, port: number | string) => ({ name, spec: { protocol: 'UDP', port }, rules: [{ action: { route: { destination: 'echo' } } }] });

test('desired state: which keys target a node, in merge order, and its revision', () => {
  const n = fleetNames('f');
  const e = (revision: number, value: unknown): DesiredEntry => ({ revision, value });
  const entries = new Map<string, DesiredEntry>([
    [n.nodeKey('n1'), e(7, { config: { listeners: [udp('mine', 1)] } })],
    [n.selectorKey('app=x'), e(3, { selector: { matchLabels: { app: 'x' } }, config: { clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }] } })],
    [n.selectorKey('app=y'), e(9, { selector: { matchLabels: { app: 'y' } }, config: { listeners: [udp('other', 2)] } })],
    [n.selectorKey('gone'), e(4, null)],
    [n.compiledKey('n1'), e(5, { config: { listeners: [udp('crd', 3)] } })],
  ]);
  const d = desiredFor(entries, n, 'n1', { app: 'x' });
  assert.equal(d.error, undefined);
  assert.deepEqual(d.parts.map((p) => p.source), [n.selectorKey('app=x'), 'compiled.n1', 'node.n1']);
  // Every watched entry counts for the revision (puts and deletes, matching or not): it only grows.
  assert.equal(d.revision, 9);
  const m = mergeConfig({ source: 'base.yaml', config: { admin: { log_level: 'warn' } } }, d.parts, true);
  assert.deepEqual(m.snapshot.listeners.map((l) => l.name), ['crd', 'mine']);
  assert.equal(m.snapshot.admin.log_level, 'warn');

  const bad = desiredFor(new Map([[n.nodeKey('n1'), { revision: 1, value: undefined, parseError: 'Unexpected token' }]]), n, 'n1', {});
  assert.match(bad.error?.message ?? '', /^node\.n1: value must be a JSON object \{config: \.\.\.\}: Unexpected token/);
  const noCfg = desiredFor(new Map([[n.nodeKey('n1'), e(1, { nope: 1 })]]), n, 'n1', {});
  assert.match(noCfg.error?.message ?? '', /^node\.n1\.config: must be an l7mp config object/);
});

test('merge: errors name the key and the field inside the part', () => {
  const base = { source: 'base.yaml', config: { listeners: [udp('a', 1)], clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }] } };
  assert.throws(
    () => mergeConfig(base, [{ source: 'node.n1', config: { listeners: [udp('b', 'x')] } }], false),
    (e: Error & { code?: string }) => e.code === 'L7_ERR_CONFIG_INVALID' && /^node\.n1: listeners\[0\]\.spec\.port: must be an integer .*got "x"$/.test(e.message),
  );
  // A name defined twice is found by the merge and mapped back to the part holding the second one.
  assert.throws(
    () => mergeConfig(base, [{ source: 'selector.abc', config: { listeners: [udp('b', 2), udp('a', 3)] } }], false),
    (e: Error & { code?: string }) => e.code === 'L7_ERR_CONFIG_DUPLICATE' && /^selector\.abc: listeners\[1\]\.name: Listener "a" already defined$/.test(e.message),
  );
  // Parts may reference each other's objects.
  const m = mergeConfig({ source: 'b', config: {} }, [{ source: 'x', config: { listeners: [udp('a', 1)] } }, { source: 'y', config: { clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }] } }], true);
  assert.equal(m.snapshot.clusters[0]?.name, 'echo');
});

test('NATS flags: auth kinds exclude each other; files are read at start', () => {
  const o = connectionOptions({ nats: 'nats://127.0.0.1:4222,nats://h:1', 'nats-user': 'u', 'nats-password': 'p' }, 'x', {});
  assert.deepEqual(o.servers, ['nats://127.0.0.1:4222', 'nats://h:1']);
  assert.equal(o.user, 'u');
  assert.equal(o.pass, 'p');
  assert.equal(o.maxReconnectAttempts, -1);
  assert.equal(connectionOptions({ nats: 'nats://h:1' }, 'x', { L7MP_NATS_TOKEN: 's3cret' }).token, 's3cret');
  assert.throws(() => connectionOptions({}, 'x', {}), /--nats URL is required/);
  assert.throws(() => connectionOptions({ nats: 'http://x y' }, 'x', {}), /--nats: not a NATS URL/);
  assert.throws(() => connectionOptions({ nats: 'nats://h:1', 'nats-user': 'u', 'nats-token': 't' }, 'x', {}), /exclude each other/);
  assert.throws(() => connectionOptions({ nats: 'nats://h:1', 'nats-creds': '/nonexistent/x.creds' }, 'x', {}), /--nats-creds: cannot read \/nonexistent\/x\.creds/);
  assert.throws(() => connectionOptions({ nats: 'nats://h:1', 'nats-tls-cert': '/x' }, 'x', {}), /--nats-tls-cert and --nats-tls-key go together/);
  assert.deepEqual(redactServers(['nats://u:pw@h:1', 'tls://h2:2']), ['nats://***@h:1', 'tls://h2:2']);
});

test('stats: sums workers, rates between samples', () => {
  const traffic = (p: number) => ({ rxPackets: p, txPackets: p, rxBytes: 10 * p, txBytes: 10 * p, drops: 1, setupDrops: 0, dropEmsgsize: 0, dropEnobufs: 0, dropEconnrefused: 0, dropSendError: 0 });
  const metrics = (p: number): RuntimeMetrics => ({
    workers: 2,
    restarts: {},
    slots: [0, 1].map((slot) => ({
      slot,
      metrics: {
        slot, threadId: slot, mailbox: 0, actors: 3, sessionsActive: 1, handoffsIn: 0, handoffsOut: 0, handoffsDropped: 0, accessLogDropped: 0,
        listeners: [{ name: 'in', protocol: 'UDP', sessions: 2, active: 1, traffic: traffic(p), ended: {}, events: {} }],
        clusters: [{ name: 'up', protocol: 'UDP', requests: 2, connections: 2, attempts: 2, retries: 0, failures: 0, active: 1, traffic: traffic(p) }],
      },
    })),
  });
  const s = new StatsSampler();
  const first = s.sample('n1', metrics(100), 1_000);
  assert.deepEqual(first.listeners[0], { name: 'in', protocol: 'UDP', sessions: 4, active: 2, packets: 400, bytes: 4000, drops: 2, pps: 0 });
  const second = s.sample('n1', metrics(150), 3_000);
  assert.equal(second.intervalS, 2);
  assert.equal(second.listeners[0]?.pps, 100); // (600 - 400) packets / 2 s
  assert.equal(second.clusters[0]?.pps, 100);
  assert.deepEqual(s.totals, { sessions: 4, active: 2, pps: 100, bytes: 6000, drops: 2 });
});
