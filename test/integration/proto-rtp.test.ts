/**
 * RTP awareness (seed: the l7mp SBC example, ConsistentHash `key: /RTP/SSRC`): a UDP listener with
 * `options.rtp` reads the RTP header (RFC 3550) of each session's first datagram into /RTP, and a
 * call (one SSRC) stays on one endpoint whatever the source port and whichever of 2 workers owns
 * the session. Non-RTP datagrams leave /RTP absent and are proxied as usual.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freeUdpPort, udpEcho } from '../helpers.ts';
import { closing, listenerCounter, proxy, sessions, udpClient } from './proto-helpers.ts';
import { parseRtp } from '../../protocols/udp/rtp.ts';

/** An RTP packet: version 2, `pt`, `seq`, timestamp 0, `ssrc`, then `payload`. */
function rtp(ssrc: number, seq: number, pt = 0, payload = 'media'): Buffer {
  const b = Buffer.alloc(12 + payload.length);
  b[0] = 0x80;
  b[1] = pt;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(0, 4);
  b.writeUInt32BE(ssrc, 8);
  b.write(payload, 12);
  return b;
}

test('parseRtp: the fixed header fields; RTCP, short packets and other versions are not RTP', () => {
  assert.deepEqual(parseRtp(rtp(0xdeadbeef, 65535, 96)), { SSRC: 0xdeadbeef, payload_type: 96, sequence: 65535 });
  assert.deepEqual(parseRtp(Buffer.concat([Buffer.from([0x81, 0x08]), Buffer.alloc(14)])), { SSRC: 0, payload_type: 8, sequence: 0 }, 'one CSRC');
  assert.equal(parseRtp(Buffer.from([0x81, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), null, 'CSRC count beyond the packet');
  assert.equal(parseRtp(Buffer.from([0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0])), null, 'RTCP sender report');
  assert.equal(parseRtp(Buffer.alloc(11, 0x80)), null, 'short');
  assert.equal(parseRtp(Buffer.from('hello, not rtp!')), null, 'text');
  assert.equal(parseRtp(Buffer.alloc(12)), null, 'version 0');
});

test('RTP: /RTP/SSRC pins every flow of a call to one endpoint across 2 workers; non-RTP sessions work without /RTP', async (t) => {
  const port = await freeUdpPort();
  const upPort = await freeUdpPort();
  const names = ['A', 'B', 'C'];
  for (const [i, n] of names.entries()) closing(t, await udpEcho(`${n}:`, `127.0.0.${i + 1}`, upPort), (e) => e.close());
  const rt = await proxy(
    t,
    {
      clusters: [
        {
          name: 'transcoder',
          spec: { protocol: 'UDP', port: upPort },
          loadbalancer: { policy: 'ConsistentHash', key: '/RTP/SSRC' },
          endpoints: names.map((n, i) => ({ name: n, spec: { address: `127.0.0.${i + 1}` } })),
        },
      ],
      listeners: [{ name: 'rtp', spec: { protocol: 'UDP', port, address: '127.0.0.1', options: { rtp: true } }, rules: [{ action: { route: { destination: 'transcoder' } } }] }],
    },
    2,
  );
  const endpointOf = new Map<number, Set<string>>();
  const ssrcs = [1, 2, 3, 0x1234, 0xcafe, 0xdeadbeef, 42, 7777];
  for (const ssrc of ssrcs) {
    const seen = new Set<string>();
    // Three flows of one call from three source ports (re-INVITEs, forks, a restarted phone).
    for (let f = 0; f < 3; f++) {
      const c = await udpClient(t);
      for (let seq = 0; seq < 2; seq++) seen.add((await c.request(rtp(ssrc, seq), port)).toString().split(':')[0] as string);
    }
    endpointOf.set(ssrc, seen);
  }
  for (const [ssrc, seen] of endpointOf) assert.equal(seen.size, 1, `SSRC ${ssrc} reached ${[...seen].join(', ')}`);
  const used = new Set([...endpointOf.values()].map((s) => [...s][0]));
  assert.ok(used.size >= 2, `the SSRCs spread over the endpoints, got ${[...used].join(', ')}`);
  const ss = await sessions(rt);
  assert.equal(ss.length, ssrcs.length * 3);
  assert.equal(new Set(ss.map((s) => s.workerNode)).size, 2, 'sessions on both workers');
  const md = ss[0]?.metadata as { RTP?: { SSRC: number; payload_type: number; sequence: number } };
  assert.ok(md.RTP !== undefined && ssrcs.includes(md.RTP.SSRC) && md.RTP.payload_type === 0 && md.RTP.sequence === 0);

  // Not RTP: proxied all the same (by the downstream address), /RTP absent, counted.
  const plain = await udpClient(t);
  assert.match((await plain.request('plain text', port)).toString(), /^[ABC]:plain text$/);
  const s = (await sessions(rt)).find((x) => x.name.startsWith(`UDP:127.0.0.1:${plain.port}-`));
  assert.equal((s?.metadata as { RTP?: unknown }).RTP, undefined);
  assert.equal(await listenerCounter(rt, 'rtp', 'rtp_absent'), 1);
});

/** An RTCP sender report (RFC 3550 §6.4.1, no report blocks) from `ssrc`, then an SDES chunk of it. */
function senderReport(ssrc: number, packets: number): Buffer {
  const b = Buffer.alloc(28 + 12);
  b[0] = 0x80;
  b[1] = 200;
  b.writeUInt16BE(6, 2);
  b.writeUInt32BE(ssrc, 4);
  b.writeUInt32BE(0x12345678, 16);
  b.writeUInt32BE(packets, 20);
  b.writeUInt32BE(packets * 100, 24);
  // SDES: one chunk (ssrc), CNAME "a", end.
  b[28] = 0x81;
  b[29] = 202;
  b.writeUInt16BE(2, 30);
  b.writeUInt32BE(ssrc, 32);
  b[36] = 1;
  b[37] = 1;
  b[38] = 0x61;
  return b;
}

test('RTCP follows RTP: a sender report gives /RTP/SSRC of its stream, so ConsistentHash puts a stream\'s RTCP on its RTP\'s endpoint', async (t) => {
  const [pRtp, pRtcp, upRtp, upRtcp] = [await freeUdpPort(), await freeUdpPort(), await freeUdpPort(), await freeUdpPort()];
  const names = ['A', 'B', 'C'];
  for (const [i, n] of names.entries()) {
    closing(t, await udpEcho(`${n}:`, `127.0.0.${i + 1}`, upRtp), (e) => e.close());
    closing(t, await udpEcho(`${n}:`, `127.0.0.${i + 1}`, upRtcp), (e) => e.close());
  }
  const cluster = (name: string, port: number) => ({
    name,
    spec: { protocol: 'UDP', port },
    loadbalancer: { policy: 'ConsistentHash', key: '/RTP/SSRC' },
    // The ring is over the endpoints' addresses: the same addresses, the same pick for one key.
    endpoints: names.map((n, i) => ({ name: `${name}-${n}`, spec: { address: `127.0.0.${i + 1}` } })),
  });
  const rt = await proxy(t, {
    clusters: [cluster('media', upRtp), cluster('control', upRtcp)],
    listeners: [
      { name: 'rtp', spec: { protocol: 'UDP', port: pRtp, address: '127.0.0.1', options: { rtp: true } }, rules: [{ action: { route: { destination: 'media' } } }] },
      { name: 'rtcp', spec: { protocol: 'UDP', port: pRtcp, address: '127.0.0.1', options: { rtp: true } }, rules: [{ action: { route: { destination: 'control' } } }] },
    ],
  });
  const ssrcs = [1, 2, 3, 0x1234, 0xcafe, 0xdeadbeef, 42, 7777];
  const used = new Set<string>();
  for (const ssrc of ssrcs) {
    const c = await udpClient(t);
    const media = (await c.request(rtp(ssrc, 1), pRtp)).toString().split(':')[0] as string;
    const rc = await udpClient(t);
    const ctl = (await rc.request(senderReport(ssrc, 10), pRtcp)).toString().split(':')[0];
    assert.equal(ctl, media, `SSRC ${ssrc}: RTP to ${media}, RTCP to ${ctl}`);
    used.add(media);
  }
  assert.ok(used.size >= 2, `the SSRCs spread over the endpoints, got ${[...used].join(', ')}`);
  const s = (await sessions(rt)).find((x) => x.name.startsWith('UDP:') && (x.metadata as { RTP?: { octet_count?: number } }).RTP?.octet_count !== undefined);
  assert.deepEqual((s?.metadata as { RTP: unknown }).RTP, { SSRC: (s?.metadata as { RTP: { SSRC: number } }).RTP.SSRC, rtp_timestamp: 0x12345678, packet_count: 10, octet_count: 1000 });
  assert.equal(await listenerCounter(rt, 'rtcp', 'rtp_absent'), 0);
});
