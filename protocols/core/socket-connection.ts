/**
 * The socket adapter of the byte-stream protocols (TCP, Unix streams, RTSP's control connection):
 * a {@link Connection} over a `net.Socket`, how a cluster opens one ({@link connectSocket}) and how
 * a listener accepts them ({@link SocketServer}), both reading into recycled buffers
 * (read-buffer.ts).
 *
 * {@link SocketConnection}: each read chunk goes to the handler; `send` returns false above the
 * socket's high-water mark and the handler's `onDrain` fires on 'drain' (Envoy's readDisable
 * pattern: the session pauses the source). Half-close as l7mp's `end:true` pipes: a FIN from the
 * peer is `onEnd` (the connection can still send), and `end()` sends our FIN after what is queued.
 * The sockets must be half-open capable (`allowHalfOpen: true` on servers and clients), else Node
 * would answer a FIN with its own. Before the session sets its handler, reads are held and the
 * socket paused at the hold's bound (hold.ts): no byte is lost.
 *
 * Reads: a socket created with a {@link ReadBuffer}'s `onread` reads into recycled buffers, and a
 * chunk is only valid during `onData` unless the handler returns false or nothing (read-buffer.ts
 * says why and how); a socket without one reads through Node's stream ('data', a fresh Buffer per
 * read, which the handler owns).
 */
import net from 'node:net';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { ErrorCodeValue } from '../../common/errors.ts';
import type { ListenerContext } from '../types.ts';
import { BaseConnection } from './connection.ts';
import { connectAttempt } from './connect.ts';
import { ReadBuffer } from './read-buffer.ts';
import { closeServer, endThenDestroy, hostPort, listen, stopListening } from './server.ts';

export class SocketConnection extends BaseConnection {
  readonly kind = 'byte' as const;
  readonly local: string;
  readonly remote: string;
  private readonly sock: net.Socket;
  private readonly errCode: ErrorCodeValue;

  /**
   * @param sock a connected socket.
   * @param side `downstream` (accepted by a listener) or `upstream` (opened by a cluster): picks the error code of a reset.
   * @param reader the socket's read side if it was created with its `onread`, else null (stream reads).
   */
  constructor(sock: net.Socket, side: 'downstream' | 'upstream', local: string, remote: string, reader: ReadBuffer | null = null) {
    super();
    this.sock = sock;
    this.local = local;
    this.remote = remote;
    this.errCode = side === 'downstream' ? ErrorCode.DownstreamReset : ErrorCode.UpstreamReset;
    if (reader !== null) {
      reader.deliver = (chunk) => this.receive(chunk);
      for (const chunk of reader.early.splice(0)) this.receive(chunk);
      sock.once('close', () => reader.release());
    } else sock.on('data', (chunk: Buffer) => this.receive(chunk));
    sock.on('drain', () => this.handler.onDrain());
    sock.on('end', () => this.receiveEnd());
    sock.on('close', () => this.finish(null));
    sock.on('error', (err: Error) => this.finish(new L7Error(this.errCode, `${remote}: ${err.message}`, { cause: err })));
  }

  protected override write(data: Buffer): boolean {
    return this.sock.write(data);
  }

  /** Nothing given to `send` is referenced any more: every write went to the kernel (or was dropped). */
  sendReleased(): boolean {
    return this.closed || this.sock.writableLength === 0;
  }

  override pause(): void {
    this.sock.pause();
  }

  override resume(): void {
    this.sock.resume();
  }

  override end(): boolean {
    if (!this.closed && !this.sock.writableEnded) this.sock.end();
    return true;
  }

  /** Graceful: flush what is queued, then FIN. */
  protected override shutdown(): void {
    this.sock.end();
  }

  /** Flush what is queued, send our FIN, then destroy the socket without waiting for the peer's. */
  abort(): void {
    endThenDestroy(this.sock);
    this.finish(null);
  }

  protected override release(err: L7Error | null): void {
    if (err !== null) this.sock.destroy();
    else if (!this.sock.writableEnded) this.sock.end();
  }
}

/**
 * Open a client socket for a cluster (TCP or a Unix stream), reading into recycled buffers, and
 * resolve when it is connected. `what` names the peer (`TCP [::1]:80`, `unix:/path`): it is the
 * connection's `remote`. Rejects with `L7_ERR_UPSTREAM_CONNECT`, `cluster "<name>": <what>: <reason>`,
 * on error or abort (the session enforces the timeout).
 */
export function connectSocket(opts: net.NetConnectOpts, clusterName: string, what: string, signal: AbortSignal): Promise<SocketConnection> {
  return connectAttempt(signal, `cluster "${clusterName}": ${what}`, (a) => {
    const reader = new ReadBuffer();
    const sock = net.createConnection({ ...opts, allowHalfOpen: true, onread: reader.onread });
    a.onFail(() => {
      sock.destroy();
      reader.release();
    });
    sock.once('error', a.fail);
    sock.once('connect', () => {
      sock.removeListener('error', a.fail);
      const local = sock.localAddress === undefined ? 'unix' : hostPort(sock.localAddress, sock.localPort);
      a.done(new SocketConnection(sock, 'upstream', local, what, reader));
    });
  });
}

/**
 * An accepted connection that reads into recycled buffers (read-buffer.ts). `net.Server` has no
 * `onread` option, so the server is created with `pauseOnConnect: true` (nothing read yet) and the
 * accepted socket's handle moves to a new `net.Socket` created with the reader's `onread` (the
 * `handle` option is how Node's cluster module hands accepted handles over). The first socket is
 * destroyed without its handle, and the server's count of connections (`close()` waits for it to
 * reach 0) moves to the new one. When this Node exposes no handle, the accepted socket is resumed
 * as is and `reader` is null (stream reads).
 */
export function adoptAccepted(sock: net.Socket): { sock: net.Socket; reader: ReadBuffer | null } {
  type Internals = net.Socket & { _handle?: { readStart?: unknown } | null; _server?: net.Server | null; server?: net.Server | null };
  const s = sock as Internals;
  const handle = s._handle;
  if (handle === null || handle === undefined || typeof handle.readStart !== 'function' || sock.destroyed) {
    sock.resume();
    return { sock, reader: null };
  }
  const reader = new ReadBuffer();
  const server = s._server ?? null;
  s._handle = null;
  s._server = null;
  sock.destroy();
  const opts = { handle, allowHalfOpen: true, readable: true, writable: true, onread: reader.onread };
  const adopted = new net.Socket(opts as net.SocketConstructorOpts) as Internals;
  adopted._server = server;
  adopted.server = server;
  return { sock: adopted, reader };
}

/**
 * A stream listener's server (TCP, Unix streams): each accepted connection is moved to a socket
 * that reads into recycled buffers ({@link adoptAccepted}) and handed to `accept`, which makes its
 * {@link SocketConnection}. Closing does not wait on peers: connections still open are ended and
 * destroyed once flushed ({@link closeServer}); one accepted after `close()` is destroyed at once.
 */
export class SocketServer {
  private readonly server: net.Server;
  private readonly conns = new Set<net.Socket>();
  private closed = false;

  /** @param accept gets each accepted socket and its read side (pass both to {@link SocketConnection}). */
  constructor(accept: (sock: net.Socket, reader: ReadBuffer | null) => void) {
    // Paused: adoptAccepted moves each connection to a socket that reads into recycled buffers.
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (accepted) => {
      if (this.closed) {
        accepted.destroy();
        return;
      }
      const { sock, reader } = adoptAccepted(accepted);
      this.conns.add(sock);
      sock.once('close', () => this.conns.delete(sock));
      accept(sock, reader);
    });
  }

  /** Connections open now. */
  get size(): number {
    return this.conns.size;
  }

  /** Listen ({@link listen}: a bind error is `L7_ERR_LISTENER_BIND` naming `what`; later accept errors are counted). */
  listen(opts: net.ListenOptions, listenerName: string, what: string, ctx: Pick<ListenerContext, 'count' | 'rateLog'>): Promise<void> {
    return listen(this.server, opts, listenerName, what, ctx);
  }

  /** Drain: stop listening; the connections accepted so far carry on. */
  drain(): void {
    stopListening(this.server);
  }

  /** Stop listening and end every connection. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return closeServer(this.server, this.conns);
  }
}
