/**
 * The session table of one worker thread: what the main thread needs to rebuild that worker's
 * UDP sessions on another worker when it dies (issue 15, "sessions that survive a worker crash").
 *
 * The main thread makes one SharedArrayBuffer per worker incarnation (it outlives the thread, like
 * the session gauges); the worker writes a fixed-size record when a rebuildable session is
 * established (and again when its upstream reconnects) and frees it when the session ends: no
 * message per session. After the worker's `'exit'` the main thread reads the live records.
 * ```
 *  header  [0] high-water mark: records [0, hwm) may be live (the reader scans no further)
 *          [1] layout version
 *  record  [0] state: 0 free, 1 being written, 2 live  (Atomics.store, written last: a worker
 *              killed mid-write leaves a 1, which the reader skips)
 *          [1] listener index  [2] route index  [3] cluster index  [4] endpoint index (-1: none)
 *              (indices into the ConfigSnapshot's arrays; names cost too many bytes)
 *          [5] listener port   [6] flags (bit 0: session_sockets: listener)
 *          [7] peer port       [8] upstream remote port   [9] upstream local port
 *          [10..12] lengths of the three address strings
 *          [16..28) peer address   [28..40) upstream remote address   [40..52) upstream local
 *              address: ASCII, up to 46 bytes each (INET6_ADDRSTRLEN), as Node reports them (the
 *              peer's must be byte-exact: it is the listener's peer-map key)
 * ```
 * Records are 208 bytes; a worker records at most {@link SESSION_TABLE_CAPACITY} sessions (the
 * rest are not rebuilt). The buffer is zero-filled lazily by the OS: only the pages of records
 * written ever cost memory.
 */
import type { ConfigSnapshot } from '../cluster-config/snapshot.ts';
import type { RecoveryFacts } from '../actors/rebuild.ts';

/** Records per worker table. */
export const SESSION_TABLE_CAPACITY = 65_536;
/** Layout version (header word 1). */
const VERSION = 1;
const HEADER_WORDS = 4;
const RECORD_WORDS = 52;
const ADDR_WORDS = 12;
const ADDR_MAX = 46;
const STATE_FREE = 0;
const STATE_WRITING = 1;
const STATE_LIVE = 2;
const FLAG_SHARED = 1;

/** Bytes of a table of `capacity` records. */
export function sessionTableBytes(capacity = SESSION_TABLE_CAPACITY): number {
  return 4 * (HEADER_WORDS + capacity * RECORD_WORDS);
}

/** A new, empty table (main thread). */
export function newSessionTable(capacity = SESSION_TABLE_CAPACITY): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(sessionTableBytes(capacity));
  Atomics.store(new Int32Array(sab), 1, VERSION);
  return sab;
}

/**
 * One live record, decoded against a snapshot (main thread): the session's {@link RecoveryFacts}
 * (`shared`: `session_sockets: listener`), less the listener port, which only cross-checks the
 * listener index.
 */
export type TableRecord = Omit<RecoveryFacts, 'listenerPort'>;

/** What {@link readSessionTable} found: the records that decode, and how many did not (config changed meanwhile). */
export interface TableContents {
  records: TableRecord[];
  /** Live records whose indices no longer name the same objects in the snapshot. */
  stale: number;
  /** Records a dead worker was writing when it stopped (skipped). */
  torn: number;
}

function writeAscii(bytes: Uint8Array, at: number, s: string): number {
  const n = Math.min(s.length, ADDR_MAX);
  for (let i = 0; i < n; i++) bytes[at + i] = s.charCodeAt(i) & 0x7f;
  return n;
}

function readAscii(bytes: Uint8Array, at: number, n: number): string {
  return String.fromCharCode(...bytes.subarray(at, at + Math.min(n, ADDR_MAX)));
}

/**
 * The worker side: records sessions as they are established and frees them as they end. Handles
 * are record indices; -1 means "not recorded". Never throws (a full table records nothing).
 */
export class SessionTableWriter {
  private readonly words: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly capacity: number;
  private readonly free: number[] = [];
  private hwm = 0;
  private readonly snapshot: () => ConfigSnapshot | null;
  private indexedFor: ConfigSnapshot | null = null;
  private listeners = new Map<string, number>();
  private routes = new Map<string, number>();
  private clusters = new Map<string, { index: number; endpoints: Map<string, number> }>();
  /** Sessions not recorded because the table was full (or an address did not fit). */
  skipped = 0;

  /** @param snapshot the config the worker runs now (names are recorded as its indices) */
  constructor(sab: SharedArrayBuffer, snapshot: () => ConfigSnapshot | null) {
    this.words = new Int32Array(sab);
    this.bytes = new Uint8Array(sab);
    this.capacity = Math.floor((this.words.length - HEADER_WORDS) / RECORD_WORDS);
    this.snapshot = snapshot;
  }

  /** Live records (tests). */
  get live(): number {
    return this.hwm - this.free.length;
  }

  private index(): boolean {
    const snap = this.snapshot();
    if (snap === null) return false;
    if (snap === this.indexedFor) return true;
    this.indexedFor = snap;
    this.listeners = new Map(snap.listeners.map((l, i) => [l.name, i]));
    this.routes = new Map(snap.routes.map((r, i) => [r.name, i]));
    this.clusters = new Map(snap.clusters.map((c, i) => [c.name, { index: i, endpoints: new Map(c.endpoints.map((e, j) => [e.name, j])) }]));
    return true;
  }

  /**
   * Record (or rewrite, `handle` >= 0) a session. Returns its handle, -1 when it cannot be recorded
   * (table full, a name unknown to the config in force, an address too long).
   */
  put(f: RecoveryFacts, handle: number): number {
    if (!this.index()) return this.drop(handle);
    const li = this.listeners.get(f.listener);
    const ri = this.routes.get(f.route);
    const c = this.clusters.get(f.cluster);
    if (li === undefined || ri === undefined || c === undefined || f.peerAddress.length > ADDR_MAX || f.remoteAddress.length > ADDR_MAX || f.localAddress.length > ADDR_MAX) {
      this.skipped++;
      return this.drop(handle);
    }
    let h = handle;
    if (h < 0) {
      h = this.free.pop() ?? (this.hwm < this.capacity ? this.hwm++ : -1);
      if (h < 0) {
        this.skipped++;
        return -1;
      }
      Atomics.store(this.words, 0, this.hwm);
    }
    const w = this.words;
    const base = HEADER_WORDS + h * RECORD_WORDS;
    Atomics.store(w, base, STATE_WRITING);
    w[base + 1] = li;
    w[base + 2] = ri;
    w[base + 3] = c.index;
    w[base + 4] = f.endpoint === null ? -1 : (c.endpoints.get(f.endpoint) ?? -1);
    w[base + 5] = f.listenerPort;
    w[base + 6] = f.shared ? FLAG_SHARED : 0;
    w[base + 7] = f.peerPort;
    w[base + 8] = f.remotePort;
    w[base + 9] = f.localPort;
    const b = 4 * base;
    w[base + 10] = writeAscii(this.bytes, b + 64, f.peerAddress);
    w[base + 11] = writeAscii(this.bytes, b + 64 + 4 * ADDR_WORDS, f.remoteAddress);
    w[base + 12] = writeAscii(this.bytes, b + 64 + 8 * ADDR_WORDS, f.localAddress);
    Atomics.store(w, base, STATE_LIVE);
    return h;
  }

  /** Free a session's record (it ended). Returns -1 (the handle to keep). */
  drop(handle: number): number {
    if (handle < 0) return -1;
    Atomics.store(this.words, HEADER_WORDS + handle * RECORD_WORDS, STATE_FREE);
    this.free.push(handle);
    return -1;
  }
}

/**
 * Read a dead worker's table (main thread, after its `'exit'`: nothing writes it any more) and
 * decode each live record against `snap`. A record whose indices name objects that no longer match
 * it (a config change while the worker ran a different snapshot) is counted as stale.
 */
export function readSessionTable(sab: SharedArrayBuffer, snap: ConfigSnapshot): TableContents {
  const w = new Int32Array(sab);
  const bytes = new Uint8Array(sab);
  const out: TableContents = { records: [], stale: 0, torn: 0 };
  if (Atomics.load(w, 1) !== VERSION) return out;
  const hwm = Math.min(Atomics.load(w, 0), Math.floor((w.length - HEADER_WORDS) / RECORD_WORDS));
  for (let h = 0; h < hwm; h++) {
    const base = HEADER_WORDS + h * RECORD_WORDS;
    const state = Atomics.load(w, base);
    if (state === STATE_WRITING) out.torn++;
    if (state !== STATE_LIVE) continue;
    const l = snap.listeners[w[base + 1] as number];
    const r = snap.routes[w[base + 2] as number];
    const c = snap.clusters[w[base + 3] as number];
    const ei = w[base + 4] as number;
    if (l === undefined || r === undefined || c === undefined || l.spec.port !== w[base + 5] || r.destination !== c.name || r.ingress.length + r.egress.length > 0) {
      out.stale++;
      continue;
    }
    const b = 4 * base;
    out.records.push({
      listener: l.name,
      route: r.name,
      cluster: c.name,
      endpoint: ei >= 0 ? (c.endpoints[ei]?.name ?? null) : null,
      shared: ((w[base + 6] as number) & FLAG_SHARED) !== 0,
      peerPort: w[base + 7] as number,
      remotePort: w[base + 8] as number,
      localPort: w[base + 9] as number,
      peerAddress: readAscii(bytes, b + 64, w[base + 10] as number),
      remoteAddress: readAscii(bytes, b + 64 + 4 * ADDR_WORDS, w[base + 11] as number),
      localAddress: readAscii(bytes, b + 64 + 8 * ADDR_WORDS, w[base + 12] as number),
    });
  }
  return out;
}
