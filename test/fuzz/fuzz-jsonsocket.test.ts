/**
 * JSONSocket listener fuzz (issue 12 item 1): valid and hostile JSON
 * headers over TCP (split into arbitrary chunks, payload coalesced after the header) and over UDP
 * (one datagram), routed to Echo. Hostile headers: nesting past the depth limit (up to 3,000
 * levels), headers over 64 KiB, 1e400 / -0 / 2^53+1 / "1" versions, `__proto__` keys, a BOM, NUL
 * bytes, invalid UTF-8, not-an-object, truncated headers. Each header has an expected outcome:
 * 200 then the payload echoed, 400, 505, or (truncated, then FIN) a close with no reply.
 * Afterwards: the worker never died, `malformed` equals the number of rejected headers, and a
 * valid client still gets its echo.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { freeTcpPort, freeUdpPort, waitFor } from '../helpers.ts';
import { listenerCounter, udpClient } from '../integration/proto-helpers.ts';
import { jsonObjectEnd } from '../../protocols/jsonsocket/codec.ts';
import { assertWorkersAlive, params, shot, splitAt, target } from './fuzz-helpers.ts';

/** A header and what the listener must answer: a status, or nothing (incomplete header). */
interface Case {
  header: Buffer;
  expect: 200 | 400 | 505 | 'none';
}

const b = (s: string) => Buffer.from(s, 'latin1');

const valid = fc
  .dictionary(fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'JSONSocketStatus', 'user', 'user'), fc.string({ maxLength: 8 })), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 })
  .map((d): Case => ({ header: Buffer.from(JSON.stringify({ ...d, JSONSocketVersion: 1 })), expect: 200 }));

const hostile = fc.oneof(
  fc.integer({ min: 32, max: 3000 }).map((n): Case => ({ header: b(`{"JSONSocketVersion":1,"a":${'['.repeat(n)}${']'.repeat(n)}}`), expect: 400 })),
  fc.integer({ min: 32, max: 3000 }).map((n): Case => ({ header: b(`{"JSONSocketVersion":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`), expect: 400 })),
  fc.constantFrom<Case>(
    { header: b('{"JSONSocketVersion":1e400}'), expect: 400 },
    { header: b('{"JSONSocketVersion":"1"}'), expect: 400 },
    { header: b('{"JSONSocketVersion":1.5}'), expect: 400 },
    { header: b('{"JSONSocketVersion":-0}'), expect: 505 },
    { header: b('{"JSONSocketVersion":9007199254740993}'), expect: 505 },
    { header: b('{"JSONSocketVersion":1,"JSONSocketVersion":2}'), expect: 505 },
    { header: b('{"__proto__":{"JSONSocketVersion":1}}'), expect: 400 },
    { header: b('{"constructor":{"prototype":{"x":1}},"JSONSocketVersion":1}'), expect: 200 },
    { header: b('{"JSONSocketVersion":1,"user":5}'), expect: 200 },
    { header: b('{"JSONSocketVersion":1,"user":{"toString":1}}'), expect: 200 },
    { header: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b('{"JSONSocketVersion":1}')]), expect: 400 },
    { header: b('{"JSONSocketVersion":1,"a":"\u0000"}'), expect: 400 },
    { header: b('{"JSONSocketVersion":1,\u0000}'), expect: 400 },
    { header: Buffer.concat([b('{"JSONSocketVersion":1,"a":"'), Buffer.from([0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80]), b('"}')]), expect: 200 },
    { header: b('[{"JSONSocketVersion":1}]'), expect: 400 },
    { header: b('"JSONSocketVersion"'), expect: 400 },
    { header: b('hello'), expect: 400 },
    { header: b('{"JSONSocketVersion":1,"a":1,}'), expect: 400 },
    { header: b(`{"JSONSocketVersion":1,"a":"${'x'.repeat(70_000)}"}`), expect: 400 },
  ),
  fc.tuple(valid, fc.integer({ min: 1, max: 20 })).map(([c, k]): Case => ({ header: c.header.subarray(0, Math.max(1, c.header.length - k)), expect: 'none' })),
);

const cases = fc.oneof({ weight: 2, arbitrary: valid }, { weight: 3, arbitrary: hostile });

/** The reply object at the start of `data` and what follows it, or null if there is none. */
function splitReply(data: Buffer): { status: unknown; rest: Buffer } | null {
  const end = jsonObjectEnd(data);
  if (end < 0) return null;
  return { status: (JSON.parse(data.subarray(0, end).toString()) as { JSONSocketStatus?: unknown }).JSONSocketStatus, rest: data.subarray(end) };
}

const echoRoute = [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }];
/**
 * A predicate on a header value first: json-predicate's `contains` throws on a number or an
 * object at `/JSONSocket/user`; that must be a non-match (the next rule routes), not a failed session.
 */
const predicateRoutes = [{ match: { op: 'contains', path: '/JSONSocket/user', value: 'adm' }, action: { route: { destination: { spec: { protocol: 'Echo' } } } } }, ...echoRoute];

test('JSONSocket over TCP: fuzzed headers in arbitrary chunks get the right reply, rejects counted, the worker never dies', async (t) => {
  const port = await freeTcpPort();
  const x = await target(t, { listeners: [{ name: 'js', spec: { protocol: 'JSONSocket', transport: { protocol: 'TCP', port, address: '::' } }, rules: predicateRoutes }] });
  const started = Date.now();
  let rejected = 0;
  await fc.assert(
    fc.asyncProperty(cases, fc.uint8Array({ maxLength: 64 }), fc.array(fc.nat(), { maxLength: 5 }), fc.boolean(), async (c, payload, cuts, v6) => {
      const wire = Buffer.concat([c.header, c.expect === 'none' ? Buffer.alloc(0) : payload]);
      const r = await shot({ host: v6 ? '::1' : '127.0.0.1', port }, splitAt(wire, cuts), 3000);
      assert.ok(r.closed, 'the connection closed');
      if (c.expect === 'none') {
        assert.equal(r.data.length, 0, 'no reply to an incomplete header');
        return;
      }
      const rep = splitReply(r.data);
      assert.ok(rep !== null, `a reply, got ${JSON.stringify(r.data.subarray(0, 60).toString())}`);
      assert.equal(rep.status, c.expect);
      if (c.expect === 200) assert.ok(rep.rest.equals(Buffer.from(payload)), 'the payload after the header is echoed');
      else {
        rejected++;
        assert.equal(rep.rest.length, 0);
      }
      assert.deepEqual(x.exits, []);
    }),
    params(t, 400),
  );
  assertWorkersAlive(x);
  assert.equal(await listenerCounter(x.rt, 'js', 'malformed'), rejected);
  const ok = await shot({ host: '127.0.0.1', port }, [Buffer.from('{"JSONSocketVersion":1}still here')], 3000);
  assert.deepEqual(splitReply(ok.data), { status: 200, rest: Buffer.from('still here') });
  t.diagnostic(`ran in ${((Date.now() - started) / 1000).toFixed(1)} s; rejected ${rejected}`);
});

test('JSONSocket over UDP: a fuzzed header datagram gets the right reply, rejects counted, the worker never dies', async (t) => {
  const port = await freeUdpPort('::1');
  const x = await target(t, { listeners: [{ name: 'js', spec: { protocol: 'JSONSocket', transport: { protocol: 'UDP', port, address: '::' } }, rules: echoRoute }] });
  const started = Date.now();
  let rejected = 0;
  // A datagram is the whole header: a truncated one is simply invalid JSON.
  const dgramCases = cases.filter((c) => c.expect !== 'none' && c.header.length <= 65_000);
  await fc.assert(
    fc.asyncProperty(dgramCases, fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.boolean(), async (c, payload, v6) => {
      const host = v6 ? '::1' : '127.0.0.1';
      const u = await udpClient(t, host);
      u.send(c.header, port, host);
      const rep = splitReply(await u.recv(3000));
      assert.ok(rep !== null);
      assert.equal(rep.status, c.expect);
      if (c.expect === 200) {
        u.send(Buffer.from(payload), port, host);
        assert.ok((await u.recv(3000)).equals(Buffer.from(payload)));
      } else rejected++;
      assert.deepEqual(x.exits, []);
    }),
    params(t, 300),
  );
  assertWorkersAlive(x);
  await waitFor(async () => (await listenerCounter(x.rt, 'js', 'malformed')) === rejected, 3000, `malformed == ${rejected}`);
  const u = await udpClient(t);
  assert.deepEqual(splitReply(await u.request('{"JSONSocketVersion":1}', port)), { status: 200, rest: Buffer.alloc(0) });
  assert.equal((await u.request('still here', port)).toString(), 'still here');
  t.diagnostic(`ran in ${((Date.now() - started) / 1000).toFixed(1)} s; rejected ${rejected}`);
});
