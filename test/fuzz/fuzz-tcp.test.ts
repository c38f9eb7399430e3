/**
 * TCP listener fuzz (issue 12 item 1): arbitrary bytes in arbitrary chunkings, over 127.0.0.1
 * and ::1, to a TCP listener routed to Echo. TCP does not parse, so the property is exact: every
 * connection gets back exactly the bytes it sent and is closed after its FIN; the worker never
 * died, and a plain exchange still works afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { freeTcpPort } from '../helpers.ts';
import { listenerCounter } from '../integration/proto-helpers.ts';
import { assertWorkersAlive, bytes, chunked, params, shot, target } from './fuzz-helpers.ts';

test('TCP listener: fuzzed byte streams are echoed exactly, the worker never dies', async (t) => {
  const port = await freeTcpPort();
  const x = await target(t, { listeners: [{ name: 'tcp', spec: { protocol: 'TCP', port, address: '::' }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }] });
  const started = Date.now();
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(chunked(bytes(2048)), fc.boolean(), async (chunks, v6) => {
      runs++;
      const sent = Buffer.concat(chunks);
      const r = await shot({ host: v6 ? '::1' : '127.0.0.1', port }, chunks, 3000);
      assert.ok(r.closed, 'closed after the FIN');
      assert.ok(r.data.equals(sent), `echoed ${r.data.length} of ${sent.length} bytes`);
      assert.deepEqual(x.exits, []);
    }),
    params(t, 400),
  );
  assertWorkersAlive(x);
  assert.equal(await listenerCounter(x.rt, 'tcp', 'sessions'), runs);
  const legit = await shot({ host: '127.0.0.1', port }, [Buffer.from('still here')], 3000);
  assert.equal(legit.data.toString(), 'still here');
  t.diagnostic(`ran in ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
