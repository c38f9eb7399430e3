/**
 * A datagram {@link Connection} over a `ws` WebSocket: one message is one datagram; everything is
 * sent as binary frames (as l7mp). Backpressure: `send` returns false once `bufferedAmount` passes
 * the high-water mark, and `onDrain` fires from the send callback when it falls below it again.
 */
import type { WebSocket, RawData } from 'ws';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import type { ErrorCodeValue } from '../../runtime/common/errors.ts';
import { ConnStats } from '../types.ts';
import type { Connection, ConnectionHandler } from '../types.ts';
import { PendingHandler } from '../udp/listener.ts';

/** Bytes queued in ws above which `send` asks the source to pause. */
const HIGH_WATER = 1 << 20;

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export class WsConnection implements Connection {
  readonly kind = 'datagram' as const;
  readonly stats = new ConnStats();
  readonly local: string;
  readonly remote: string;
  private handler: ConnectionHandler = new PendingHandler();
  private closed = false;
  private needDrain = false;
  private readonly ws: WebSocket;
  private readonly errCode: ErrorCodeValue;

  /**
   * @param onProtocolError called once when the peer broke RFC 6455 (a `WS_ERR_*` error from ws:
   *   bad opcode, unmasked frame, invalid UTF-8, a message over `maxPayload`...). ws has already
   *   sent the close frame (1002/1007/1009); the connection then closes without cutting it off.
   */
  constructor(ws: WebSocket, side: 'downstream' | 'upstream', local: string, remote: string, onProtocolError?: (err: Error & { code?: string }) => void) {
    this.ws = ws;
    this.local = local;
    this.remote = remote;
    this.errCode = side === 'downstream' ? ErrorCode.DownstreamReset : ErrorCode.UpstreamReset;
    ws.on('message', (data: RawData) => {
      const b = toBuffer(data);
      this.stats.rxPackets++;
      this.stats.rxBytes += b.length;
      this.handler.onData(b);
    });
    ws.on('close', () => this.finish(null));
    ws.on('error', (err: Error & { code?: string }) => {
      const protocolError = typeof err.code === 'string' && err.code.startsWith('WS_ERR_');
      if (protocolError && !this.closed) onProtocolError?.(err);
      this.finish(new L7Error(this.errCode, `WebSocket ${remote}: ${err.message}`, { cause: err }), !protocolError);
    });
  }

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) prev.flushTo(h);
  }

  send(data: Buffer): boolean {
    if (this.closed || this.ws.readyState !== 1) {
      this.stats.drops++;
      return true;
    }
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
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

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  /** WebSocket has no half-close; the session decides when to close. */
  end(): boolean {
    return false;
  }

  close(): void {
    if (this.closed) return;
    this.ws.close(1000);
    this.finish(null);
  }

  /** @param terminate destroy the socket now (default for errors); false lets ws finish its close handshake. */
  private finish(err: L7Error | null, terminate = err !== null): void {
    if (this.closed) return;
    this.closed = true;
    if (terminate) this.ws.terminate();
    this.handler.onClose(err);
  }
}
