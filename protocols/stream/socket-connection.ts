/**
 * A byte-stream {@link Connection} over a `net.Socket` (TCP or a Unix stream socket): each read
 * chunk goes to the handler; `send` returns false above the socket's high-water mark and the
 * handler's `onDrain` fires on 'drain' (Envoy's readDisable pattern: the session pauses the source).
 * Half-close as l7mp's `end:true` pipes: a FIN from the peer is `onEnd` (the connection can still
 * send), and `end()` sends our FIN after what is queued. The sockets must be half-open capable
 * (`allowHalfOpen: true` on servers and clients), else Node would answer a FIN with its own.
 *
 * Reads: a socket created with a {@link ReadBuffer}'s `onread` reads into recycled buffers, and a
 * chunk is only valid during `onData` unless the handler returns false or nothing (read-buffer.ts
 * says why and how); a socket without one reads through Node's stream ('data', a fresh Buffer per
 * read, which the handler owns).
 */
import type net from 'node:net';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import type { ErrorCodeValue } from '../../runtime/common/errors.ts';
import { ConnStats } from '../types.ts';
import type { Connection, ConnectionHandler } from '../types.ts';
import { PendingHandler } from '../udp/listener.ts';
import type { ReadBuffer } from './read-buffer.ts';

export class SocketConnection implements Connection {
  readonly kind = 'byte' as const;
  readonly stats = new ConnStats();
  readonly local: string;
  readonly remote: string;
  private handler: ConnectionHandler = new PendingHandler();
  private closed = false;
  private readonly sock: net.Socket;
  private readonly errCode: ErrorCodeValue;

  /**
   * @param sock a connected socket.
   * @param side `downstream` (accepted by a listener) or `upstream` (opened by a cluster): picks the error code of a reset.
   * @param reader the socket's read side if it was created with its `onread`, else null (stream reads).
   */
  constructor(sock: net.Socket, side: 'downstream' | 'upstream', local: string, remote: string, reader: ReadBuffer | null = null) {
    this.sock = sock;
    this.local = local;
    this.remote = remote;
    this.errCode = side === 'downstream' ? ErrorCode.DownstreamReset : ErrorCode.UpstreamReset;
    if (reader !== null) {
      reader.deliver = (chunk) => this.onChunk(chunk);
      for (const chunk of reader.early.splice(0)) this.onChunk(chunk);
      sock.once('close', () => reader.release());
    } else sock.on('data', (chunk: Buffer) => this.onChunk(chunk));
    sock.on('drain', () => this.handler.onDrain());
    sock.on('end', () => this.handler.onEnd());
    sock.on('close', () => this.finish(null));
    sock.on('error', (err: Error) => this.finish(new L7Error(this.errCode, `${remote}: ${err.message}`, { cause: err })));
  }

  private onChunk(chunk: Buffer): boolean | void {
    this.stats.rxPackets++;
    this.stats.rxBytes += chunk.length;
    return this.handler.onData(chunk);
  }

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) prev.flushTo(h);
  }

  send(data: Buffer): boolean {
    if (this.closed) {
      this.stats.drops++;
      return true;
    }
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
    return this.sock.write(data);
  }

  /** Nothing given to `send` is referenced any more: every write went to the kernel (or was dropped). */
  sendReleased(): boolean {
    return this.closed || this.sock.writableLength === 0;
  }

  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  end(): boolean {
    if (!this.closed && !this.sock.writableEnded) this.sock.end();
    return true;
  }

  close(): void {
    if (this.closed) return;
    // Graceful: flush what is queued, then FIN.
    this.sock.end();
    this.finish(null);
  }

  /** Flush what is queued, send our FIN, then destroy the socket without waiting for the peer's. */
  abort(): void {
    const s = this.sock;
    if (!s.destroyed) {
      if (!s.writableEnded) s.end();
      if (s.writableFinished) s.destroy();
      else s.once('finish', () => s.destroy());
    }
    this.finish(null);
  }

  private finish(err: L7Error | null): void {
    if (this.closed) return;
    this.closed = true;
    if (err !== null) this.sock.destroy();
    else if (!this.sock.writableEnded) this.sock.end();
    this.handler.onClose(err);
  }
}
