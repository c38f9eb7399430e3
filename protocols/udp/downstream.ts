/**
 * The downstream of one UDP session in server mode (listener.ts has the picture): a socket of
 * its own bound to the listener's address:port and connected to the peer, or, with
 * `session_sockets: listener`, the listening sockets; rate limited per session; spliceable in the
 * kernel and rebuildable after a worker crash.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import { dgramFd, dgramReading } from '../../runtime/common/dgram-fd.ts';
import { ConnStats } from '../types.ts';
import type { Connection, ConnectionHandler, SocketTuple } from '../types.ts';
import { PendingHandler } from '../core/hold.ts';
import type { UdpListenerSpec } from './config.ts';

/** What a {@link UdpDownstream} reads of its listener and tells it (listener.ts, `UdpListener`). */
export interface DownstreamListener {
  readonly spec: UdpListenerSpec;
  readonly type: 'udp4' | 'udp6';
  readonly bindAddress: string;
  readonly bufferOptions: { recvBufferSize?: number };
  /** Peers are served through the listening sockets (`session_sockets: listener`). */
  readonly shared: boolean;
  /** Per-session rate limit: the packet bucket's depth, payload bytes per second and the byte bucket's depth. */
  readonly pktBurst: number;
  readonly byteRate: number;
  readonly byteBurst: number;
  /** Send to a peer through a listening socket; false if none is open. */
  sendFromListener(data: Buffer, port: number, address: string, cb: (err: Error | null, bytes?: number) => void): boolean;
  /** The downstream closed: forget its peer. */
  forget(conn: UdpDownstream): void;
  /** A datagram of another peer reached this downstream's socket (before it connected). */
  onStray(): void;
  /** A datagram for the listener logic (a stray's). */
  onDatagram(msg: Buffer, address: string, port: number): void;
  /** A listener-level drop by reason. */
  countDrop(reason: string): void;
}

/** The downstream side of one UDP session in server mode: a peer address:port. */
export class UdpDownstream implements Connection {
  readonly kind = 'datagram' as const;
  readonly stats = new ConnStats();
  readonly local: string;
  readonly remote: string;
  readonly address: string;
  readonly port: number;

  private handler: ConnectionHandler = new PendingHandler();
  private sock: dgram.Socket | null = null;
  private connected = false;
  private closed = false;
  private readonly listener: DownstreamListener;
  /** Per-session rate limit (options.max_pps / max_bps): token buckets of one second, refilled lazily. */
  private pktTokens: number;
  private byteTokens: number;
  private refilledAt = 0;

  constructor(listener: DownstreamListener, address: string, port: number) {
    this.listener = listener;
    this.address = address;
    this.port = port;
    this.pktTokens = listener.pktBurst;
    this.byteTokens = listener.byteBurst;
    this.local = `${listener.bindAddress}:${listener.spec.port}`;
    this.remote = net.isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
  }

  /** Open the per-peer socket: bind to the listener's address:port, connect to the peer. */
  open(): void {
    const s = dgram.createSocket({
      type: this.listener.type,
      reuseAddr: true,
      reusePort: true,
      ...this.listener.bufferOptions,
    });
    this.sock = s;
    s.on('error', this.onError);
    s.on('message', this.onMessage);
    s.bind({ port: this.listener.spec.port, address: this.listener.bindAddress, exclusive: true }, () => {
      if (this.closed) return;
      s.connect(this.port, this.address, (err?: Error) => {
        if (this.closed) return;
        if (err) this.onError(err);
        else this.connected = true;
      });
    });
  }

  spliceErrorHook: ((err: Error) => void) | null = null;

  /** The listener's address:port and the peer's (the same whether the session has a socket of its own or not). */
  rebuildTuple(): SocketTuple | null {
    if (this.closed) return null;
    return { localAddress: this.listener.bindAddress, localPort: this.listener.spec.port, remoteAddress: this.address, remotePort: this.port, shared: this.listener.shared };
  }

  /** The per-peer socket's fd once it is connected to the peer, else -1. */
  spliceFd(): number {
    return this.connected && this.sock !== null && !this.closed ? dgramFd(this.sock) : -1;
  }

  spliceReading(reading: boolean): boolean {
    return this.sock !== null && !this.closed && dgramReading(this.sock, reading);
  }

  /** A datagram of this peer that reached a listening socket (before connect, or handed off). */
  inject(data: Buffer): void {
    if (this.closed) return;
    if (this.overRate(data.length)) return;
    this.stats.rxPackets++;
    this.stats.rxBytes += data.length;
    this.handler.onData(data);
  }

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) {
      this.stats.drops += prev.dropped;
      prev.flushTo(h);
    }
  }

  send(data: Buffer): boolean {
    if (this.closed) {
      this.stats.drops++;
      return true;
    }
    // Counted in tx by onSent once the kernel took it; a refused send is a drop by errno.
    if (this.connected) (this.sock as dgram.Socket).send(data, this.onSent);
    else if (!this.listener.sendFromListener(data, this.port, this.address, this.onSent)) this.stats.drops++;
    return true;
  }

  /** The send callback, one per connection (no closure per datagram). */
  private readonly onSent = (err: Error | null, bytes?: number): void => {
    // The peer's port is closed: the session is over, as when the ICMP error is read.
    if (this.stats.sendResult(err, bytes) === 'ECONNREFUSED' && this.connected) this.onError(err as Error);
  };

  pause(): void {}
  resume(): void {}
  end(): boolean {
    return false;
  }

  close(): void {
    this.finish(null);
  }

  private finish(err: L7Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.listener.forget(this);
    const s = this.sock;
    this.sock = null;
    if (s !== null) {
      s.removeListener('message', this.onMessage);
      try {
        s.close();
      } catch {
        // already closed by the runtime (worker exit)
      }
    }
    this.handler.onClose(err);
  }

  private readonly onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    if (rinfo.port !== this.port || rinfo.address !== this.address) {
      // Caught while unconnected in the reuseport group: it belongs to the listener logic.
      this.listener.onStray();
      this.listener.onDatagram(msg, rinfo.address, rinfo.port);
      return;
    }
    if (this.overRate(msg.length)) return;
    this.stats.rxPackets++;
    this.stats.rxBytes += msg.length;
    this.handler.onData(msg);
  };

  /**
   * The session's rate limit: true (and counted as a `session_rate` drop) if a datagram of `len`
   * bytes exceeds it. Within the buckets it costs two compares; the clock is read only when a
   * bucket runs dry.
   */
  private overRate(len: number): boolean {
    if (this.pktTokens >= 1 && this.byteTokens >= len) {
      this.pktTokens--;
      this.byteTokens -= len;
      return false;
    }
    const l = this.listener;
    const now = Date.now();
    const dt = now - this.refilledAt;
    if (dt > 0) {
      this.refilledAt = now;
      this.pktTokens = Math.min(l.pktBurst, this.pktTokens + (dt * l.pktBurst) / 1000);
      this.byteTokens = Math.min(l.byteBurst, this.byteTokens + (dt * l.byteRate) / 1000);
    }
    if (this.pktTokens >= 1 && this.byteTokens >= len) {
      this.pktTokens--;
      this.byteTokens -= len;
      return false;
    }
    l.countDrop('session_rate');
    return true;
  }

  private readonly onError = (err: Error): void => {
    if ((err as NodeJS.ErrnoException).code === 'EMFILE' || (err as NodeJS.ErrnoException).code === 'ENFILE') this.listener.countDrop('fd_exhausted');
    if (this.spliceErrorHook !== null && this.connected) {
      this.spliceErrorHook(err);
      return;
    }
    // ECONNREFUSED: the peer's port is closed (ICMP port unreachable). The session is over.
    this.finish(new L7Error(ErrorCode.DownstreamReset, `UDP peer ${this.remote}: ${err.message}`, { cause: err }));
  };
}
