/**
 * A datagram {@link Connection} over a SOCK_DGRAM Unix socket (relayed to the main thread, see
 * dgram-host.ts): one datagram is one message, end to end. What arrives from the peer is fed in
 * through {@link UdsDgramConnection.deliver} by the socket's owner (the listener's shared socket,
 * or the stage's own socket on the cluster side).
 */
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { ErrorCodeValue } from '../../common/errors.ts';
import { errnoOfMessage } from '../types.ts';
import { BaseConnection } from '../core/connection.ts';
import type { UnixDgram } from './dgram-relay.ts';

/**
 * Received datagrams this long may have been cut by `node-unix-socket` (its receive buffer is
 * 65535 bytes): they are dropped and counted, never passed on cut. Unit: bytes.
 */
export const DGRAM_RECV_LIMIT = 65535;

/** The peer's socket is gone (its path removed, or nobody bound to it): the library reports errno text only. */
export function peerGone(msg: string): boolean {
  return /No such file or directory|Connection refused/i.test(msg);
}

export class UdsDgramConnection extends BaseConnection {
  readonly kind = 'datagram' as const;
  readonly local: string;
  readonly remote: string;
  /** The peer's path; '' for a sender that did not bind one (replies are dropped). */
  readonly peer: string;
  private readonly sock: UnixDgram;
  private readonly errCode: ErrorCodeValue;
  private readonly onClosed: (c: UdsDgramConnection) => void;

  constructor(sock: UnixDgram, local: string, peer: string, side: 'downstream' | 'upstream', onClosed: (c: UdsDgramConnection) => void) {
    super();
    this.sock = sock;
    this.local = `unix:${local}`;
    this.peer = peer;
    this.remote = peer === '' ? 'unix:(unbound)' : `unix:${peer}`;
    this.errCode = side === 'downstream' ? ErrorCode.DownstreamReset : ErrorCode.UpstreamReset;
    this.onClosed = onClosed;
  }

  /** A datagram from the peer. */
  deliver(data: Buffer): void {
    if (this.closed) return;
    if (data.length >= DGRAM_RECV_LIMIT) {
      this.stats.drops++;
      return;
    }
    this.receive(data);
  }

  /** Sends to the peer that left the socket (the host's batched acknowledgement): counted in tx. */
  sent(packets: number, bytes: number): void {
    this.stats.txPackets += packets;
    this.stats.txBytes += bytes;
  }

  /**
   * A send to the peer failed: a drop by errno ({@link ConnStats.sendFailed}); if the peer is gone
   * (its path removed or unbound) the session ends too.
   */
  sendFailed(msg: string): void {
    this.stats.sendFailed(errnoOfMessage(msg));
    if (peerGone(msg)) this.fail(msg);
  }

  /** The socket failed. */
  fail(msg: string): void {
    this.finish(new L7Error(this.errCode, `${this.remote}: ${msg}`));
  }

  /** Counted in tx when the host acknowledges it ({@link sent}), or a drop by errno ({@link sendFailed}). */
  override send(data: Buffer): boolean {
    if (this.closed || this.peer === '') return this.dropSend();
    this.sock.send(data, this.peer);
    return true;
  }

  protected override write(): boolean {
    return true;
  }

  protected override release(): void {
    this.onClosed(this);
  }
}
