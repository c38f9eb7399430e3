/**
 * The pre-setup hold: what a connection reads before the session sets its handler (the first
 * datagram, a burst, a request body that came with its head), kept in order and replayed by
 * {@link PendingHandler.flushTo} when the handler is set, with the peer's end and the close.
 *
 * Bounded by {@link HOLD_MAX} reads. Past it, a datagram connection drops and counts
 * ({@link PendingHandler.dropped}, added to the connection's drops when the handler is set); a
 * byte stream never loses bytes: it pauses its source at the bound and resumes it at the flush,
 * keeping the odd chunk already on its way.
 */
import type { L7Error } from '../../common/errors.ts';
import type { Connection, ConnectionHandler } from '../types.ts';

/** Reads a connection holds before the session sets its handler. */
export const HOLD_MAX = 256;

/** What a hold needs of its connection: its kind, and a way to stop and restart its reads. */
export type HoldSource = Pick<Connection, 'kind' | 'pause' | 'resume'>;

export class PendingHandler implements ConnectionHandler {
  readonly queue: Buffer[] = [];
  /** The close seen before the flush: undefined while open, else its error (null for a normal end). */
  closed: L7Error | null | undefined = undefined;
  ended = false;
  /** Datagrams dropped past {@link HOLD_MAX}. */
  dropped = 0;
  private readonly source: HoldSource | null;
  /** The hold paused a byte-stream source. */
  private paused = false;

  /**
   * @param source the connection whose reads are held (its kind is read when the bound is
   *   reached, so a subclass may set it after construction). Without one, the hold drops past
   *   the bound whatever it holds (the datagram behaviour).
   */
  constructor(source: HoldSource | null = null) {
    this.source = source;
  }

  onData(data: Buffer): void {
    if (this.queue.length < HOLD_MAX) {
      this.queue.push(data);
      return;
    }
    const s = this.source;
    if (s === null || s.kind !== 'byte') {
      this.dropped++;
      return;
    }
    this.queue.push(data);
    if (!this.paused) {
      this.paused = true;
      s.pause();
    }
  }
  onDrain(): void {}
  onEnd(): void {
    this.ended = true;
  }
  onClose(err: L7Error | null): void {
    if (this.closed === undefined) this.closed = err;
  }

  /**
   * Hand everything held to `h`, in order: the reads, the end, the close. A source the hold
   * paused is resumed first (its next read comes from the event loop, after this call), so a
   * pause `h` asks for while it takes the held reads stays in force.
   */
  flushTo(h: ConnectionHandler): void {
    if (this.paused) {
      this.paused = false;
      this.source?.resume();
    }
    for (const d of this.queue) h.onData(d);
    this.queue.length = 0;
    if (this.ended) h.onEnd();
    if (this.closed !== undefined) h.onClose(this.closed);
  }
}
