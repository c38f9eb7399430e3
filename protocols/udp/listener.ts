/**
 * UDP listener (docs/l7mp-compat.md §3.2).
 *
 * Server mode, on every worker (SO_REUSEPORT group):
 * ```
 *  peer P ──dgram──► listening socket (worker A, kernel's reuseport pick)
 *                      │ P known here?      ──yes──► that session's connection (stray before connect)
 *                      │ owner(P) on ring == A? ─no─► hand-off envelope to the owner worker
 *                      ▼ yes (or hand-off received)
 *                    new UdpDownstream: socket bound to the listener's address:port (SO_REUSEPORT)
 *                    and connect()ed to P; the kernel then delivers P's datagrams to it directly,
 *                    because a connected socket outscores the unconnected group members.
 * ```
 * Between bind and connect the new socket is an unconnected member of the group and may catch
 * another peer's datagram: such strays are passed back to the listener logic, never lost.
 *
 * With `session_sockets: listener` (the default with one worker or with steered workers: modes.ts)
 * a session has no socket of its own until it is spliced: the peer map finds it for each datagram
 * that reaches a listening socket, and its replies leave through the listening socket.
 *
 * Singleton mode: one socket bound and connected to `connect`, one session at startup, on one
 * worker.
 */
import dgram, { type SocketOptions as DgramOptions } from 'node:dgram';
import net from 'node:net';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import { dgramFd } from '../../common/dgram-fd.ts';
import { dgramLookup } from '../../common/dgram-lookup.ts';
import { SpliceableDgramConnection, SYNC_SOCKETS } from '../core/dgram-connection.ts';
import type {
  AdoptedDownstream,
  DatagramHandoff,
  ListenerContext,
  ListenerInstance,
  ListenerSpecContext,
  Metadata,
  SocketTuple,
} from '../types.ts';
import { DEFAULT_UDP_MAX_BPS, DEFAULT_UDP_MAX_PPS, type UdpListenerSpec } from './config.ts';
import { parseRtp } from './rtp.ts';
import { sessionSockets, udpMode, udpType } from './modes.ts';
import { UdpSingleton } from './singleton.ts';
import { establishAfter } from '../schema.ts';
import { readSenderReport, RtcpRead, type RtcpSenderInfo } from '../core/rtcp.ts';

/** The downstream side of one UDP session in server mode: a peer address:port. */
export class UdpDownstream extends SpliceableDgramConnection {
  readonly remote: string;
  readonly address: string;
  readonly port: number;
  readonly spliceAfter: number;

  private connected = false;
  /**
   * A socket of its own could not be made when it was wanted (a splice, a stray session: EMFILE):
   * the session stays served through the listening sockets and is never spliced.
   */
  private noOwnSocket = false;
  private readonly listener: UdpListener;
  /** Per-session rate limit (options.max_pps / max_bps): token buckets of one second, refilled lazily. */
  private pktTokens: number;
  private byteTokens: number;
  private refilledAt = 0;

  /** @param key the peer map's key, `address:port`: the remote of an IPv4 peer as it is (one string, not two). */
  constructor(listener: UdpListener, address: string, port: number, key: string) {
    super();
    this.listener = listener;
    this.address = address;
    this.port = port;
    this.pktTokens = listener.pktBurst;
    this.byteTokens = listener.byteBurst;
    this.spliceAfter = listener.spliceAfter;
    this.remote = listener.type === 'udp4' ? key : net.isIPv6(address) ? `[${address}]:${port}` : key;
  }

  /** The listener's address:port (one string for all its sessions). */
  get local(): string {
    return this.listener.local;
  }

  /**
   * Open the per-peer socket: bind to the listener's address:port, connect to the peer. From then
   * on the kernel delivers the peer's datagrams to it, and replies leave through it. Synchronous
   * where dgram can (Node >= 24.19: `bindSync`, `connectSync`), so no other peer's datagram is read
   * from it unconnected; a failure (EMFILE) ends the connection at once.
   */
  open(): void {
    const s = this.peerSocket();
    this.attach(s);
    if (SYNC_SOCKETS) {
      const err = this.bindConnect(s);
      if (err !== null) this.socketError(err);
      return;
    }
    s.bind({ port: this.listener.spec.port, address: this.listener.bindAddress, exclusive: true }, () => {
      if (this.closed) return;
      s.connect(this.port, this.address, (err?: Error) => {
        if (this.closed) return;
        if (err) this.socketError(err);
        else this.connected = true;
      });
    });
  }

  /**
   * A session served through the listening sockets is to be spliced: it gets a socket connected to
   * its peer now (the splice needs one), as a `session_sockets: connected` session has from the
   * start. If the socket cannot be made (EMFILE: counted `fd_exhausted`), the session carries on
   * through the listening sockets and is not spliced.
   */
  prepareSplice(): void {
    this.connectToPeer();
  }

  /**
   * Give a session served through the listening sockets a socket connected to its peer, bound to
   * the listener's address:port (a no-op if it has one): from then on the kernel delivers the
   * peer's datagrams to it, on this worker. For a splice, and for a session of steered workers
   * whose datagrams reach another worker. EMFILE: counted `fd_exhausted`, and it stays as it was.
   */
  connectToPeer(): void {
    if (this.sock !== null || this.closed || this.noOwnSocket) return;
    if (!SYNC_SOCKETS) {
      this.open();
      return;
    }
    const s = this.peerSocket();
    const err = this.bindConnect(s);
    if (err === null) {
      this.attach(s);
      return;
    }
    this.noOwnSocket = true;
    s.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EMFILE' || code === 'ENFILE') this.listener.countDrop('fd_exhausted');
  }

  private peerSocket(): dgram.Socket {
    return dgram.createSocket({
      type: this.listener.type,
      reuseAddr: true,
      reusePort: true,
      lookup: dgramLookup as DgramOptions['lookup'],
      ...this.listener.bufferOptions,
    });
  }

  /** Bind `s` to the listener's address:port and connect it to the peer, synchronously; the error, or null. */
  private bindConnect(s: dgram.Socket): Error | null {
    try {
      s.bindSync({ port: this.listener.spec.port, address: this.listener.bindAddress });
      s.connectSync(this.port, this.address);
      this.connected = true;
      return null;
    } catch (e) {
      return e as Error;
    }
  }

  /** The listener's address:port and the peer's (the same whether the session has a socket of its own or not; `shared` while it has none). */
  rebuildTuple(): SocketTuple | null {
    if (this.closed) return null;
    return { localAddress: this.listener.bindAddress, localPort: this.listener.spec.port, remoteAddress: this.address, remotePort: this.port, shared: this.sock === null };
  }

  /** The per-peer socket is connected (spliceFd is -1 before). */
  protected override peerConnected(): boolean {
    return this.connected;
  }

  /** A datagram of this peer that reached a listening socket (before connect, or handed off). */
  inject(data: Buffer): void {
    if (this.closed || this.overRate(data.length)) return;
    this.receive(data);
  }

  /** On the per-peer socket once connected, else on the listening socket; counted in tx by the send callback. */
  protected override write(data: Buffer): boolean {
    if (this.connected) (this.sock as dgram.Socket).send(data, this.onSent);
    else if (!this.listener.sendFromListener(data, this.port, this.address, this.onSent)) this.stats.drops++;
    return true;
  }

  /** The peer's port is closed: the session is over, as when the ICMP error is read (not before the socket is connected). */
  protected override sendRefused(err: Error): void {
    if (this.connected) super.sendRefused(err);
  }

  protected override release(err: L7Error | null): void {
    this.listener.forget(this);
    super.release(err);
  }

  protected override onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (rinfo.port !== this.port || rinfo.address !== this.address) {
      // Caught while unconnected in the reuseport group: it belongs to the listener logic.
      this.listener.onStray();
      this.listener.onDatagram(msg, rinfo.address, rinfo.port);
      return;
    }
    if (this.overRate(msg.length)) return;
    this.receive(msg);
  }

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

  /** No fd for the socket (EMFILE, ENFILE) is counted; ECONNREFUSED: the peer's port is closed, the session is over. */
  protected override socketError(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EMFILE' || code === 'ENFILE') this.listener.countDrop('fd_exhausted');
    super.socketError(err);
  }

  protected resetError(err: Error): L7Error {
    return new L7Error(ErrorCode.DownstreamReset, `UDP peer ${this.remote}: ${err.message}`, { cause: err });
  }
}

/** The UDP listener of one worker. */
export class UdpListener implements ListenerInstance {
  readonly name: string;
  readonly spec: UdpListenerSpec;
  readonly type: 'udp4' | 'udp6';
  readonly bindAddress: string;
  readonly bufferOptions: { recvBufferSize?: number };
  /** `address:port` of the listening sockets. */
  readonly local: string;
  /**
   * `options.session_sockets: listener`: sessions have no socket of their own; they are read from
   * and answered through the listening sockets (a peer's datagrams that reach another worker are
   * handed to the owner, each of them).
   */
  readonly shared: boolean;
  /** Per-session rate limit: datagrams per second (= the packet bucket's depth). */
  readonly pktBurst: number;
  /** Per-session rate limit: payload bytes per second, and the byte bucket's depth (>= one 64 KiB datagram). */
  readonly byteRate: number;
  readonly byteBurst: number;
  /** `options.offload.establish`: datagrams from a peer after which its session is spliced with no reply (0: at the first reply). */
  readonly spliceAfter: number;

  private readonly ctx: ListenerContext;
  private readonly mode: 'server' | 'singleton';
  /**
   * Listening sockets by default with several steered workers: a session whose datagrams do not
   * come, or will not, to its worker's own listening socket gets a socket connected to its peer,
   * so that they do whatever the steering does: its first datagram was handed over, a later one
   * was, or the ring gives its peer to another worker (one made while the owner was down, when the
   * owner is back). A set `session_sockets: listener` never connects one (until a splice).
   */
  private readonly connectStrays: boolean;
  private sock: dgram.Socket | null = null;
  /** Sessions this worker owns, by peer `address:port`. */
  private readonly peers = new Map<string, UdpDownstream>();
  /** The session of the last datagram found in {@link peers} (null: none, or it ended). */
  private last: UdpDownstream | null = null;
  private closed = false;

  constructor(cfg: ListenerSpecContext<UdpListenerSpec>, ctx: ListenerContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
    this.ctx = ctx;
    this.bindAddress = cfg.spec.address ?? '0.0.0.0';
    this.type = udpType(this.bindAddress);
    this.local = `${this.bindAddress}:${cfg.spec.port}`;
    this.mode = udpMode(cfg.spec);
    this.shared = sessionSockets(cfg.spec, ctx) === 'listener';
    this.connectStrays = this.shared && cfg.spec.options?.session_sockets === undefined && (ctx.workers ?? 1) > 1;
    this.pktBurst = cfg.spec.options?.max_pps ?? DEFAULT_UDP_MAX_PPS;
    this.byteRate = (cfg.spec.options?.max_bps ?? DEFAULT_UDP_MAX_BPS) / 8;
    this.byteBurst = Math.max(this.byteRate, 65_536);
    const rcv = cfg.spec.options?.recv_buffer_size;
    this.bufferOptions = rcv ? { recvBufferSize: rcv } : {};
    this.spliceAfter = establishAfter(cfg.spec.options?.offload);
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      // A synchronous lookup: a datagram answered from this socket (session_sockets: listener) leaves at once.
      const s = dgram.createSocket({ type: this.type, reuseAddr: true, reusePort: this.mode === 'server', lookup: dgramLookup as DgramOptions['lookup'], ...this.bufferOptions });
      const onBindError = (err: Error): void => {
        s.close();
        reject(new L7Error(ErrorCode.ListenerBind, `listener "${this.name}": cannot bind UDP ${this.bindAddress}:${this.spec.port}: ${err.message}`, { cause: err }));
      };
      s.once('error', onBindError);
      s.bind({ port: this.spec.port, address: this.bindAddress }, () => {
        s.removeListener('error', onBindError);
        this.sock = s;
        if (this.mode === 'singleton') {
          this.startSingleton(s).then(resolve, reject);
          return;
        }
        s.on('error', (err: Error) => this.ctx.rateLog.warn(`udp-listener-error:${this.name}`, { listener: this.name, err: err.message }, 'UDP listener socket error'));
        s.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => this.onDatagram(msg, rinfo.address, rinfo.port));
        resolve();
      });
    });
  }

  private startSingleton(s: dgram.Socket): Promise<void> {
    const remoteAddr = this.spec.connect?.address as string;
    const remotePort = this.spec.connect?.port as number;
    return new Promise((resolve, reject) => {
      s.connect(remotePort, remoteAddr, (err?: Error) => {
        if (err) {
          s.close();
          reject(new L7Error(ErrorCode.ListenerBind, `listener "${this.name}": cannot connect UDP singleton to ${remoteAddr}:${remotePort}: ${err.message}`, { cause: err }));
          return;
        }
        const local = `${this.bindAddress}:${this.spec.port}`;
        const conn = new UdpSingleton(s, local, `${remoteAddr}:${remotePort}`);
        this.ctx.accept(conn, this.metadata(remoteAddr, remotePort), `UDP:${remoteAddr}:${remotePort}-${local}-${this.ctx.nextSessionSeq()}`);
        resolve();
      });
    });
  }

  /** A datagram from `address:port` that reached this listener (not a connected session socket). */
  onDatagram(msg: Buffer, address: string, port: number): void {
    // The peer of the previous datagram, without building its key: a flow's datagrams come in runs.
    const last = this.last;
    if (last !== null && last.port === port && last.address === address) {
      last.inject(msg);
      return;
    }
    const key = `${address}:${port}`;
    const known = this.peers.get(key);
    if (known !== undefined) {
      this.last = known;
      known.inject(msg);
      return;
    }
    if (this.closed) return;
    const want = this.spec.connect;
    if (want !== undefined && ((want.port !== undefined && want.port !== port) || (want.address !== undefined && want.address !== address))) {
      this.ctx.count('filtered');
      this.ctx.rateLog.warn(`udp-filter:${this.name}`, { listener: this.name, peer: key }, 'UDP datagram from a peer outside connect filter dropped');
      return;
    }
    // Admission before anything is allocated or handed off (the owner checks again, per source).
    // With listener sockets a peer unknown here may be a session of its owner's, whose datagrams
    // all come this way: only the owner decides.
    if (!this.shared && !this.ctx.admit(address)) return;
    const owner = this.ctx.ownerOf(key);
    if (owner !== this.ctx.slot && this.ctx.handoff(owner, { listener: this.name, address, port, data: msg })) {
      this.ctx.count('handoff_out');
      return;
    }
    if (this.shared && !this.ctx.admit(address)) return;
    this.newPeer(address, port, msg, owner !== this.ctx.slot);
  }

  onHandoff(h: DatagramHandoff): void {
    this.ctx.count('handoff_in');
    const data = Buffer.from(h.data.buffer, h.data.byteOffset, h.data.byteLength);
    const key = `${h.address}:${h.port}`;
    const known = this.peers.get(key);
    if (known !== undefined) {
      known.inject(data);
      // Its datagrams reach another worker (a rebuilt session pinned here, after the dead worker's
      // replacement took its peers back): a socket of its own ends the hand-offs.
      if (this.connectStrays) known.connectToPeer();
    } else if (!this.closed && this.ctx.admit(h.address)) this.newPeer(h.address, h.port, data, true);
  }

  /**
   * The ring changed: a session served here through the listening sockets whose peer the new ring
   * gives to another worker (one made while its owner was down, whose owner is back) gets a socket
   * connected to its peer now, before the steering sends the peer's datagrams to that owner, so it
   * keeps them (default mode of steered workers; {@link connectStrays}).
   */
  onRingChange(): void {
    if (!this.connectStrays) return;
    for (const [key, conn] of this.peers) if (this.ctx.ownerOf(key) !== this.ctx.slot) conn.connectToPeer();
  }

  /** @internal A datagram dropped by a session of this listener (rate limit, no fd), counted by reason. */
  countDrop(reason: string): void {
    this.ctx.count(reason);
  }

  /** @internal A datagram of another peer reached a session's socket before it was connected. */
  onStray(): void {
    this.ctx.count('stray');
  }

  /** The listening socket's fd (server mode, for SO_REUSEPORT steering), or -1. */
  steerFd(): number {
    return this.mode === 'server' && this.sock !== null && !this.closed ? dgramFd(this.sock) : -1;
  }

  /**
   * @internal Send on the listening socket (before a session's own socket is connected); `cb` is
   * the connection's send callback. False if the listener has no socket any more (closed).
   */
  sendFromListener(data: Buffer, port: number, address: string, cb: (err: Error | null, bytes?: number) => void): boolean {
    const s = this.sock;
    if (s === null) return false;
    s.send(data, port, address, cb);
    return true;
  }

  /** @internal A session's connection closed. */
  forget(conn: UdpDownstream): void {
    if (this.last === conn) this.last = null;
    const key = `${conn.address}:${conn.port}`;
    if (this.peers.get(key) === conn) this.peers.delete(key);
  }

  /**
   * Recreate a session of a worker that died: the peer-map entry at once (its datagrams that reach
   * this listener from now on are the session's), and, with connected session sockets, a socket
   * bound to the listener's address:port and connected to the peer, as {@link newPeer} does.
   */
  adopt(address: string, port: number, shared: boolean): AdoptedDownstream | null {
    const key = `${address}:${port}`;
    if (this.closed || this.mode !== 'server' || this.peers.has(key)) return null;
    const conn = new UdpDownstream(this, address, port, key);
    this.peers.set(key, conn);
    // As it was: a socket connected to the peer (connected sockets, or a spliced session), or none.
    if (!shared) conn.open();
    return { conn, metadata: this.metadata(address, port), name: this.sessionName(address, port) };
  }

  /** @param stray the peer's datagrams reach another worker's listening socket (see {@link connectStrays}) */
  private newPeer(address: string, port: number, first: Buffer, stray: boolean): void {
    // The session keeps its key (and remote) for life: one flat string, not the lookup's template (a cons string).
    const key = [address, ':', port].join('');
    const conn = new UdpDownstream(this, address, port, key);
    this.peers.set(key, conn);
    conn.inject(first);
    if (!this.shared || (stray && this.connectStrays)) conn.open();
    const md = this.metadata(address, port);
    if (this.spec.options?.rtp === true) {
      const rtp = parseRtp(first);
      const sr: Partial<RtcpSenderInfo> = {};
      // RTCP with a sender report: the SSRC of the RTP stream it reports on (its RTP session's key).
      if (rtp !== null) md.RTP = rtp;
      else if (readSenderReport(first, sr) === RtcpRead.SenderReport) md.RTP = sr;
      else this.ctx.count('rtp_absent');
    }
    this.ctx.accept(conn, md, this.sessionName(address, port));
  }

  /**
   * `UDP:address:port-local-seq` (l7mp's session name), joined into one flat string: a template
   * literal makes a tree of cons strings, about 170 B more for as long as the session lives.
   */
  private sessionName(address: string, port: number): string {
    return ['UDP:', address, ':', port, '-', this.local, '-', this.ctx.nextSessionSeq()].join('');
  }

  private metadata(address: string, port: number): Metadata {
    // l7mp reports the bind address as dst_addr (docs/l7mp-compat.md §3.1).
    return { IP: { src_addr: address, dst_addr: this.bindAddress }, UDP: { src_port: port, dst_port: this.spec.port } };
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    const s = this.sock;
    this.sock = null;
    if (s === null || this.mode === 'singleton') return Promise.resolve();
    return new Promise((resolve) => s.close(() => resolve()));
  }

  describe(): Record<string, unknown> {
    return { protocol: 'UDP', mode: this.mode, session_sockets: this.shared ? 'listener' : 'connected', address: this.local, peers: this.peers.size };
  }
}
