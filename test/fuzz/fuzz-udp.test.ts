/**
 * UDP listener fuzz (issue 12 item 1): datagrams of arbitrary bytes and RTP-ish headers (RFC 3550
 * §5.1: any version, CSRC counts past the end, RTCP payload types, truncated headers) as the first
 * datagram of a session, with `options.rtp` on so every first datagram goes through the RTP
 * reader; over 127.0.0.1 and ::1, routed to Echo. Afterwards: every non-empty datagram came back
 * unchanged, the worker never died, first datagrams that are not RTP were counted (`rtp_absent`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { freeUdpPort, waitFor } from '../helpers.ts';
import { listenerCounter, udpClient } from '../integration/proto-helpers.ts';
import { parseRtp } from '../../protocols/udp/rtp.ts';
import { assertWorkersAlive, bytes, params, target } from './fuzz-helpers.ts';

/** A datagram that starts like RTP, with every header field free. */
const rtpish = fc
  .record({
    version: fc.oneof({ weight: 3, arbitrary: fc.constant(2) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 3 }) }),
    padding: fc.boolean(),
    extension: fc.boolean(),
    cc: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }) }),
    marker: fc.boolean(),
    pt: fc.oneof(fc.constantFrom(0, 8, 96, 72, 76, 127), fc.integer({ min: 0, max: 127 })),
    seq: fc.integer({ min: 0, max: 0xffff }),
    ts: fc.integer({ min: 0, max: 0xffffffff }),
    ssrc: fc.integer({ min: 0, max: 0xffffffff }),
    tail: bytes(80),
    cut: fc.nat({ max: 100 }),
  })
  .map((r) => {
    const h = Buffer.alloc(12);
    h[0] = (r.version << 6) | (r.padding ? 0x20 : 0) | (r.extension ? 0x10 : 0) | r.cc;
    h[1] = (r.marker ? 0x80 : 0) | r.pt;
    h.writeUInt16BE(r.seq, 2);
    h.writeUInt32BE(r.ts, 4);
    h.writeUInt32BE(r.ssrc, 8);
    const d = Buffer.concat([h, r.tail]);
    return r.cut < 20 ? d.subarray(0, r.cut) : d; // sometimes truncated inside the header
  });

test('UDP listener (rtp on): fuzzed datagrams are echoed unchanged, non-RTP first datagrams counted, the worker never dies', async (t) => {
  const port = await freeUdpPort('::1');
  const x = await target(t, { listeners: [{ name: 'udp', spec: { protocol: 'UDP', port, address: '::', options: { rtp: true } }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }] });
  const started = Date.now();
  let notRtp = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(rtpish, bytes(1200).map((b) => Buffer.from(b))), { minLength: 1, maxLength: 4 }), fc.boolean(), async (dgrams, v6) => {
      const host = v6 ? '::1' : '127.0.0.1';
      // Clients stay open until the test ends: a reused source port would be an existing session.
      const c = await udpClient(t, host);
      if (parseRtp(dgrams[0] as Buffer) === null) notRtp++;
      const want = dgrams.filter((d) => d.length > 0).map((d) => d.toString('hex'));
      const got: string[] = [];
      c.sock.on('message', (m: Buffer) => got.push(m.toString('hex')));
      for (const d of dgrams) c.send(d, port, host);
      await waitFor(() => want.every((w) => got.includes(w)), 3000, `echoes of ${want.length} datagrams`);
      assert.deepEqual(x.exits, []);
    }),
    params(t, 250),
  );
  assertWorkersAlive(x);
  assert.equal(await listenerCounter(x.rt, 'udp', 'rtp_absent'), notRtp);
  t.diagnostic(`ran in ${((Date.now() - started) / 1000).toFixed(1)} s; first datagrams not RTP: ${notRtp}`);
});
