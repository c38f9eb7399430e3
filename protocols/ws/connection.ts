/**
 * A datagram {@link Connection} over a `ws` WebSocket: one message is one datagram; everything is
 * sent as binary frames (as l7mp). Backpressure: `send` returns false once `bufferedAmount` passes
 * the high-water mark, and `onDrain` fires from the send callback when it falls below it again.
 */
import type { WebSocket, RawData } from 'ws';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { ErrorCodeValue } from '../../common/errors.ts';
import { BaseConnection } from '../core/connection.ts';

/** Bytes queued in ws above which `send` asks the source to pause. */
const HIGH_WATER = 1 << 20;

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export class WsConnection extends BaseConnection {
  readonly kind = 'datagram' as const;
  readonly local: string;
  readonly remote: string;
  private needDrain = false;
  /** An error destroys the socket, unless the peer broke RFC 6455: ws then finishes its close handshake. */
  private terminateOnError = true;
  private readonly ws: WebSocket;
  private readonly errCode: ErrorCodeValue;

  /**
   * @param onProtocolError called once when the peer broke RFC 6455 (a `WS_ERR_*` error from ws:
   *   bad opcode, unmasked frame, invalid UTF-8, a message over `maxPayload`...). ws has already
   *   sent the close frame (1002/1007/1009); the connection then closes without cutting it off.
   */
  constructor(ws: WebSocket, side: 'downstream' | 'upstream', local: string, remote: string, onProtocolError?: (err: Error & { code?: string }) => void) {
    super();
    this.ws = ws;
    this.local = local;
    this.remote = remote;
    this.errCode = side === 'downstream' ? ErrorCode.DownstreamReset : ErrorCode.UpstreamReset;
    ws.on('message', (data: RawData) => this.receive(toBuffer(data)));
    ws.on('close', () => this.finish(null));
    ws.on('error', (err: Error & { code?: string }) => {
      const protocolError = typeof err.code === 'string' && err.code.startsWith('WS_ERR_');
      if (protocolError && !this.closed) {
        onProtocolError?.(err);
        this.terminateOnError = false;
      }
      this.finish(new L7Error(this.errCode, `WebSocket ${remote}: ${err.message}`, { cause: err }));
    });
  }

  protected override writable(): boolean {
    return this.ws.readyState === 1;
  }

  protected override write(data: Buffer): boolean {
    this.ws.send(data, { binary: true }, this.afterSend);
    if (this.ws.bufferedAmount > HIGH_WATER) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  private readonly afterSend = (): void => {
    if (this.needDrain && this.ws.bufferedAmount <= HIGH_WATER) {
      this.needDrain = false;
      this.handler.onDrain();
    }
  };

  override pause(): void {
    this.ws.pause();
  }

  override resume(): void {
    this.ws.resume();
  }

  // end(): WebSocket has no half-close; the session decides when to close (the default).

  protected override shutdown(): void {
    this.ws.close(1000);
  }

  protected override release(err: L7Error | null): void {
    if (err !== null && this.terminateOnError) this.ws.terminate();
  }
}
