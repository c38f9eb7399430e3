/**
 * Messages that cross threads on the data path are msgpack envelopes (msgpackr), sent over a
 * MessagePort per pair of workers with their ArrayBuffer transferred (no structured-clone copy).
 * msgpackr reuses its encode buffer, so every envelope is copied into an owned buffer first.
 */
import { Packr } from 'msgpackr';
import type { DatagramHandoff } from '../protocols/types.ts';

const packr = new Packr({ useRecords: false, moreTypes: false });

/** Envelope type tags. */
export const EnvelopeType = { Handoff: 1 } as const;

interface HandoffWire {
  t: typeof EnvelopeType.Handoff;
  l: string;
  a: string;
  p: number;
  d: Uint8Array;
}

/** Encode a datagram hand-off into an owned buffer ready to transfer. */
export function encodeHandoff(h: DatagramHandoff): Uint8Array {
  const packed = packr.pack({ t: EnvelopeType.Handoff, l: h.listener, a: h.address, p: h.port, d: h.data } satisfies HandoffWire);
  return Uint8Array.prototype.slice.call(packed);
}

/** Decode an envelope; null (and the caller counts it) if it is not a well-formed hand-off. */
export function decodeEnvelope(buf: Uint8Array): DatagramHandoff | null {
  let m: unknown;
  try {
    m = packr.unpack(buf);
  } catch {
    return null;
  }
  const w = m as Partial<HandoffWire> | null;
  if (w === null || typeof w !== 'object' || w.t !== EnvelopeType.Handoff) return null;
  if (typeof w.l !== 'string' || typeof w.a !== 'string' || typeof w.p !== 'number' || !(w.d instanceof Uint8Array)) return null;
  return { listener: w.l, address: w.a, port: w.p, data: w.d };
}
