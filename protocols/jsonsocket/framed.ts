/**
 * The connection a JSONSocket session sees once the handshake is done: the transport connection,
 * minus the header. Reads after the header go to the session's handler (held until it is set);
 * on the listener side, sends are held until the 200 reply has gone out, so the reply is always
 * the peer's first message. Counters are the transport's (header bytes included: they were on
 * the wire).
 */
import type { Connection, ConnectionHandler, StreamKind } from '../types.ts';
import type { L7Error } from '../../common/errors.ts';
import { BaseConnection } from '../core/connection.ts';
import { HOLD_MAX } from '../core/hold.ts';
import { reply, statusMessage } from './codec.ts';

/**
 * The session's side of a transport connection after its header. Its hold of sends before the
 * 200 reply keeps at most {@link HOLD_MAX} (the session replays at most that many upstream reads).
 */
export class FramedConnection extends BaseConnection implements ConnectionHandler {
  readonly kind: StreamKind;
  readonly local: string;
  readonly remote: string;
  private readonly inner: Connection;
  /** Listener side: false until the 200 reply is sent. */
  private open: boolean;
  private held: Buffer[] | null = null;

  /**
   * @param inner the transport connection; this object becomes its handler.
   * @param open true on the client side (nothing to answer), false on the listener side.
   */
  constructor(inner: Connection, open: boolean) {
    super(inner.stats);
    this.inner = inner;
    this.kind = inner.kind;
    this.local = inner.local;
    this.remote = inner.remote;
    this.open = open;
    inner.setHandler(this);
  }

  // --- Connection (what the session uses)

  /** Counted by the transport: its `send` counts tx and drops. */
  override send(data: Buffer): boolean {
    if (this.open) return this.inner.send(data);
    const q = (this.held ??= []);
    if (q.length < HOLD_MAX) q.push(data);
    else this.stats.drops++;
    return true;
  }

  protected override write(data: Buffer): boolean {
    return this.inner.send(data);
  }

  override pause(): void {
    this.inner.pause();
  }
  override resume(): void {
    this.inner.resume();
  }
  override end(): boolean {
    return this.inner.end();
  }
  /** The transport closes, and its close comes back through {@link onClose}. */
  override close(): void {
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

  // --- ConnectionHandler (what the transport calls; the transport counted rx)

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
    this.finish(err);
  }
}
