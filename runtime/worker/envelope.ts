/**
 * Messages that cross threads on the data path are msgpack envelopes (msgpackr), sent over a
 * MessagePort per pair of workers with their ArrayBuffer transferred (no structured-clone copy).
 * msgpackr reuses its encode buffer, so every envelope is copied into an owned buffer first.
 *
 * Two kinds: a datagram hand-off (a UDP peer's first datagrams, to the worker that owns the peer)
 * and a cluster message (from a cluster to the cluster of the same name on another worker, e.g. a
 * Sync broadcast domain that spans workers).
 */
import { Packr } from 'msgpackr';
import type { DatagramHandoff } from '../../protocols/types.ts';

const packr = new Packr({ useRecords: false, moreTypes: false });

/** Envelope type tags. */
export const EnvelopeType = { Handoff: 1, Cluster: 2 } as const;

interface HandoffWire {
  t: typeof EnvelopeType.Handoff;
  l: string;
  a: string;
  p: number;
  d: Uint8Array;
}

interface ClusterWire {
  t: typeof EnvelopeType.Cluster;
  /** Cluster name. */
  c: string;
  /** Sender slot. */
  f: number;
  /** The cluster's own message (plain data). */
  m: unknown;
}

/** A cluster message as decoded: to cluster `cluster`, from worker `from`. */
export interface ClusterEnvelope {
  cluster: string;
  from: number;
  msg: unknown;
}

/** A decoded envelope. */
export type Envelope = { type: typeof EnvelopeType.Handoff; handoff: DatagramHandoff } | { type: typeof EnvelopeType.Cluster; cluster: ClusterEnvelope };

function owned(packed: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(packed);
}

/** Encode a datagram hand-off into an owned buffer ready to transfer. */
export function encodeHandoff(h: DatagramHandoff): Uint8Array {
  return owned(packr.pack({ t: EnvelopeType.Handoff, l: h.listener, a: h.address, p: h.port, d: h.data } satisfies HandoffWire));
}

/**
 * Encode a cluster message into an owned buffer ready to transfer.
 * @throws if `msg` is not msgpack-encodable (a bug of the calling cluster: the worker catches it).
 */
export function encodeClusterMessage(cluster: string, from: number, msg: unknown): Uint8Array {
  return owned(packr.pack({ t: EnvelopeType.Cluster, c: cluster, f: from, m: msg } satisfies ClusterWire));
}

/** Decode an envelope; null (and the caller counts it) if it is not a well-formed one. */
export function decodeAny(buf: Uint8Array): Envelope | null {
  let m: unknown;
  try {
    m = packr.unpack(buf);
  } catch {
    return null;
  }
  if (m === null || typeof m !== 'object') return null;
  const t = (m as { t?: unknown }).t;
  if (t === EnvelopeType.Handoff) {
    const w = m as Partial<HandoffWire>;
    if (typeof w.l !== 'string' || typeof w.a !== 'string' || typeof w.p !== 'number' || !(w.d instanceof Uint8Array)) return null;
    return { type: EnvelopeType.Handoff, handoff: { listener: w.l, address: w.a, port: w.p, data: w.d } };
  }
  if (t === EnvelopeType.Cluster) {
    const w = m as Partial<ClusterWire>;
    if (typeof w.c !== 'string' || typeof w.f !== 'number') return null;
    return { type: EnvelopeType.Cluster, cluster: { cluster: w.c, from: w.f, msg: w.m } };
  }
  return null;
}

/** Decode a hand-off envelope; null if it is not a well-formed hand-off. */
export function decodeEnvelope(buf: Uint8Array): DatagramHandoff | null {
  const e = decodeAny(buf);
  return e?.type === EnvelopeType.Handoff ? e.handoff : null;
}
