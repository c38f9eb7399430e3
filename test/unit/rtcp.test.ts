/** RTCP sender reports (protocols/core/rtcp.ts) from byte fixtures: compound packets, RFC 3550 §6.4.1 and A.2. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readSenderReport, RtcpRead, type RtcpSenderInfo } from '../../protocols/core/rtcp.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/**
 * SR, RC = 1: SSRC 0xdeadbeef, NTP e5a1b2c3.11223344, RTP timestamp 0x00abcdef, 1000 packets,
 * 1000000 octets; one report block (SSRC 0x01020304). Then SDES: CNAME "user@example.net".
 */
const SR = hex(`
  81 c8 00 0c  de ad be ef  e5 a1 b2 c3  11 22 33 44  00 ab cd ef  00 00 03 e8  00 0f 42 40
  01 02 03 04  00 00 00 00  00 00 12 34  00 00 00 10  00 00 00 00  00 00 00 00`);
const SDES = hex(`
  81 ca 00 06  de ad be ef  01 10 75 73  65 72 40 65  78 61 6d 70  6c 65 2e 6e  65 74 00 00`);
/** RR, RC = 1 (a receiver's report on SSRC 0xdeadbeef), from SSRC 0x0badf00d. */
const RR = hex(`
  81 c9 00 07  0b ad f0 0d  de ad be ef  00 00 00 00  00 00 12 34  00 00 00 10  00 00 00 00
  00 00 00 00`);
const BYE = hex('81 cb 00 01 de ad be ef');
/** RFC 4585 PLI (PT 206, FMT 1): a reduced-size RTCP packet (RFC 5506), no SR or RR first. */
const PLI = hex('81 ce 00 02 0b ad f0 0d de ad be ef');

const EXPECTED: RtcpSenderInfo = { SSRC: 0xdeadbeef, rtp_timestamp: 0xabcdef, packet_count: 1000, octet_count: 1_000_000 };

function read(d: Buffer): { r: number; into: Partial<RtcpSenderInfo> } {
  const into: Partial<RtcpSenderInfo> = {};
  return { r: readSenderReport(d, into), into };
}

test('a sender report alone and in compound packets: SSRC, RTP timestamp, packet and octet counts (unsigned 32-bit)', () => {
  const alone = Buffer.from(SR);
  alone[0] = 0x80; // RC = 0 ...
  alone.writeUInt16BE(6, 2); // ... and 28 bytes
  for (const d of [alone.subarray(0, 28), SR, Buffer.concat([SR, SDES]), Buffer.concat([SR, SDES, BYE]), Buffer.concat([RR, SR, SDES])]) {
    const { r, into } = read(d);
    assert.equal(r, RtcpRead.SenderReport, d.toString('hex'));
    assert.deepEqual(into, EXPECTED);
  }
});

test('the first sender report of a compound packet wins', () => {
  const other = Buffer.from(SR);
  other.writeUInt32BE(0x0badf00d, 4);
  assert.equal(read(Buffer.concat([SR, other])).into.SSRC, 0xdeadbeef);
});

test('valid RTCP without a sender report: RR, RR + SDES, BYE, a reduced-size PLI; nothing written', () => {
  for (const d of [RR, Buffer.concat([RR, SDES]), Buffer.concat([RR, SDES, BYE]), PLI]) {
    const { r, into } = read(d);
    assert.equal(r, RtcpRead.NoSenderReport, d.toString('hex'));
    assert.deepEqual(into, {});
  }
});

test('padding: allowed in the last packet only, with a count that fits', () => {
  // SDES with P set and 4 octets of padding (count 4) at the end of the compound.
  const padded = Buffer.concat([hex('a1 ca 00 07'), SDES.subarray(4), hex('00 00 00 04')]);
  assert.equal(read(Buffer.concat([SR, padded])).r, RtcpRead.SenderReport);
  const early = Buffer.from(SR);
  early[0] = 0xa1; // P set on the first of two packets
  assert.equal(read(Buffer.concat([early, SDES])).r, RtcpRead.Malformed);
  const zero = Buffer.concat([SR, padded]);
  zero[zero.length - 1] = 0;
  assert.equal(read(zero).r, RtcpRead.Malformed, 'padding count 0');
  const big = Buffer.concat([SR, padded]);
  big[big.length - 1] = 200;
  assert.equal(read(big).r, RtcpRead.Malformed, 'padding count beyond the packet');
});

test('malformed: counted by the caller, nothing written, never a throw', () => {
  const v1 = Buffer.from(SR);
  v1[0] = 0x41;
  const overrun = Buffer.from(SR);
  overrun.writeUInt16BE(13, 2);
  const shortSr = Buffer.from(SR);
  shortSr[0] = 0x82; // RC = 2: 28 + 48 bytes needed, 52 there
  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['3 bytes', hex('81 c8 00')],
    ['not a multiple of 4', Buffer.concat([SR, hex('00 00')])],
    ['version 1', v1],
    ['length beyond the datagram', overrun],
    ['lengths do not add up (trailing word)', Buffer.concat([SR, hex('00 00 00 00')])],
    ['SR shorter than its report blocks', shortSr],
    ['SR shorter than the sender info', hex('80 c8 00 01 de ad be ef')],
    ['an RTP packet (PT 96)', hex('80 60 00 01 00 00 00 00 de ad be ef')],
    ['an SR header alone (length 0)', hex('80 c8 00 00')],
  ];
  for (const [what, d] of cases) {
    const { r, into } = read(d);
    assert.equal(r, RtcpRead.Malformed, what);
    assert.deepEqual(into, {}, what);
  }
});

test('every truncation of a compound packet, and random bytes: a code, never a throw', () => {
  const all = Buffer.concat([SR, SDES, BYE]);
  const boundaries = new Set([SR.length, SR.length + SDES.length, all.length]);
  for (let cut = 0; cut <= all.length; cut++) {
    const { r } = read(all.subarray(0, cut));
    assert.equal(r, boundaries.has(cut) ? RtcpRead.SenderReport : RtcpRead.Malformed, `cut ${cut}`);
  }
  for (let i = 0; i < 5000; i++) {
    const d = crypto.randomBytes(crypto.randomInt(0, 200));
    // A plausible header half the time, so the walk gets past the first packet.
    if (d.length >= 4 && i % 2 === 0) d[0] = 0x80 | ((d[0] as number) & 0x3f);
    const r = readSenderReport(d, {});
    assert.ok(r === RtcpRead.SenderReport || r === RtcpRead.NoSenderReport || r === RtcpRead.Malformed);
  }
});
