/**
 * The connection a JSONSocket session sees once the handshake is done: the transport connection,
 * minus the header. Reads after the header go to the session's handler (held until it is set);
 * on the listener side, sends are held until the 200 reply has gone out, so the reply is always
 * the peer's first message. Counters are the transport's (header bytes included: they were on
 * the wire).
 */
import { ConnStats } from '../types.ts';
import type { Connection, ConnectionHandler, StreamKind } from '../types.ts';
import type { L7Error } from '../../runtime/common/errors.ts';
import { PendingHandler } from '../udp/listener.ts';
import { reply, statusMessage } from './codec.ts';

/** Sends held before the 200 reply (the session replays at most this many upstream reads). */
const HOLD_MAX = 256;

export class FramedConnection implements Connection, ConnectionHandler {
  readonly kind: StreamKind;
  readonly stats: ConnStats;
  readonly local: string;
  readonly remote: string;
  private readonly inner: Connection;
  private handler: ConnectionHandler = new PendingHandler();
  /** Listener side: false until the 200 reply is sent. */
  private open: boolean;
  private held: Buffer[] | null = null;

  /**
   * @param inner the transport connection; this object becomes its handler.
   * @param open true on the client side (nothing to answer), false on the listener side.
   */
  constructor(inner: Connection, open: boolean) {
    this.inner = inner;
    this.kind = inner.kind;
    this.stats = inner.stats;
    this.local = inner.local;
    this.remote = inner.remote;
    this.open = open;
    inner.setHandler(this);
  }

  // --- Connection (what the session uses)

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) {
      this.stats.drops += prev.dropped;
      prev.flushTo(h);
    }
  }

  send(data: Buffer): boolean {
    if (this.open) return this.inner.send(data);
    const q = (this.held ??= []);
    if (q.length < HOLD_MAX) q.push(data);
    else this.stats.drops++;
    return true;
  }

  pause(): void {
    this.inner.pause();
  }
  resume(): void {
    this.inner.resume();
  }
  end(): boolean {
    return this.inner.end();
  }
  close(): void {
    this.inner.close();
  }

  /** Listener side: the route is up; answer 200, then what was held. */
  onSessionConnected(): void {
    if (this.open) return;
    this.inner.send(reply(200, 'OK'));
    this.open = true;
    const q = this.held;
    this.held = null;
    if (q !== null) for (const d of q) this.inner.send(d);
  }

  /** Listener side: routing or setup failed; answer with l7mp's status and message. */
  onSessionFailed(err: L7Error): void {
    if (this.open) return;
    this.inner.send(reply(err.status, statusMessage(err.status, err.message)));
  }

  // --- ConnectionHandler (what the transport calls)

  onData(data: Buffer): void {
    this.handler.onData(data);
  }
  onDrain(): void {
    this.handler.onDrain();
  }
  onEnd(): void {
    this.handler.onEnd();
  }
  onClose(err: L7Error | null): void {
    this.handler.onClose(err);
  }
}
