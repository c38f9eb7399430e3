/**
 * The base of every {@link Connection}: what each protocol used to write again (undici's
 * `dispatcher-base.js` pattern: the lifecycle in one base class, the I/O in the subclass).
 *
 * - The pre-setup hold: until the session sets its handler, reads go to a {@link PendingHandler}
 *   (bounded: a datagram connection counts drops past it, a byte stream pauses its source), which
 *   `setHandler` replays and whose drops it adds to {@link ConnStats.drops}.
 * - Reads: {@link BaseConnection.receive} counts rx and hands the read to the handler, passing on
 *   its answer (the recycled read buffers of byte streams, read-buffer.ts); once the connection is
 *   closed a read is ignored (nothing reaches a handler after `onClose`).
 * - Sends: `send` on a closed connection (or one {@link BaseConnection.writable} refuses) is
 *   dropped and counted, never thrown; else tx is counted and {@link BaseConnection.write} sends.
 * - One idempotent close: `close()` runs {@link BaseConnection.shutdown} (graceful: FIN, a close
 *   frame, SIGTERM) once, then {@link BaseConnection.finish}, which every error path calls too:
 *   the first caller wins, {@link BaseConnection.release} frees what is left, and the handler's
 *   `onClose` is called exactly once.
 */
import type { L7Error } from '../../common/errors.ts';
import { ConnStats } from '../types.ts';
import type { Connection, ConnectionHandler, StreamKind } from '../types.ts';
import { PendingHandler } from './hold.ts';

export abstract class BaseConnection implements Connection {
  abstract readonly kind: StreamKind;
  readonly stats: ConnStats;
  abstract readonly local: string;
  abstract readonly remote: string;
  protected handler: ConnectionHandler = new PendingHandler(this);
  protected closed = false;

  /** @param stats counters to use (a wrapper shares its transport's); a fresh set by default. */
  constructor(stats: ConnStats = new ConnStats()) {
    this.stats = stats;
  }

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) {
      this.stats.drops += prev.dropped;
      prev.flushTo(h);
    }
  }

  /** Count a read from the peer in rx; false (nothing counted) once the connection is closed. */
  protected countRx(data: Buffer): boolean {
    if (this.closed) return false;
    this.stats.rxPackets++;
    this.stats.rxBytes += data.length;
    return true;
  }

  /**
   * A read from the peer: counted and handed to the handler, ignored once closed. Returns the
   * handler's answer (true: it kept no reference to `data`, {@link ConnectionHandler.onData}), and
   * true for a read it ignored, so a transport that recycles its read buffers may reuse them.
   */
  protected receive(data: Buffer): boolean | void {
    if (!this.countRx(data)) return true;
    return this.handler.onData(data);
  }

  /** The peer finished sending (FIN, EOF): passed on unless closed. */
  protected receiveEnd(): void {
    if (!this.closed) this.handler.onEnd();
  }

  send(data: Buffer): boolean {
    if (this.closed || !this.writable()) return this.dropSend();
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
    return this.write(data);
  }

  /** A send that cannot go out: counted in drops; true, as there is nothing to wait for. */
  protected dropSend(): boolean {
    this.stats.drops++;
    return true;
  }

  /** False when the transport no longer takes data although the connection is open (ended, not yet open). */
  protected writable(): boolean {
    return true;
  }

  /** Send one counted message or chunk; false above the high-water mark (the caller waits for `onDrain`). */
  protected abstract write(data: Buffer): boolean;

  /** No push-back by default (datagram sockets, virtual peers). */
  pause(): void {}
  resume(): void {}

  /** No half-close by default: the session decides when to close. */
  end(): boolean {
    return false;
  }

  close(): void {
    if (this.closed) return;
    this.shutdown();
    this.finish(null);
  }

  /** The graceful part of `close()` (FIN, a close frame, SIGTERM); runs at most once. */
  protected shutdown(): void {}

  /** Close with `err` (null: a normal end). Idempotent: the first call wins. */
  protected finish(err: L7Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.release(err);
    this.handler.onClose(err);
  }

  /** Free what the connection holds, before its handler hears the close (destroy on error, leave a domain). */
  protected release(_err: L7Error | null): void {}
}
