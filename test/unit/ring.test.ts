import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerRing, placeSingle } from '../../runtime/ring.ts';
import { decodeEnvelope, encodeHandoff } from '../../runtime/worker/envelope.ts';

const keys = Array.from({ length: 5000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:${1024 + (i % 50000)}`);

test('ring: removing a worker moves only the keys it owned; adding it back restores them', () => {
  const full = new WorkerRing([0, 1, 2, 3]);
  const less = new WorkerRing([0, 1, 3]);
  const again = new WorkerRing([0, 1, 2, 3]);
  let moved = 0;
  for (const k of keys) {
    const before = full.owner(k);
    const after = less.owner(k);
    if (before !== after) {
      moved++;
      assert.equal(before, 2, `key ${k} moved from ${before}, which was not removed`);
    }
    assert.equal(again.owner(k), before);
  }
  // Worker 2 owned roughly a quarter of the keys; all of those, and only those, moved.
  assert.ok(moved > keys.length * 0.15 && moved < keys.length * 0.35, `moved ${moved}`);
});

test('ring: every live worker owns a share of the keys', () => {
  const r = new WorkerRing([0, 1]);
  const count = [0, 0];
  for (const k of keys) (count as number[])[r.owner(k)]++;
  assert.ok((count[0] as number) > 1500 && (count[1] as number) > 1500, JSON.stringify(count));
});

test('ring: one worker owns everything; an empty ring owns nothing', () => {
  assert.equal(new WorkerRing([3]).owner('a:1'), 3);
  assert.equal(new WorkerRing([]).owner('a:1'), -1);
});

test('single-placement listeners land on a stable slot', () => {
  assert.equal(placeSingle('uds', 1), 0);
  const s = placeSingle('uds-listener', 4);
  assert.ok(s >= 0 && s < 4);
  assert.equal(placeSingle('uds-listener', 4), s);
});

test('hand-off envelopes round-trip through msgpack; malformed ones decode to null', () => {
  const data = new Uint8Array([1, 2, 3, 255]);
  const buf = encodeHandoff({ listener: 'l', address: '::1', port: 5000, data });
  // An owned buffer (transferable), not a view into msgpackr's shared encode buffer.
  assert.equal(buf.byteOffset, 0);
  assert.equal(buf.buffer.byteLength, buf.byteLength);
  const h = decodeEnvelope(buf);
  assert.deepEqual(h && { ...h, data: [...h.data] }, { listener: 'l', address: '::1', port: 5000, data: [1, 2, 3, 255] });
  assert.equal(decodeEnvelope(new Uint8Array([0xc1])), null);
  assert.equal(decodeEnvelope(new Uint8Array([0x81, 0xa1, 0x74, 0x02])), null);
});

test('cluster envelopes round-trip with bytes inside; a hand-off decoder ignores them', async () => {
  const { decodeAny, encodeClusterMessage, EnvelopeType } = await import('../../runtime/worker/envelope.ts');
  const data = new Uint8Array([0, 1, 2, 255]);
  const buf = encodeClusterMessage('sync', 3, [1, '"room"', data]);
  assert.equal(buf.byteOffset, 0);
  assert.equal(buf.byteLength, buf.buffer.byteLength, 'an owned buffer, ready to transfer');
  const e = decodeAny(buf);
  assert.equal(e?.type, EnvelopeType.Cluster);
  const c = e?.type === EnvelopeType.Cluster ? e.cluster : null;
  assert.equal(c?.cluster, 'sync');
  assert.equal(c?.from, 3);
  const m = c?.msg as [number, string, Uint8Array];
  assert.deepEqual([m[0], m[1], [...m[2]]], [1, '"room"', [0, 1, 2, 255]]);
  assert.equal(decodeEnvelope(buf), null);
});
