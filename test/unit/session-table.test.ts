/**
 * The per-worker session table (runtime/session-table.ts): what a worker writes when a UDP session
 * is established, the main thread reads back after the worker died. No threads: the writer and
 * the reader share one SharedArrayBuffer here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalize } from '../../cluster-config/normalize.ts';
import type { ConfigSnapshot } from '../../cluster-config/snapshot.ts';
import type { RecoveryFacts } from '../../actors/rebuild.ts';
import { SessionTableWriter, newSessionTable, readSessionTable } from '../../runtime/session-table.ts';

function snapshot(listenerPort = 9001): ConfigSnapshot {
  return normalize({
    listeners: [
      { name: 'tcp', spec: { protocol: 'TCP', port: 9000 }, rules: [{ action: { route: { destination: 'b' } } }] },
      { name: 'gw', spec: { protocol: 'UDP', port: listenerPort }, rules: [{ action: { route: { destination: 'up' } } }] },
    ],
    clusters: [
      { name: 'b', spec: { protocol: 'TCP', port: 80 }, endpoints: [{ spec: { address: '127.0.0.1' } }] },
      { name: 'up', spec: { protocol: 'UDP', port: 5000 }, endpoints: [{ name: 'e1', spec: { address: '127.0.0.1' } }, { name: 'e2', spec: { address: '::1' } }] },
    ],
  });
}

function facts(snap: ConfigSnapshot, over: Partial<RecoveryFacts> = {}): RecoveryFacts {
  const route = snap.routes.find((r) => r.destination === 'up')?.name as string;
  return {
    listener: 'gw',
    listenerPort: 9001,
    route,
    cluster: 'up',
    endpoint: 'e2',
    peerAddress: '::ffff:10.1.2.3',
    peerPort: 40000,
    shared: false,
    remoteAddress: '::1',
    remotePort: 5000,
    localAddress: '::1',
    localPort: 51234,
    ...over,
  };
}

test('session table: live records read back with names, addresses and ports; freed ones do not', () => {
  const snap = snapshot();
  const sab = newSessionTable(16);
  const w = new SessionTableWriter(sab, () => snap);
  const a = w.put(facts(snap), -1);
  const b = w.put(facts(snap, { peerAddress: '2001:db8::7', peerPort: 1, shared: true, endpoint: 'e1', remoteAddress: '127.0.0.1', localAddress: '127.0.0.1', localPort: 60000 }), -1);
  const c = w.put(facts(snap, { peerPort: 3 }), -1);
  assert.deepEqual([a, b, c], [0, 1, 2]);
  w.drop(b);
  assert.equal(w.live, 2);
  const { records, stale, torn } = readSessionTable(sab, snap);
  assert.deepEqual([stale, torn], [0, 0]);
  assert.deepEqual(
    records.map((r) => [r.listener, r.cluster, r.endpoint, r.peerAddress, r.peerPort, r.shared, r.remoteAddress, r.remotePort, r.localAddress, r.localPort]),
    [
      ['gw', 'up', 'e2', '::ffff:10.1.2.3', 40000, false, '::1', 5000, '::1', 51234],
      ['gw', 'up', 'e2', '::ffff:10.1.2.3', 3, false, '::1', 5000, '::1', 51234],
    ],
  );
  assert.equal(records[0]?.route, facts(snap).route);
  // A freed record is reused; a rewrite (an upstream reconnect) keeps its handle.
  assert.equal(w.put(facts(snap, { peerPort: 4 }), -1), 1);
  assert.equal(w.put(facts(snap, { peerPort: 5, localPort: 50000 }), a), a);
  assert.deepEqual(readSessionTable(sab, snap).records.map((r) => [r.peerPort, r.localPort]), [[5, 50000], [4, 51234], [3, 51234]]);
});

test('session table: a record the worker was writing when it died is skipped; one from another config is stale', () => {
  const snap = snapshot();
  const sab = newSessionTable(8);
  const w = new SessionTableWriter(sab, () => snap);
  w.put(facts(snap), -1);
  const h = w.put(facts(snap, { peerPort: 2 }), -1);
  // Killed mid-write: the state word (written first as 1, last as 2) still says "being written".
  new Int32Array(sab)[4 + h * 52] = 1;
  const other = snapshot(9002);
  const r = readSessionTable(sab, other);
  assert.equal(r.torn, 1);
  assert.equal(r.stale, 1, 'the listener index names a listener with another port now');
  assert.equal(r.records.length, 0);
  assert.equal(readSessionTable(sab, snap).records.length, 1);
});

test('session table: full, or names the config does not have, records nothing (and says so)', () => {
  const snap = snapshot();
  const sab = newSessionTable(2);
  const w = new SessionTableWriter(sab, () => snap);
  assert.equal(w.put(facts(snap), -1), 0);
  assert.equal(w.put(facts(snap), -1), 1);
  assert.equal(w.put(facts(snap), -1), -1);
  assert.equal(w.put(facts(snap, { listener: 'nope' }), -1), -1);
  assert.equal(w.put(facts(snap, { peerAddress: 'x'.repeat(47) }), -1), -1);
  assert.equal(w.skipped, 3);
  // A record that can no longer be written is freed, not left with stale facts.
  assert.equal(w.put(facts(snap, { route: 'gone' }), 0), -1);
  assert.equal(readSessionTable(sab, snap).records.length, 1);
  // No snapshot yet (a worker before start): nothing is recorded.
  assert.equal(new SessionTableWriter(newSessionTable(2), () => null).put(facts(snap), -1), -1);
});
