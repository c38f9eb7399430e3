/**
 * The connection of a Transform stage: each message the session sends is transformed in the pool
 * and what comes back goes on to the next stage, in the order the messages were sent, although the
 * pool runs many at once:
 * ```
 *   send(m1) send(m2) send(m3)      pending: [m1 …] → [m2 ✓] → [m3 ✓]     (m2, m3 done before m1)
 *   m1 done ─► flush: m1, m2, m3 delivered in order; an error or null result is dropped and counted
 * ```
 * Bounded: above {@link HIGH_WATER} messages in flight `send` returns false (a byte-stream source
 * pauses until `onDrain`); at {@link MAX_IN_FLIGHT} further messages are dropped
 * (`transform_overflow`).
 *
 * Watchdog: a message still running `timeout` ms after its pool thread started it is aborted:
 * piscina terminates that thread (a busy loop cannot be stopped any other way) and starts a new
 * one, the message is dropped and counted (`transform_timeout`), and the session goes on with its
 * next messages, in order. A message that waits in the pool's queue for more than
 * {@link QUEUE_DEADLINE_FACTOR} times `timeout` is dropped the same way (the pool is overloaded).
 */
import type { ClusterContext, StreamKind } from '../types.ts';
import type { L7Error } from '../../common/errors.ts';
import { BaseConnection } from '../core/connection.ts';
import type { Piscina } from 'piscina';
import { WATCHDOG_SLOTS, type TransformTask } from './task.ts';
import { nextSeq, unwatch, watch, type Watched } from './pool.ts';

/** A message not started within this many `timeout`s of its send is dropped too (overload). */
export const QUEUE_DEADLINE_FACTOR = 10;

/** In-flight messages above which `send` asks the source to pause. */
export const HIGH_WATER = 256;
/** In-flight messages above which new ones are dropped. */
export const MAX_IN_FLIGHT = 4096;

/**
 * One message in flight, in send order. It is also the task's abort signal for piscina (an
 * `AbortSignalEventTarget`: no AbortController per message).
 */
class Pending {
  done = false;
  /** The result, null for a drop (error or null result). */
  out: Buffer | null = null;
  next: Pending | null = null;
  /** The task's sequence number (its slot in the watchdog's start flags). */
  readonly seq: number;
  /** performance.now() when it was sent, and when a pool thread was seen running it (0: not yet). */
  readonly sent: number;
  started = 0;
  /** Set by the watchdog: the deadline passed and the task was aborted. */
  aborted = false;
  readonly reason = 'transform_timeout';
  private listener: (() => void) | null = null;

  constructor(seq: number, sent: number) {
    this.seq = seq;
    this.sent = sent;
  }

  addEventListener(_name: 'abort', listener: () => void): void {
    this.listener = listener;
  }

  removeEventListener(_name: 'abort', listener: () => void): void {
    if (this.listener === listener) this.listener = null;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const l = this.listener;
    this.listener = null;
    l?.();
  }
}

/** What a Transform connection needs from its cluster. */
export interface TransformTarget {
  readonly cluster: string;
  readonly module: string;
  readonly export: string;
  readonly pool: Piscina<TransformTask, Uint8Array | null>;
  readonly ctx: ClusterContext;
  /** Per-message deadline of the cluster (`timeout`), counted from when a pool thread starts the message. Unit: ms. */
  readonly timeoutMs: number;
}

export class TransformConnection extends BaseConnection implements Watched {
  readonly kind: StreamKind = 'datagram';
  readonly local: string;
  readonly remote = '<TRANSFORM>';
  /** The session half-closed: end towards it once everything in flight is delivered. */
  private ending = false;
  private head: Pending | null = null;
  private tail: Pending | null = null;
  private inFlight = 0;
  private paused = false;
  private readonly target: TransformTarget;
  private readonly metadata: Record<string, unknown>;
  private readonly onClosed: () => void;

  constructor(target: TransformTarget, metadata: Record<string, unknown>, onClosed: () => void) {
    super();
    this.target = target;
    this.local = target.cluster;
    this.metadata = metadata;
    this.onClosed = onClosed;
  }

  /** Counted here rather than in `write`: a message over {@link MAX_IN_FLIGHT} is a drop, and asks the source to pause. */
  override send(data: Buffer): boolean {
    if (this.closed) return this.dropSend();
    const t = this.target;
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.stats.drops++;
      t.ctx.count('transform_overflow');
      return false;
    }
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
    const p = new Pending(nextSeq(), performance.now());
    if (this.tail === null) this.head = p;
    else this.tail.next = p;
    this.tail = p;
    if (this.inFlight++ === 0) watch(this);
    // An exact copy, transferred: cloning the Buffer would copy all of its backing store (a pool slab).
    const payload = new Uint8Array(data);
    t.pool.run({ module: t.module, export: t.export, payload, metadata: this.metadata, seq: p.seq }, { transferList: [payload.buffer], signal: p }).then(
      (out) => {
        p.done = true;
        if (out === null) t.ctx.count('transform_null');
        else p.out = Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
        this.flush();
      },
      (err: unknown) => {
        p.done = true;
        // After the stage closed (the pool is destroyed with its last cluster) nobody waits for it.
        if (this.closed) return this.flush();
        if (p.aborted) {
          t.ctx.count('transform_timeout');
          t.ctx.rateLog.warn(
            `transform-timeout:${t.cluster}`,
            { cluster: t.cluster, timeout_ms: t.timeoutMs, started: p.started !== 0 },
            p.started !== 0 ? 'transform ran past its deadline; message dropped, its pool thread replaced' : 'transform waited past its deadline in the pool queue; message dropped',
          );
        } else {
          t.ctx.count('transform_error');
          t.ctx.rateLog.warn(`transform:${t.cluster}`, { cluster: t.cluster, err: (err as Error)?.message ?? String(err) }, 'transform failed; message dropped');
        }
        this.flush();
      },
    );
    if (this.inFlight >= HIGH_WATER) this.paused = true;
    return !this.paused;
  }

  /**
   * The watchdog's check (every 50 ms while messages are in flight, also after the stage closed:
   * a stuck thread is replaced either way): a message seen started is aborted `timeout` ms after
   * it started, one never started {@link QUEUE_DEADLINE_FACTOR} `timeout`s after it was sent.
   */
  sweep(now: number, started: Int32Array): void {
    const limit = this.target.timeoutMs;
    for (let p = this.head; p !== null; p = p.next) {
      if (p.done || p.aborted) continue;
      if (p.started === 0 && Atomics.load(started, p.seq & (WATCHDOG_SLOTS - 1)) === p.seq) p.started = now;
      if (p.started !== 0 ? now - p.started >= limit : now - p.sent >= limit * QUEUE_DEADLINE_FACTOR) p.abort();
    }
  }

  /** Deliver every finished message at the head, in send order. */
  private flush(): void {
    while (this.head !== null && this.head.done) {
      const p = this.head;
      this.head = p.next;
      if (this.head === null) this.tail = null;
      if (--this.inFlight === 0) unwatch(this);
      if (this.closed) continue;
      if (p.out === null) {
        this.stats.drops++;
        continue;
      }
      this.receive(p.out);
    }
    if (this.closed) return;
    if (this.paused && this.inFlight < HIGH_WATER / 2) {
      this.paused = false;
      this.handler.onDrain();
    }
    if (this.ending && this.inFlight === 0) {
      this.ending = false;
      this.handler.onEnd();
    }
  }

  protected override write(): boolean {
    return true;
  }

  /** Like any bump in the wire: after what is in flight, the transform's side ends too. */
  override end(): boolean {
    if (this.closed) return true;
    this.ending = true;
    this.flush();
    return true;
  }

  /** Results still in flight are discarded when they arrive. */
  protected override release(_err: L7Error | null): void {
    this.onClosed();
  }
}
