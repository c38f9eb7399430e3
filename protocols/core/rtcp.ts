/**
 * RTCP sender reports (RFC 3550 §6.4.1) in a compound packet (§6.1), read into `/RTP` metadata:
 * the sender's SSRC (the SSRC of the RTP stream it reports on, so RTCP can be matched to its RTP),
 * its RTP timestamp and its packet and octet counts. Shared by the UDP listener (`rtp: true`, a
 * session's first datagram) and RTSP (the RTCP pinholes of a track, every datagram).
 *
 * ```
 *  0                   1                   2                   3
 *  V=2|P|    RC   |   PT=SR=200   |             length            |  header (length: 32-bit words - 1)
 *                         SSRC of sender                            |  +4
 *              NTP timestamp, most significant word                 |  +8
 *              NTP timestamp, least significant word                |  +12
 *                         RTP timestamp                             |  +16
 *                     sender's packet count                         |  +20
 *                      sender's octet count                         |  +24
 *  RC report blocks of 24 bytes, then profile-specific extensions      +28
 * ```
 * The compound packet is checked as RFC 3550 A.2 does (version 2 in every packet, padding only in
 * the last one, lengths that add up to the datagram), except that the first packet may be of any
 * type (reduced-size RTCP, RFC 5506). A datagram that fails the check is malformed: nothing is read
 * from it. Never throws, allocates nothing.
 */

/** What {@link readSenderReport} found. */
export const RtcpRead = {
  /** A valid compound packet with a sender report: its fields were written. */
  SenderReport: 1,
  /** A valid compound packet without a sender report (RR, SDES, BYE...): nothing written. */
  NoSenderReport: 0,
  /** Not a valid RTCP compound packet: nothing written. */
  Malformed: -1,
} as const;
export type RtcpRead = (typeof RtcpRead)[keyof typeof RtcpRead];

/** `/RTP` metadata from a sender report (numbers; the 32-bit fields unsigned). */
export interface RtcpSenderInfo {
  /** SSRC of the sender: the SSRC of its RTP stream. */
  SSRC: number;
  /** RTP timestamp of the report (the stream's media clock). */
  rtp_timestamp: number;
  /** RTP data packets the sender sent since it started (wraps at 2^32). */
  packet_count: number;
  /** RTP payload octets the sender sent since it started (wraps at 2^32). Unit: bytes. */
  octet_count: number;
}

/** RTCP packet types (RFC 3550 §12.1): SR. Types 192..223 are RTCP's (RFC 5761 §4). */
const PT_SR = 200;
/** Header, sender SSRC and sender info: the shortest SR. Unit: bytes. */
const SR_MIN = 28;

function u32(d: Uint8Array, o: number): number {
  return (((d[o] as number) << 24) >>> 0) + (((d[o + 1] as number) << 16) | ((d[o + 2] as number) << 8) | (d[o + 3] as number));
}

/**
 * Check the compound RTCP packet `d` and write the first sender report's fields into `into`.
 * Returns an {@link RtcpRead} code; `into` is written only for `SenderReport`.
 */
export function readSenderReport(d: Uint8Array, into: Partial<RtcpSenderInfo>): RtcpRead {
  const n = d.length;
  if (n < 4 || n % 4 !== 0) return RtcpRead.Malformed;
  let sr = -1;
  let o = 0;
  while (o < n) {
    if (n - o < 4) return RtcpRead.Malformed;
    const b0 = d[o] as number;
    const pt = d[o + 1] as number;
    const len = 4 * ((((d[o + 2] as number) << 8) | (d[o + 3] as number)) + 1);
    if (b0 >> 6 !== 2 || pt < 192 || pt > 223 || o + len > n) return RtcpRead.Malformed;
    // Padding (its count in the last octet) only in the last packet, and within it.
    if ((b0 & 0x20) !== 0 && (o + len !== n || (d[n - 1] as number) === 0 || (d[n - 1] as number) > len - 4)) return RtcpRead.Malformed;
    if (pt === PT_SR) {
      if (len < SR_MIN + 24 * (b0 & 0x1f)) return RtcpRead.Malformed;
      if (sr < 0) sr = o;
    }
    o += len;
  }
  if (sr < 0) return RtcpRead.NoSenderReport;
  into.SSRC = u32(d, sr + 4);
  into.rtp_timestamp = u32(d, sr + 16);
  into.packet_count = u32(d, sr + 20);
  into.octet_count = u32(d, sr + 24);
  return RtcpRead.SenderReport;
}
