/**
 * RTP header (RFC 3550 §5.1) of a UDP listener's first datagram, as session metadata
 * `/RTP/{SSRC, payload_type, sequence}` (numbers), so rules and a ConsistentHash `key: /RTP/SSRC`
 * can act on the media stream (the l7mp SBC use case: a call stays on one transcoder).
 *
 * Read: the version is 2, the datagram has at least the 12-byte fixed header plus its CSRC list,
 * and the payload type is not in RTCP's range 72..76 (RFC 5761 §4: with the marker bit set, the
 * second byte is then 200..204). Anything else is not RTP: the metadata is left absent, never an
 * error.
 */

/** l7mp-ts `/RTP` metadata. */
export interface RtpMetadata {
  /** Synchronization source, 32 bits. */
  SSRC: number;
  /** 7 bits. */
  payload_type: number;
  /** 16 bits. */
  sequence: number;
}

/** The RTP fixed header of `d`, or null if `d` is not an RTP packet. */
export function parseRtp(d: Uint8Array): RtpMetadata | null {
  if (d.length < 12) return null;
  const b0 = d[0] as number;
  if (b0 >> 6 !== 2) return null;
  const cc = b0 & 0x0f;
  if (d.length < 12 + 4 * cc) return null;
  const pt = (d[1] as number) & 0x7f;
  if (pt >= 72 && pt <= 76) return null; // RTCP SR/RR/SDES/BYE/APP (200..204 with the marker bit)
  const sequence = ((d[2] as number) << 8) | (d[3] as number);
  const SSRC = (((d[8] as number) << 24) >>> 0) + (((d[9] as number) << 16) | ((d[10] as number) << 8) | (d[11] as number));
  return { SSRC, payload_type: pt, sequence };
}
