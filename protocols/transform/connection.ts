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
 */
import { ConnStats } from '../types.ts';
import type { ClusterContext, Connection, ConnectionHandler, StreamKind } from '../types.ts';
import type { L7Error } from '../../runtime/common/errors.ts';
import type { Piscina } from 'piscina';
import type { TransformTask } from './runner.ts';

/** In-flight messages above which `send` asks the source to pause. */
export const HIGH_WATER = 256;
/** In-flight messages above which new ones are dropped. */
export const MAX_IN_FLIGHT = 4096;

const noHandler: ConnectionHandler = { onData() {}, onDrain() {}, onEnd() {}, onClose() {} };

/** One message in flight, in send order. */
class Pending {
  done = false;
  /** The result, null for a drop (error or null result). */
  out: Buffer | null = null;
  next: Pending | null = null;
}

/** What a Transform connection needs from its cluster. */
export interface TransformTarget {
  readonly cluster: string;
  readonly module: string;
  readonly export: string;
  readonly pool: Piscina<TransformTask, Uint8Array | null>;
  readonly ctx: ClusterContext;
}

export class TransformConnection implements Connection {
  readonly kind: StreamKind = 'datagram';
  readonly stats = new ConnStats();
  readonly local: string;
  readonly remote = '<TRANSFORM>';
  private handler: ConnectionHandler = noHandler;
  private closed = false;
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
    this.target = target;
    this.local = target.cluster;
    this.metadata = metadata;
    this.onClosed = onClosed;
  }

  setHandler(h: ConnectionHandler): void {
    this.handler = h;
  }

  send(data: Buffer): boolean {
    if (this.closed) {
      this.stats.drops++;
      return true;
    }
    const t = this.target;
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.stats.drops++;
      t.ctx.count('transform_overflow');
      return false;
    }
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
    const p = new Pending();
    if (this.tail === null) this.head = p;
    else this.tail.next = p;
    this.tail = p;
    this.inFlight++;
    // An exact copy, transferred: cloning the Buffer would copy all of its backing store (a pool slab).
    const payload = new Uint8Array(data);
    t.pool.run({ module: t.module, export: t.export, payload, metadata: this.metadata }, { transferList: [payload.buffer] }).then(
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
        t.ctx.count('transform_error');
        t.ctx.rateLog.warn(`transform:${t.cluster}`, { cluster: t.cluster, err: (err as Error)?.message ?? String(err) }, 'transform failed; message dropped');
        this.flush();
      },
    );
    if (this.inFlight >= HIGH_WATER) this.paused = true;
    return !this.paused;
  }

  /** Deliver every finished message at the head, in send order. */
  private flush(): void {
    while (this.head !== null && this.head.done) {
      const p = this.head;
      this.head = p.next;
      if (this.head === null) this.tail = null;
      this.inFlight--;
      if (this.closed) continue;
      if (p.out === null) {
        this.stats.drops++;
        continue;
      }
      this.stats.rxPackets++;
      this.stats.rxBytes += p.out.length;
      this.handler.onData(p.out);
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

  pause(): void {}
  resume(): void {}

  /** Like any bump in the wire: after what is in flight, the transform's side ends too. */
  end(): boolean {
    if (this.closed) return true;
    this.ending = true;
    this.flush();
    return true;
  }

  close(): void {
    this.finish(null);
  }

  /** Close; results still in flight are discarded when they arrive. */
  finish(err: L7Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.onClosed();
    this.handler.onClose(err);
  }
}
