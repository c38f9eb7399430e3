/**
 * The consistent hash ring of live worker slots (npm `hashring`, ketama md5).
 *
 * UDP peers are placed in two steps, so that a kernel program can steer them (SK_REUSEPORT,
 * native-offload/bpf/reuseport.bpf.c):
 * ```
 *  peer address:port ──FNV-1a 32 (address bytes, port big-endian) & 4095──► bucket b
 *  bucket b ──ring.get(`b<b>`)──► worker slot
 * ```
 * The kernel computes the first step; the second is the bucket table the runtime writes into the
 * kernel from this ring ({@link WorkerRing.buckets}). Removing a slot moves only the buckets (so
 * the keys) it owned, and adding it back returns exactly those (same member names, same points).
 */
import net from 'node:net';
import HashRing from 'hashring';

/** Buckets between peers and the ring (the kernel's table has as many entries). */
export const BUCKETS = 4096;

const FNV_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnv(h: number, b: number): number {
  return Math.imul(h ^ b, FNV_PRIME) >>> 0;
}

/** The 4 or 16 bytes of an IP address (an IPv4-mapped IPv6 address gives its 4 IPv4 bytes), or null. */
export function addressBytes(address: string): number[] | null {
  if (net.isIPv4(address)) return address.split('.').map(Number);
  if (!net.isIPv6(address)) return null;
  let a = address;
  const pct = a.indexOf('%');
  if (pct >= 0) a = a.slice(0, pct);
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (m !== null) return (m[1] as string).split('.').map(Number);
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4 !== null) {
    const p = (v4[1] as string).split('.').map(Number);
    tail = [((p[0] as number) << 8) | (p[1] as number), ((p[2] as number) << 8) | (p[3] as number)];
    a = a.slice(0, a.length - (v4[1] as string).length) + '0:0';
  }
  const [head, rest] = a.split('::') as [string, string | undefined];
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((x) => parseInt(x, 16)));
  let words: number[];
  if (rest === undefined) words = parse(head);
  else {
    const h = parse(head);
    const r = parse(rest);
    words = [...h, ...Array<number>(8 - h.length - r.length).fill(0), ...r];
  }
  if (tail.length > 0) words.splice(words.length - 2, 2, ...tail);
  const out: number[] = [];
  for (const w of words) out.push((w >> 8) & 255, w & 255);
  return out.length === 16 ? out : null;
}

/**
 * The bucket of a peer: FNV-1a 32 over the address bytes then the port (big-endian), & 4095.
 * Exactly what the SK_REUSEPORT program computes. A key that is not an IP address is hashed as
 * its UTF-8 bytes.
 */
export function peerBucket(address: string, port: number): number {
  let h = FNV_BASIS;
  const bytes = addressBytes(address) ?? [...Buffer.from(address)];
  for (const b of bytes) h = fnv(h, b);
  h = fnv(h, (port >> 8) & 255);
  h = fnv(h, port & 255);
  return h & (BUCKETS - 1);
}

/** The bucket of a session key `address:port` (`[v6]:port` or `v6:port`). */
export function keyBucket(key: string): number {
  const i = key.lastIndexOf(':');
  const port = i < 0 ? NaN : Number(key.slice(i + 1));
  if (!Number.isInteger(port)) return peerBucket(key, 0);
  let addr = key.slice(0, i);
  if (addr.startsWith('[') && addr.endsWith(']')) addr = addr.slice(1, -1);
  return peerBucket(addr, port);
}

export class WorkerRing {
  private ring: HashRing;
  private members: number[];
  /** Bucket → owner slot, filled on first use with more than one member (a hashring lookup hashes a string: too slow per new session). */
  private table: Int32Array | null = null;

  /** @param slots the live worker slots. */
  constructor(slots: readonly number[]) {
    this.members = [...slots].sort((a, b) => a - b);
    this.ring = new HashRing(this.members.map((s) => `w${s}`));
  }

  /** Live slots, ascending. */
  get slots(): readonly number[] {
    return this.members;
  }

  /** The owner slot of a bucket, or -1 when no worker is live. */
  bucketOwner(bucket: number): number {
    if (this.members.length === 0) return -1;
    if (this.members.length === 1) return this.members[0] as number;
    return Number(this.ring.get(`b${bucket}`).slice(1));
  }

  /** The owner slot of session key `address:port`, or -1 when no worker is live. */
  owner(key: string): number {
    const n = this.members.length;
    if (n <= 1) return n === 0 ? -1 : (this.members[0] as number);
    let t = this.table;
    if (t === null) {
      t = new Int32Array(BUCKETS);
      for (let b = 0; b < BUCKETS; b++) t[b] = this.bucketOwner(b);
      this.table = t;
    }
    return t[keyBucket(key)] as number;
  }

  /** The bucket table: bucket → owner slot (every entry -1 → 0 when no worker is live). */
  buckets(): Uint32Array {
    const t = new Uint32Array(BUCKETS);
    for (let b = 0; b < BUCKETS; b++) t[b] = Math.max(0, this.bucketOwner(b));
    return t;
  }
}

/**
 * The slot that hosts a listener that can bind on one worker only (a Unix socket path): a hash of
 * its name over all configured slots, stable across worker restarts (the replacement takes the
 * same slot and rebinds).
 */
export function placeSingle(listener: string, workers: number): number {
  if (workers <= 1) return 0;
  return Number(new HashRing(Array.from({ length: workers }, (_, i) => `w${i}`)).get(listener).slice(1));
}
