/**
 * The UDP socket adapter: a datagram {@link Connection} over a `node:dgram` socket connected to its
 * peer (UDP's upstreams, downstreams and singleton; RTSP's RTP/RTCP pinholes).
 *
 * - Reads: each datagram goes to the handler through {@link BaseConnection.receive} (rx counted).
 * - Sends: counted in tx by the send callback once the kernel took the datagram; a send the kernel
 *   refuses is a drop by errno ({@link ConnStats.sendResult}), never tx. The callback is one
 *   function per connection: nothing is allocated per datagram.
 * - Errors: a socket error (ECONNREFUSED: the peer's port is closed, an ICMP port unreachable)
 *   closes the connection with the subclass's {@link DgramConnection.resetError}; so does a send
 *   refused with ECONNREFUSED, as when the ICMP error is read.
 * - Close: the socket is closed (once) when the connection finishes.
 *
 * {@link SpliceableDgramConnection} adds the kernel-offload hooks of {@link Connection}: the
 * socket's fd once it is connected, its reads stopped and restarted around a splice, and socket
 * errors routed to the session while spliced. A listener's own socket (UDP singleton) must not
 * offer them: it extends {@link DgramConnection} only.
 */
import dgram from 'node:dgram';
import type { L7Error } from '../../common/errors.ts';
import { dgramFd, dgramReading } from '../../common/dgram-fd.ts';
import { BaseConnection } from './connection.ts';

/** dgram can bind and connect synchronously (`bindSync`, `connectSync`: Node >= 24.19). */
export const SYNC_SOCKETS = typeof (dgram.Socket.prototype as Partial<dgram.Socket>).bindSync === 'function' && typeof (dgram.Socket.prototype as Partial<dgram.Socket>).connectSync === 'function';

export abstract class DgramConnection extends BaseConnection {
  readonly kind = 'datagram' as const;
  /** The socket, once {@link DgramConnection.attach}ed; null before and after the close. */
  protected sock: dgram.Socket | null = null;

  /** The error the connection closes with when its socket fails (`L7_ERR_DOWNSTREAM_RESET` or `L7_ERR_UPSTREAM_RESET`). */
  protected abstract resetError(err: Error): L7Error;

  /**
   * Read `s` from now on. Its listeners are made here, not per instance: a connection that never
   * has a socket of its own (a UDP downstream answered through the listening socket) allocates none.
   */
  protected attach(s: dgram.Socket): void {
    this.sock = s;
    s.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => this.onDatagram(msg, rinfo));
    s.on('error', (err: Error) => this.socketError(err));
  }

  /** One datagram from the peer (the socket's 'message'). */
  protected onDatagram(msg: Buffer, _rinfo: dgram.RemoteInfo): void {
    this.receive(msg);
  }

  /** The socket failed: the connection closes with {@link DgramConnection.resetError}. */
  protected socketError(err: Error): void {
    this.finish(this.resetError(err));
  }

  /** A send refused with ECONNREFUSED (already counted as a drop): by default the same as the socket error. */
  protected sendRefused(err: Error): void {
    this.socketError(err);
  }

  /** Counted in tx by {@link DgramConnection.onSent}, not here; the send never pushes back. */
  override send(data: Buffer): boolean {
    if (this.closed) return this.dropSend();
    return this.write(data);
  }

  /** Send on the connected socket. */
  protected override write(data: Buffer): boolean {
    (this.sock as dgram.Socket).send(data, this.onSent);
    return true;
  }

  /** The send callback, one per connection (no closure per datagram): tx, or a drop by errno. */
  protected readonly onSent = (err: Error | null, bytes?: number): void => {
    if (this.stats.sendResult(err, bytes) === 'ECONNREFUSED') this.sendRefused(err as Error);
  };

  protected override release(_err: L7Error | null): void {
    const s = this.sock;
    if (s === null) return;
    this.sock = null;
    // No 'message' after this: close stops the reads (the 'error' listener stays for late errors).
    try {
      s.close();
    } catch {
      // already closed (by the runtime at worker exit)
    }
  }
}

/** A {@link DgramConnection} the session may splice in the kernel (native-offload/). */
export abstract class SpliceableDgramConnection extends DgramConnection {
  spliceErrorHook: ((err: Error) => void) | null = null;

  /** True once the socket is connected to its peer; a socket connected before it was attached always is. */
  protected peerConnected(): boolean {
    return true;
  }

  /** The socket's fd once it is connected to its peer, else -1 (not yet, or closed). */
  spliceFd(): number {
    const s = this.sock;
    return this.closed || s === null || !this.peerConnected() ? -1 : dgramFd(s);
  }

  spliceReading(reading: boolean): boolean {
    const s = this.sock;
    return !this.closed && s !== null && dgramReading(s, reading);
  }

  /** While spliced, the session's hook takes the error (it resets the kernel's relay) and the connection stays. */
  protected override socketError(err: Error): void {
    if (this.spliceErrorHook !== null) {
      this.spliceErrorHook(err);
      return;
    }
    super.socketError(err);
  }
}
