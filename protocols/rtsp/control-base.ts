/**
 * The RTSP control connection as a {@link Connection} (the downstream of an RTSP session; its
 * RTSP handling is protocols/rtsp/control.ts, `RtspControl`): the client's socket and what it
 * reads (requests and interleaved frames, parsed and queued in order per direction), what it
 * writes (responses, interleaved frames, bounded), the tracks of the session and their child
 * sessions (RTP and RTCP relays), and the connection's end, which waits while its upstream session
 * still feeds other clients' shared tracks.
 */
import type net from 'node:net';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import { ConnStats } from '../types.ts';
import type { ChildSession, Connection, ConnectionHandler, ListenerContext } from '../types.ts';
import { PendingHandler } from '../core/hold.ts';
import { RtspParser, encode, frameHeader, response, type RtspLimits, type RtspMessage } from './codec.ts';
import { plainAddress, type PinholePair, type PortPairs } from './pinhole.ts';
import { ChannelConnection } from './channel.ts';
import type { Hub, HubRegistry, Reader, TrackRtp } from './fanout.ts';
import { readSenderReport, RtcpRead } from '../core/rtcp.ts';
import { endThenDestroy } from '../core/server.ts';

/** Metadata key under which the RTSP cluster finds the session's control connection (a symbol: never in predicates or dumps). */
export const RTSP_CONTROL: unique symbol = Symbol.for('l7mp-ts.rtsp.control');

/** What the RTSP cluster tells the control connection once it has connected. */
export interface UpstreamInfo {
  /** The server's address (RTP is sent to it and expected from it). */
  remoteAddress: string;
  /** Our end of the control connection: server-side pinholes bind to it. */
  localAddress: string;
}

/** The listener's per-worker settings and hooks, shared by its control connections. */
export interface ControlEnv {
  readonly listener: string;
  readonly limits: RtspLimits;
  readonly upstreamTransport: 'same' | 'udp' | 'tcp';
  /** Unit: ms. */
  readonly mediaIdleMs: number;
  readonly ports: PortPairs;
  readonly ctx: ListenerContext;
  /** The first request arrived: route the session (the listener calls `ctx.accept`). */
  first(c: ControlConnection, m: RtspMessage): void;
  /** Shared tracks (listener option `fanout`), null when off. */
  readonly hubs: HubRegistry | null;
  /** Fan-out: datagrams queued towards one reader before the next are dropped. */
  readonly readerQueue: number;
  /** `offload.establish`: datagrams from the client side after which an RTP relay is spliced with no reply (0: at the first from the server side). */
  readonly spliceAfter: number;
}

/** Bytes queued on a control connection above which interleaved media to it are dropped (a slow reader). */
const MAX_INTERLEAVED_QUEUE = 1 << 20;
/** Items waiting behind a SETUP in one direction before the connection is given up. */
const MAX_WAITING = 1024;

/** A track's media on one side: a UDP pinhole pair to a peer, or a channel pair of a control connection. */
export type Side = { mode: 'udp'; pair: PinholePair | null; peer: string; ports: [number, number] | null } | { mode: 'tcp'; ch: [number, number]; conns: [ChannelConnection, ChannelConnection] | null };

/** One SETUP: its media on both sides, and the relays between them. */
export interface Track {
  url: string;
  clientProto: string;
  client: Side;
  server: Side;
  children: ChildSession[];
  released: boolean;
  /** Fan-out: the shared track this one reads, and its taps. */
  hub: Hub | null;
  reader: Reader | null;
  /** `/RTP` of both relays, from RTCP sender reports (the hub's for a shared track). */
  rtp: TrackRtp;
}

/** Runs tasks in order; a task that returns a promise holds the ones after it. */
class Serial {
  private busy = false;
  private readonly waiting: Array<() => void | Promise<void>> = [];
  private readonly overflow: () => void;
  constructor(overflow: () => void) {
    this.overflow = overflow;
  }
  run(task: () => void | Promise<void>): void {
    if (this.busy) {
      if (this.waiting.length >= MAX_WAITING) this.overflow();
      else this.waiting.push(task);
      return;
    }
    this.exec(task);
  }
  private exec(task: () => void | Promise<void>): void {
    const r = task();
    if (r === undefined) return;
    this.busy = true;
    r.catch(() => {}).finally(() => {
      this.busy = false;
      while (!this.busy) {
        const t = this.waiting.shift();
        if (t === undefined) break;
        this.exec(t);
      }
    });
  }
}

/**
 * The socket side of a control connection; `RtspControl` (control.ts) handles what the client
 * and the server say.
 */
export abstract class ControlConnection implements Connection {
  readonly kind = 'byte' as const;
  readonly stats = new ConnStats();
  readonly local: string;
  readonly remote: string;
  /** Accept time, for the listener's request deadline. Unit: ms (Date.now()). */
  readonly since = Date.now();
  accepted = false;
  /** The socket's addresses as the kernel reports them (dual stack: `::ffff:a.b.c.d`). */
  readonly addrs: { remoteAddress: string; remotePort: number; localAddress: string; localPort: number };
  /** The RTSP session id the server gave (Session header), for the actor tree. */
  sessionId: string | null = null;

  protected handler: ConnectionHandler = new PendingHandler();
  protected closed = false;
  private readonly sock: net.Socket;
  protected readonly env: ControlEnv;
  private readonly fromClient: RtspParser;
  private readonly fromServer: RtspParser;
  private readonly clientQ: Serial;
  private readonly serverQ: Serial;
  protected readonly clientAddr: string;
  protected readonly localAddr: string;
  protected upstream: UpstreamInfo | null = null;
  private upstreamWait: Array<(u: UpstreamInfo | null) => void> | null = [];
  /** SETUPs sent upstream, by CSeq. */
  protected readonly pendingSetups = new Map<string, Track>();
  protected readonly tracks: Track[] = [];
  /** Interleaved channels of the client (and of the server) that a relay reads. */
  protected readonly clientChannels = new Map<number, ChannelConnection>();
  protected readonly serverChannels = new Map<number, ChannelConnection>();
  private readonly scratch = Buffer.allocUnsafe(4);
  /** Hubs this connection's upstream session feeds. */
  protected readonly ownedHubs = new Set<Hub>();
  /** The client's socket is gone but the upstream session still feeds other readers (ended with the last one). */
  protected clientGone = false;

  constructor(sock: net.Socket, env: ControlEnv, local: string, remote: string) {
    this.sock = sock;
    this.env = env;
    this.local = local;
    this.remote = remote;
    this.addrs = { remoteAddress: sock.remoteAddress ?? '', remotePort: sock.remotePort ?? 0, localAddress: sock.localAddress ?? '', localPort: sock.localPort ?? 0 };
    this.clientAddr = plainAddress(sock.remoteAddress ?? '');
    this.localAddr = plainAddress(sock.localAddress ?? '');
    this.clientQ = new Serial(() => this.abortWith('too many requests waiting behind a SETUP'));
    this.serverQ = new Serial(() => this.abortWith('too many responses waiting behind a SETUP'));
    this.fromClient = new RtspParser(
      {
        message: (m) => this.clientQ.run(() => this.onRequest(m)),
        frame: (ch, d) => this.clientQ.run(() => this.onClientFrame(ch, d)),
        error: (reason) => {
          this.env.ctx.count('malformed_requests');
          this.env.ctx.rateLog.warn(`rtsp-malformed:${this.env.listener}`, { listener: this.env.listener, peer: this.remote, reason }, 'RTSP: malformed request, connection closed');
          this.writeClient(encode(response(null, 400, 'Bad Request', [['Connection', 'close']])));
          this.abort();
        },
      },
      env.limits,
    );
    this.fromServer = new RtspParser(
      {
        message: (m) => this.serverQ.run(() => this.onResponse(m)),
        frame: (ch, d) => this.serverQ.run(() => this.onServerFrame(ch, d)),
        error: (reason) => {
          this.env.ctx.count('malformed_responses');
          this.env.ctx.rateLog.warn(`rtsp-malformed-upstream:${this.env.listener}`, { listener: this.env.listener, peer: this.remote, reason }, 'RTSP: malformed response, session closed');
          this.abort();
        },
      },
      env.limits,
    );
    sock.on('data', (chunk: Buffer) => {
      this.stats.rxPackets++;
      this.stats.rxBytes += chunk.length;
      this.fromClient.push(chunk);
    });
    sock.on('drain', () => this.handler.onDrain());
    sock.on('end', () => {
      // A client that leaves while its upstream session feeds other readers: its FIN is not passed
      // upstream (the server would end the session); its socket closes, and finish() holds the rest.
      if (this.feedsOthers()) this.sock.end();
      else this.handler.onEnd();
    });
    sock.on('close', () => this.finish(null));
    sock.on('error', (err: Error) => this.finish(new L7Error(ErrorCode.DownstreamReset, `${remote}: ${err.message}`, { cause: err })));
  }

  /** Called by the RTSP cluster once its control connection to the server is up. */
  upstreamConnected(u: UpstreamInfo): void {
    this.upstream = { remoteAddress: plainAddress(u.remoteAddress), localAddress: plainAddress(u.localAddress) };
    this.releaseUpstreamWait();
  }

  onSessionConnected(): void {
    this.releaseUpstreamWait();
  }

  private releaseUpstreamWait(): void {
    const w = this.upstreamWait;
    this.upstreamWait = null;
    for (const f of w ?? []) f(this.upstream);
  }

  protected upstreamInfo(): Promise<UpstreamInfo | null> {
    if (this.upstreamWait === null) return Promise.resolve(this.upstream);
    return new Promise((r) => this.upstreamWait?.push(r));
  }

  /** A request (or a server-to-client answer) from the client, in order: the RTSP handling. */
  protected abstract onRequest(m: RtspMessage): void | Promise<void>;

  /** A response (or request) from the server, in order: the RTSP handling. */
  protected abstract onResponse(r: RtspMessage): void | Promise<void>;

  // ---- interleaved frames and writes -----------------------------------------------------

  private onClientFrame(ch: number, d: Buffer): void {
    const c = this.clientChannels.get(ch);
    if (c !== undefined) c.deliver(d);
    else this.handler.onData(Buffer.concat([frameHeader(ch, d.length), d]));
  }

  /**
   * Reads the sender reports of RTCP datagrams into `rtp` (RFC 3550 §6.4.1). The datagram is
   * relayed whatever it holds; a malformed one is counted (`rtcp_malformed`), never thrown on.
   */
  protected rtcpObserver(rtp: TrackRtp): (d: Buffer) => void {
    const ctx = this.env.ctx;
    return (d: Buffer): void => {
      const r = readSenderReport(d, rtp);
      if (r === RtcpRead.SenderReport) {
        rtp.sender_reports = (rtp.sender_reports ?? 0) + 1;
        ctx.count('rtcp_sender_reports');
      } else if (r === RtcpRead.Malformed) ctx.count('rtcp_malformed');
    };
  }

  private onServerFrame(ch: number, d: Buffer): void {
    const c = this.serverChannels.get(ch);
    if (c !== undefined) c.deliver(d);
    else this.writeClientFrame(ch, d);
  }

  /** An interleaved frame to the client; dropped (false) while the client reads too slowly. */
  protected writeClientFrame(ch: number, d: Buffer): boolean {
    if (this.closed || this.clientGone || this.sock.writableLength > MAX_INTERLEAVED_QUEUE) {
      this.env.ctx.count('interleaved_drops');
      return false;
    }
    this.sock.cork();
    this.sock.write(frameHeader(ch, d.length, Buffer.allocUnsafe(4)));
    this.sock.write(d);
    this.sock.uncork();
    this.stats.txPackets++;
    this.stats.txBytes += d.length + 4;
    return true;
  }

  /** An interleaved frame to the server, through the session's hop to the upstream control connection. */
  protected writeServerFrame(ch: number, d: Buffer): boolean {
    if (this.closed) return false;
    this.handler.onData(Buffer.concat([frameHeader(ch, d.length, this.scratch), d]));
    return true;
  }

  protected writeClient(b: Buffer): boolean {
    if (this.closed || this.clientGone) {
      this.stats.drops++;
      return true;
    }
    this.stats.txPackets++;
    this.stats.txBytes += b.length;
    return this.sock.write(b);
  }

  // ---- media relays ----------------------------------------------------------------------

  /** One child session for RTP and one for RTCP, client side as their source. */
  protected startRelays(t: Track, clientEnds?: [Connection, Connection], serverEnds?: [Connection, Connection]): void {
    const ends = (s: Side): [Connection, Connection] | null => (s.mode === 'udp' ? (s.pair === null ? null : [s.pair.rtp, s.pair.rtcp]) : s.conns);
    const cl = clientEnds ?? ends(t.client);
    const sv = serverEnds ?? ends(t.server);
    if (cl === null || sv === null) return;
    const spawn = this.env.ctx.spawnChild;
    for (let i = 0; i < 2; i++) {
      const kind = i === 0 ? 'RTP' : 'RTCP';
      const child =
        spawn === undefined
          ? null
          : spawn(this, {
              name: `${kind}:${cl[i]?.remote}-${sv[i]?.remote}`,
              source: cl[i] as Connection,
              upstream: sv[i] as Connection,
              cluster: `${this.env.listener}/${kind.toLowerCase()}`,
              // Both relays show the track's /RTP (sender reports read on its RTCP pinholes).
              metadata: { RTSP: { url: t.url, media: kind, session: this.sessionId }, RTP: t.rtp },
              idleTimeoutMs: this.env.mediaIdleMs,
            });
      if (child === null) {
        this.env.ctx.count('relay_failed');
        continue;
      }
      t.children.push(child);
    }
    this.env.ctx.count('pinholes_opened');
  }

  /** This connection's upstream session feeds readers of other clients. */
  protected feedsOthers(): boolean {
    for (const h of this.ownedHubs) for (const r of h.readers) if (!this.tracks.some((t) => t.reader === r)) return true;
    return false;
  }

  // ---- teardown --------------------------------------------------------------------------

  /** TEARDOWN of `url`: the tracks it names (a track URL, or the aggregate URL above them) are released. */
  protected teardown(url: string): void {
    const base = url.endsWith('/') ? url.slice(0, -1) : url;
    const hit = this.tracks.filter((t) => t.url === url || t.url.startsWith(`${base}/`) || t.url === base);
    for (const t of hit.length > 0 ? hit : [...this.tracks]) this.release(t);
  }

  protected release(t: Track): void {
    if (t.released) return;
    t.released = true;
    const i = this.tracks.indexOf(t);
    if (i >= 0) this.tracks.splice(i, 1);
    for (const c of t.children) c.stop();
    t.children.length = 0;
    if (t.hub !== null && t.reader !== null) t.hub.removeReader(t.reader);
    t.reader = null;
    for (const s of [t.client, t.server]) {
      if (s.mode === 'udp') {
        if (s.pair !== null) this.env.ports.release(s.pair);
        s.pair = null;
      } else if (s.conns !== null) {
        for (const c of s.conns) {
          c.close();
          if (s === t.client) this.clientChannels.delete(c.channel);
          else this.serverChannels.delete(c.channel);
        }
        s.conns = null;
      }
    }
    this.env.ctx.count('pinholes_closed');
  }

  private releaseAll(): void {
    for (const t of [...this.tracks]) this.release(t);
    for (const t of this.pendingSetups.values()) this.release(t);
    this.pendingSetups.clear();
  }

  /** Tracks with live relays, for the actor tree. */
  get trackCount(): number {
    return this.tracks.length;
  }

  // ---- Connection ------------------------------------------------------------------------

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) prev.flushTo(h);
  }

  /** Bytes from the server: responses and interleaved frames, parsed and passed on in order. */
  send(data: Buffer): boolean {
    if (this.closed) {
      this.stats.drops++;
      return true;
    }
    this.fromServer.push(data);
    return this.sock.writableLength < this.sock.writableHighWaterMark;
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
    this.sock.end();
    this.finishNow(null);
  }

  abort(): void {
    endThenDestroy(this.sock);
    this.finishNow(null);
  }

  private abortWith(reason: string): void {
    this.env.ctx.count('overflow');
    this.env.ctx.rateLog.warn(`rtsp-overflow:${this.env.listener}`, { listener: this.env.listener, peer: this.remote, reason }, 'RTSP: connection closed');
    this.abort();
  }

  /**
   * The client's socket closed. If this connection's upstream session feeds shared tracks that
   * other readers still read, the session stays (the client's own tracks are released) until the
   * last reader leaves; else it ends now.
   */
  private finish(err: L7Error | null): void {
    if (this.closed || this.clientGone) return;
    for (const t of [...this.tracks]) this.release(t);
    if ([...this.ownedHubs].some((h) => h.readers.size > 0)) {
      this.clientGone = true;
      this.pause();
      this.env.ctx.count('upstream_held');
      return;
    }
    this.finishNow(err);
  }

  protected finishNow(err: L7Error | null): void {
    if (this.closed) return;
    this.closed = true;
    for (const h of [...this.ownedHubs]) h.end();
    this.releaseAll();
    this.releaseUpstreamWait();
    if (err !== null) this.sock.destroy();
    else if (!this.sock.writableEnded) this.sock.end();
    this.handler.onClose(err);
  }
}
