/**
 * The data-path half of the protocol contract (protocols/types.ts re-exports it): a
 * {@link Connection} is one side of a session (the downstream the listener accepted, or one
 * upstream a cluster opened). Connections never use Node streams or events on the hot path: each
 * gets one {@link ConnectionHandler} object, set once, whose `onData` is called per datagram
 * (datagram streams) or per read chunk (byte streams). Counters are plain fields ({@link ConnStats}).
 */
import type { L7Error } from '../../common/errors.ts';

/** Message boundaries kept (UDP, WebSocket, Echo) or not (TCP, Unix stream, Logger). */
export type StreamKind = 'datagram' | 'byte';

/** Session metadata, l7mp's schema (docs/l7mp-compat.md §3.1): `/IP/src_addr`, `/UDP/src_port`... */
export type Metadata = Record<string, unknown>;

/** Per-connection counters, incremented on the data path (plain fields, no allocation). */
export class ConnStats {
  /** Datagrams (or read chunks) received from the peer. */
  rxPackets = 0;
  /** Bytes received from the peer. */
  rxBytes = 0;
  /** Datagrams (or writes) sent to the peer. */
  txPackets = 0;
  /** Bytes sent to the peer. */
  txBytes = 0;
  /** Messages dropped by this connection (send on a closed socket, overflow, malformed). */
  drops = 0;
  /**
   * Datagrams whose send failed in the kernel, by errno (UDP and Unix datagram sockets): never
   * counted in tx. `metrics` reports them as drops with reason `emsgsize` (larger than the path
   * allows: 65507 bytes over IPv4, the socket's send buffer for Unix datagrams), `enobufs` (no
   * buffer space in the kernel), `econnrefused` (the connected peer's port or path is closed: an
   * earlier datagram drew an ICMP port unreachable) and `send_error` (any other errno).
   */
  dropEmsgsize = 0;
  dropEnobufs = 0;
  dropEconnrefused = 0;
  dropSendError = 0;

  /**
   * The outcome of one datagram send (a dgram send callback): tx on success, else a drop by
   * errno. Returns the errno name of a refused send (`ECONNREFUSED`: the peer's port is closed),
   * null when it was sent.
   */
  sendResult(err: Error | null | undefined, bytes: number | undefined): string | null {
    if (err === null || err === undefined) {
      this.txPackets++;
      this.txBytes += bytes ?? 0;
      return null;
    }
    const code = (err as NodeJS.ErrnoException).code;
    this.sendFailed(code);
    return code ?? '';
  }

  sendFailed(code: string | undefined): void {
    if (code === 'EMSGSIZE') this.dropEmsgsize++;
    else if (code === 'ENOBUFS') this.dropEnobufs++;
    else if (code === 'ECONNREFUSED') this.dropEconnrefused++;
    else this.dropSendError++;
  }
}

/**
 * The errno name (`EMSGSIZE`...) of an error that carries only the C library's text, as
 * `node-unix-socket` reports them ("Message too long"); undefined for any other text.
 */
export function errnoOfMessage(msg: string): string | undefined {
  if (/EMSGSIZE|Message too long/i.test(msg)) return 'EMSGSIZE';
  if (/ENOBUFS|No buffer space/i.test(msg)) return 'ENOBUFS';
  if (/ECONNREFUSED|Connection refused/i.test(msg)) return 'ECONNREFUSED';
  return undefined;
}

/** Receives what a {@link Connection} reads and its end. One object, set once per connection. */
export interface ConnectionHandler {
  /**
   * One datagram, or one chunk of a byte stream. Return true only if no reference to `data` is
   * kept after the call (it was copied, or written to the kernel: {@link Connection.sendReleased}):
   * a connection that reads into recycled buffers (stream sockets, protocols/core/read-buffer.ts)
   * then reads into the same memory again. Anything else (void) hands the buffer over to the handler.
   */
  onData(data: Buffer): boolean | void;
  /** The connection's send buffer drained below its high-water mark (byte streams). */
  onDrain(): void;
  /**
   * The peer finished sending (a TCP/Unix FIN, or a virtual peer that ended); the connection can
   * still send. Byte streams and virtual clusters only; datagram connections never call it.
   */
  onEnd(): void;
  /** The connection closed: `null` for a normal end (FIN, close), an error otherwise. Called once. */
  onClose(err: L7Error | null): void;
}

/** One side of a session: a downstream accepted by a listener or an upstream opened by a cluster. */
export interface Connection {
  readonly kind: StreamKind;
  /**
   * True for a virtual stage that maps each message to at most one message (Echo, Logger,
   * JSONEncap...): it keeps whatever framing its input had, so it neither creates message
   * boundaries nor loses them. Optional, default false.
   */
  readonly passThrough?: boolean;
  readonly stats: ConnStats;
  /** Human-readable local and remote addresses, for the actor tree and logs. */
  readonly local: string;
  readonly remote: string;
  /**
   * Set the receiver. Data that arrived before a handler was set is held (bounded, see each
   * protocol) and delivered on this call, in order.
   */
  setHandler(h: ConnectionHandler): void;
  /**
   * Send one message (datagram) or chunk (byte stream). Returns false when the connection buffers
   * above its high-water mark: the caller pauses its source until `onDrain`. Never throws: a send
   * on a closed connection is dropped and counted.
   */
  send(data: Buffer): boolean;
  /**
   * Optional: true when no buffer passed to `send` is referenced by the connection any more (every
   * byte went to the kernel, or was dropped), so the caller may reuse the memory at once. Without
   * the method, a sent buffer is assumed held.
   */
  sendReleased?(): boolean;
  /** Stop reading from the peer (byte streams; a no-op for datagram sockets, which cannot push back). */
  pause(): void;
  resume(): void;
  /**
   * Half-close: finish our sending side after what is queued (FIN), keep reading. Returns false if
   * the protocol has no half-close (datagram sockets, WebSocket): the caller decides when to close.
   */
  end(): boolean;
  /** End gracefully (FIN / close the socket). Idempotent; `onClose(null)` follows unless already closed. */
  close(): void;
  /**
   * Optional, byte streams: close for good because the peer broke a limit (a header deadline):
   * what is queued is flushed, then the socket is destroyed whatever the peer does, so a peer that
   * never sends its FIN cannot keep it (nginx `reset_timedout_connection`). Without it, `close()`.
   * Idempotent; `onClose(null)` follows unless already closed.
   */
  abort?(): void;
  /**
   * Kernel offload (native-offload/): the fd of this connection's own connected datagram socket,
   * or -1 while it has none yet. Only plain UDP connections have the method; a session whose
   * every connection has it may be spliced in the kernel. Listener sockets never offer it.
   */
  spliceFd?(): number;
  /**
   * Kernel offload: make what a splice needs when the connection has no socket of its own (a UDP
   * downstream served through the listening sockets opens one connected to its peer, from then on
   * its datagrams' way in and out). {@link spliceFd} says when it is ready: at once where sockets
   * are made synchronously, else at a later try.
   */
  prepareSplice?(): void;
  /**
   * While the session is spliced, a socket error (ECONNREFUSED after an ICMP error) goes to this
   * hook instead of closing the connection; null (the default) gives errors back to the connection.
   */
  spliceErrorHook?: ((err: Error) => void) | null;
  /**
   * While spliced, JavaScript stops reading the socket (false); true reads again (the session went
   * back to userspace). Comes with {@link Connection.spliceFd}. Returns true if the socket was
   * stopped and has nothing queued to send, so it may leave the event loop's poll set
   * (`Splice.unpoll`).
   */
  spliceReading?(reading: boolean): boolean;
  /**
   * Kernel offload, a session's source only (`offload.establish`, protocols/schema.ts): the
   * session is spliced once this connection sent this many datagrams, with or without a reply (a
   * one-way flow never gets one). 0 or absent: only a reply establishes it.
   */
  readonly spliceAfter?: number;
  /**
   * Optional, datagram sockets a worker crash can rebuild (runtime/session-table.ts): the 5-tuple
   * of this connection now (null while it has none, e.g. a socket not yet connected). Another
   * worker binds `localAddress:localPort` and connects to `remoteAddress:remotePort` again, so
   * neither peer sees a change. Plain UDP connections have it.
   */
  rebuildTuple?(): SocketTuple | null;
  /**
   * Optional, downstream connections only: the session has connected every stage of its route.
   * Called once, before anything read from the upstream stages is sent to this connection. A
   * listener whose protocol answers a handshake (JSONSocket's 200 reply) answers from here.
   */
  onSessionConnected?(): void;
  /**
   * Optional, downstream connections only: the session failed before it connected (no route, a
   * stage that could not connect). `err.status` is l7mp's status (404 no route...). Called once,
   * just before the session closes this connection; a protocol that has an error reply (JSONSocket)
   * sends it from here.
   */
  onSessionFailed?(err: L7Error): void;
}

/** The addresses of one datagram connection (see {@link Connection.rebuildTuple}). */
export interface SocketTuple {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** A downstream served through the listening sockets (UDP `session_sockets: listener`). */
  readonly shared?: boolean;
}
