/**
 * The downstream side of an RTSP session: the client's control connection, which sees both
 * directions of the control exchange (client requests on its socket, server responses in `send`),
 * so the media plumbing lives here.
 *
 * ```
 *  client ──TCP── RtspControl ══ session hop ══ RTSP cluster ──TCP── server
 *   RTP ──► [client pinhole P_c] ─ child session (RTP)  ─ [server pinhole P_s] ◄── RTP
 *  RTCP ──► [client pinhole P_c+1] ─ child session (RTCP) ─ [server pinhole P_s+1] ◄── RTCP
 * ```
 * SETUP (client → server): the client's `client_port` (or `interleaved`) is kept aside and replaced
 * by the server-side pinhole pair (or an interleaved channel pair of the upstream connection,
 * `upstream_transport`). SETUP 200 (server → client): the server's `server_port` is kept aside and
 * replaced by the client-side pair; both pairs are connected to their peers and each of RTP and
 * RTCP becomes a child session (RTCP pairing: the pairs are allocated, connected and released
 * together, RTCP on RTP + 1). TEARDOWN, or the end of the control connection, releases them.
 * Interleaved on one side and UDP on the other: that side's "pinhole" is a channel of the control
 * connection ({@link ChannelConnection}). Interleaved on both sides: frames are relayed as they are.
 *
 * Everything in a direction is handled in order: a SETUP waits for its ports (bind, connect), and
 * what arrives meanwhile waits behind it (bounded). Control path only; media take the child
 * sessions (UDP) or a frame relay without the mailbox.
 */
import type net from 'node:net';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import { ConnStats } from '../types.ts';
import type { ChildSession, Connection, ConnectionHandler, ListenerContext } from '../types.ts';
import { PendingHandler } from '../core/hold.ts';
import { RtspParser, encode, formatTransport, frameHeader, header, lowerTransport, param, parsePorts, parseTransport, response, setHeader, type RtspLimits, type RtspMessage, type TransportSpec } from './codec.ts';
import { plainAddress, type PinholePair, type PortPairs } from './pinhole.ts';
import { ChannelConnection } from './channel.ts';
import { Hub, HubRegistry, type Reader, type TrackRtp } from './fanout.ts';
import { readSenderReport, RtcpRead } from '../core/rtcp.ts';

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
  first(c: RtspControl, m: RtspMessage): void;
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

type Side = { mode: 'udp'; pair: PinholePair | null; peer: string; ports: [number, number] | null } | { mode: 'tcp'; ch: [number, number]; conns: [ChannelConnection, ChannelConnection] | null };

/** One SETUP: its media on both sides, and the relays between them. */
interface Track {
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

const EMPTY = Buffer.alloc(0);

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

export class RtspControl implements Connection {
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

  private handler: ConnectionHandler = new PendingHandler();
  private closed = false;
  private readonly sock: net.Socket;
  private readonly env: ControlEnv;
  private readonly fromClient: RtspParser;
  private readonly fromServer: RtspParser;
  private readonly clientQ: Serial;
  private readonly serverQ: Serial;
  private readonly clientAddr: string;
  private readonly localAddr: string;
  private upstream: UpstreamInfo | null = null;
  private upstreamWait: Array<(u: UpstreamInfo | null) => void> | null = [];
  /** SETUPs sent upstream, by CSeq. */
  private readonly pendingSetups = new Map<string, Track>();
  private readonly tracks: Track[] = [];
  /** Interleaved channels of the client (and of the server) that a relay reads. */
  private readonly clientChannels = new Map<number, ChannelConnection>();
  private readonly serverChannels = new Map<number, ChannelConnection>();
  private nextServerChannel = 0;
  private readonly scratch = Buffer.allocUnsafe(4);
  // Fan-out state.
  /** Our own RTSP session id for a client served from shared tracks (answered here, never upstream). */
  private localSession: string | null = null;
  /** Hubs this connection's upstream session feeds. */
  private readonly ownedHubs = new Set<Hub>();
  /** The client tore its shared tracks down while other readers still read them: the upstream session is kept for them. */
  private upstreamHeld = false;
  /** The client's socket is gone but the upstream session still feeds other readers (ended with the last one). */
  private clientGone = false;
  private lastCseq = 0;
  private playUrl: string | null = null;
  private readonly pendingPlays = new Set<string>();
  /** CSeqs of requests this proxy sent upstream itself (the TEARDOWN of a held session): their answers are not relayed. */
  private readonly injected = new Set<string>();

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

  private upstreamInfo(): Promise<UpstreamInfo | null> {
    if (this.upstreamWait === null) return Promise.resolve(this.upstream);
    return new Promise((r) => this.upstreamWait?.push(r));
  }

  // ---- client → server -------------------------------------------------------------------

  private onRequest(m: RtspMessage): void | Promise<void> {
    if (this.closed) return;
    this.env.ctx.count('requests');
    if (!this.accepted) {
      this.accepted = true;
      this.env.first(this, m);
    }
    const cseq = Number(header(m, 'cseq'));
    if (Number.isInteger(cseq) && cseq > this.lastCseq) this.lastCseq = cseq;
    const hubs = this.env.hubs;
    if (hubs !== null) {
      const sess = header(m, 'session')?.split(';')[0]?.trim();
      if (sess !== undefined && sess === this.localSession) return this.localAnswer(m);
      if (m.method === 'SETUP') {
        const hub = hubs.get(HubRegistry.keyOf(m.url));
        if (hub !== undefined && hub.owner !== this && wantsUdp(m)) return this.localSetup(m, hub);
      } else if (m.method === 'PLAY') {
        this.playUrl = m.url;
        this.pendingPlays.add(header(m, 'cseq') ?? '');
      } else if (m.method === 'TEARDOWN' && this.heldTeardown(m)) return;
    }
    switch (m.method) {
      case 'SETUP':
        return this.setupRequest(m);
      case 'TEARDOWN':
        this.teardown(m.url);
        break;
    }
    this.forward(m);
  }

  private forward(m: RtspMessage): void {
    this.handler.onData(encode(m));
  }

  private reply(req: RtspMessage, status: number, reason: string): void {
    this.writeClient(encode(response(req, status, reason)));
  }

  private async setupRequest(m: RtspMessage): Promise<void> {
    const tv = header(m, 'transport');
    const specs = tv === undefined ? [] : parseTransport(tv);
    const spec = specs.find((s) => lowerTransport(s) !== null && param(s, 'multicast') === undefined);
    const cseq = header(m, 'cseq') ?? '';
    if (spec === undefined) {
      // Not RTP over unicast UDP or TCP: the server decides, nothing is rewritten.
      this.forward(m);
      return;
    }
    const clientMode = lowerTransport(spec) as 'udp' | 'tcp';
    const opt = this.env.upstreamTransport;
    const serverMode = opt === 'same' ? clientMode : opt;
    if (clientMode === 'tcp' && serverMode === 'tcp') {
      // Interleaved on both sides: frames are relayed as they are.
      this.forward(m);
      return;
    }
    const track: Track = { url: m.url, clientProto: spec.proto, client: { mode: 'udp', pair: null, peer: '', ports: null }, server: { mode: 'udp', pair: null, peer: '', ports: null }, children: [], released: false, hub: null, reader: null, rtp: {} };
    if (clientMode === 'udp') {
      const ports = parsePorts(param(spec, 'client_port'));
      if (ports === null) {
        this.env.ctx.count('setup_refused');
        return this.reply(m, 461, 'Unsupported Transport');
      }
      // The client's control address, not a `destination` it names: a pinhole never points at a third party.
      track.client = { mode: 'udp', pair: null, peer: this.clientAddr, ports };
    } else {
      const ch = parsePorts(param(spec, 'interleaved') ?? '0-1', 0, 255);
      if (ch === null) {
        this.env.ctx.count('setup_refused');
        return this.reply(m, 461, 'Unsupported Transport');
      }
      track.client = { mode: 'tcp', ch, conns: null };
    }
    const profile = spec.proto.split('/').slice(0, 2).join('/');
    const out: TransportSpec = { proto: serverMode === 'tcp' ? `${profile}/TCP` : profile, params: [['unicast', null]] };
    if (serverMode === 'udp') {
      const up = await this.upstreamInfo();
      if (up === null) {
        this.env.ctx.count('setup_refused');
        this.env.ctx.rateLog.warn(`rtsp-no-upstream:${this.env.listener}`, { listener: this.env.listener }, 'RTSP: UDP media needs an RTSP cluster (the server address); SETUP refused');
        return this.reply(m, 503, 'Service Unavailable');
      }
      const pair = await this.env.ports.allocate(up.localAddress);
      if (pair === null) {
        this.env.ctx.count('ports_exhausted');
        return this.reply(m, 453, 'Not Enough Bandwidth');
      }
      track.server = { mode: 'udp', pair, peer: up.remoteAddress, ports: null };
      out.params.push(['client_port', `${pair.rtp.port}-${pair.rtcp.port}`]);
    } else {
      const ch: [number, number] = [this.nextServerChannel, this.nextServerChannel + 1];
      this.nextServerChannel += 2;
      track.server = { mode: 'tcp', ch, conns: null };
      out.params.push(['interleaved', `${ch[0]}-${ch[1]}`]);
    }
    if (this.closed) return this.release(track);
    const mode = param(spec, 'mode');
    if (mode !== undefined && mode !== null) out.params.push(['mode', mode]);
    setHeader(m, 'Transport', formatTransport([out]));
    const old = this.pendingSetups.get(cseq);
    if (old !== undefined) this.release(old);
    this.pendingSetups.set(cseq, track);
    this.env.ctx.count('setups');
    this.forward(m);
  }

  private onClientFrame(ch: number, d: Buffer): void {
    const c = this.clientChannels.get(ch);
    if (c !== undefined) c.deliver(d);
    else this.handler.onData(Buffer.concat([frameHeader(ch, d.length), d]));
  }

  // ---- server → client -------------------------------------------------------------------

  private onResponse(r: RtspMessage): void | Promise<void> {
    if (this.closed) return;
    if (r.request) {
      // A server-to-client request (ANNOUNCE, GET_PARAMETER, REDIRECT): relayed as it is.
      this.writeClient(encode(r));
      return;
    }
    const sid = header(r, 'session');
    if (sid !== undefined) this.sessionId = sid.split(';')[0] ?? sid;
    const cseq = header(r, 'cseq') ?? '';
    if (this.injected.delete(cseq)) {
      if (this.clientGone && this.injected.size === 0) this.finishNow(null);
      return;
    }
    if (this.pendingPlays.delete(cseq) && r.status === 200) for (const h of this.ownedHubs) h.playing = true;
    const track = this.pendingSetups.get(cseq);
    if (track !== undefined) {
      this.pendingSetups.delete(cseq);
      return this.setupReply(r, track);
    }
    this.writeClient(encode(r));
  }

  private async setupReply(r: RtspMessage, track: Track): Promise<void> {
    if (r.status < 200 || r.status >= 300) {
      this.release(track);
      this.writeClient(encode(r));
      return;
    }
    const spec = parseTransport(header(r, 'transport') ?? '')[0];
    const fail = (why: string): void => {
      this.release(track);
      this.env.ctx.count('setup_failed');
      this.env.ctx.rateLog.warn(`rtsp-setup:${this.env.listener}`, { listener: this.env.listener, why }, 'RTSP: SETUP answer unusable');
      this.writeClient(encode(response(r, 502, 'Bad Gateway')));
    };
    if (spec === undefined) return fail('no Transport in the answer');
    const s = track.server;
    if (s.mode === 'udp') {
      const ports = parsePorts(param(spec, 'server_port'));
      if (ports === null || s.pair === null) return fail('no server_port in the answer');
      s.ports = ports;
      const src = param(spec, 'source');
      if (typeof src === 'string' && src !== '') s.peer = plainAddress(src);
      // RTCP pairs with RTP: the same server address (`source` included), its port of the pair (RTP + 1 when one port is named).
      const ok = await Promise.all([s.pair.rtp.connect(s.peer, ports[0]), s.pair.rtcp.connect(s.peer, ports[1])]);
      if (!ok[0] || !ok[1]) return fail(`cannot connect to ${s.peer}:${ports[0]}`);
      s.pair.rtcp.observer = this.rtcpObserver(track.rtp);
    } else {
      const ch = parsePorts(param(spec, 'interleaved'), 0, 255) ?? s.ch;
      s.ch = ch;
      const up = this.upstream?.remoteAddress ?? 'upstream';
      const write = (c: number, d: Buffer): boolean => this.writeServerFrame(c, d);
      s.conns = [new ChannelConnection(ch[0], write, this.local, up), new ChannelConnection(ch[1], write, this.local, up)];
      s.conns[1].observer = this.rtcpObserver(track.rtp);
      this.serverChannels.set(ch[0], s.conns[0]);
      this.serverChannels.set(ch[1], s.conns[1]);
    }
    const c = track.client;
    const out: TransportSpec = { proto: track.clientProto, params: [['unicast', null]] };
    if (c.mode === 'udp') {
      const pair = await this.env.ports.allocate(this.localAddr);
      if (pair === null) {
        this.env.ctx.count('ports_exhausted');
        this.release(track);
        this.writeClient(encode(response(r, 453, 'Not Enough Bandwidth')));
        return;
      }
      c.pair = pair;
      pair.rtp.spliceAfter = this.env.spliceAfter;
      pair.rtcp.observer = this.rtcpObserver(track.rtp);
      const ports = c.ports as [number, number];
      const ok = await Promise.all([pair.rtp.connect(c.peer, ports[0]), pair.rtcp.connect(c.peer, ports[1])]);
      if (!ok[0] || !ok[1]) return fail(`cannot connect to the client ${c.peer}:${ports[0]}`);
      out.params.push(['client_port', `${ports[0]}-${ports[1]}`], ['server_port', `${pair.rtp.port}-${pair.rtcp.port}`]);
    } else {
      const write = (ch: number, d: Buffer): boolean => this.writeClientFrame(ch, d);
      c.conns = [new ChannelConnection(c.ch[0], write, this.local, this.remote), new ChannelConnection(c.ch[1], write, this.local, this.remote)];
      c.conns[1].observer = this.rtcpObserver(track.rtp);
      this.clientChannels.set(c.ch[0], c.conns[0]);
      this.clientChannels.set(c.ch[1], c.conns[1]);
      out.params.push(['interleaved', `${c.ch[0]}-${c.ch[1]}`]);
    }
    for (const k of ['ssrc', 'mode']) {
      const v = param(spec, k);
      if (v !== undefined) out.params.push([k, v]);
    }
    if (this.closed) return this.release(track);
    setHeader(r, 'Transport', formatTransport([out]));
    const hubs = this.env.hubs;
    const key = HubRegistry.keyOf(track.url);
    if (hubs !== null && c.mode === 'udp' && s.mode === 'udp' && c.pair !== null && s.pair !== null && hubs.get(key) === undefined) {
      // The first reader of this track: its server-side pinholes become a hub that later readers share.
      const ssrc = param(spec, 'ssrc');
      const hub = new Hub(key, track.url, typeof ssrc === 'string' ? ssrc : null, s.pair, this, this.env.readerQueue, (h) => this.hubEnded(h));
      hub.rtp = track.rtp;
      s.pair = null;
      hubs.add(hub);
      this.ownedHubs.add(hub);
      track.hub = hub;
      track.reader = hub.addReader(c.pair);
      this.startRelays(track, [c.pair.rtp, c.pair.rtcp], [track.reader.rtp, track.reader.rtcp]);
    } else this.startRelays(track);
    this.tracks.push(track);
    this.writeClient(encode(r));
  }

  /** One child session for RTP and one for RTCP, client side as their source. */
  private startRelays(t: Track, clientEnds?: [Connection, Connection], serverEnds?: [Connection, Connection]): void {
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

  /**
   * Reads the sender reports of RTCP datagrams into `rtp` (RFC 3550 §6.4.1). The datagram is
   * relayed whatever it holds; a malformed one is counted (`rtcp_malformed`), never thrown on.
   */
  private rtcpObserver(rtp: TrackRtp): (d: Buffer) => void {
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
  private writeClientFrame(ch: number, d: Buffer): boolean {
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
  private writeServerFrame(ch: number, d: Buffer): boolean {
    if (this.closed) return false;
    this.handler.onData(Buffer.concat([frameHeader(ch, d.length, this.scratch), d]));
    return true;
  }

  private writeClient(b: Buffer): boolean {
    if (this.closed || this.clientGone) {
      this.stats.drops++;
      return true;
    }
    this.stats.txPackets++;
    this.stats.txBytes += b.length;
    return this.sock.write(b);
  }

  // ---- fan-out ---------------------------------------------------------------------------

  /** SETUP of a track that is already flowing: a reader of its hub, answered here. */
  private async localSetup(m: RtspMessage, hub: Hub): Promise<void> {
    const spec = parseTransport(header(m, 'transport') ?? '').find((t) => lowerTransport(t) === 'udp');
    const ports = spec === undefined ? null : parsePorts(param(spec, 'client_port'));
    if (spec === undefined || ports === null) return this.reply(m, 461, 'Unsupported Transport');
    const pair = await this.env.ports.allocate(this.localAddr);
    if (pair === null) {
      this.env.ctx.count('ports_exhausted');
      return this.reply(m, 453, 'Not Enough Bandwidth');
    }
    const ok = await Promise.all([pair.rtp.connect(this.clientAddr, ports[0]), pair.rtcp.connect(this.clientAddr, ports[1])]);
    if (!ok[0] || !ok[1] || this.closed || this.clientGone || hub.ended) {
      this.env.ports.release(pair);
      return this.reply(m, 503, 'Service Unavailable');
    }
    const track: Track = { url: m.url, clientProto: spec.proto, client: { mode: 'udp', pair, peer: this.clientAddr, ports }, server: { mode: 'udp', pair: null, peer: '', ports: null }, children: [], released: false, hub, reader: null, rtp: hub.rtp };
    pair.rtcp.observer = this.rtcpObserver(hub.rtp);
    track.reader = hub.addReader(pair);
    this.startRelays(track, [pair.rtp, pair.rtcp], [track.reader.rtp, track.reader.rtcp]);
    this.tracks.push(track);
    this.localSession ??= `l7mp${Math.floor(Math.random() * 2 ** 48).toString(16)}`;
    this.sessionId = this.localSession;
    this.env.ctx.count('fanout_readers');
    if (this.env.hubs !== null) this.env.hubs.sharedReaders++;
    const out: TransportSpec = { proto: spec.proto, params: [['unicast', null], ['client_port', `${ports[0]}-${ports[1]}`], ['server_port', `${pair.rtp.port}-${pair.rtcp.port}`]] };
    if (hub.ssrc !== null) out.params.push(['ssrc', hub.ssrc]);
    out.params.push(['mode', '"PLAY"']);
    this.writeClient(encode(response(m, 200, 'OK', [['Transport', formatTransport([out])], ['Session', `${this.localSession};timeout=60`]])));
  }

  /** A request in our own session (a client served from shared tracks): answered here. */
  private localAnswer(m: RtspMessage): void {
    const headers: Array<[string, string]> = [['Session', `${this.localSession};timeout=60`]];
    if (m.method === 'PLAY') {
      const info = this.tracks.filter((t) => t.hub !== null && t.hub.lastSeq >= 0).map((t) => `url=${t.url};seq=${((t.hub as Hub).lastSeq + 1) & 0xffff};rtptime=${(t.hub as Hub).lastTs}`);
      if (info.length > 0) headers.push(['RTP-Info', info.join(',')]);
      headers.push(['Range', 'npt=now-']);
      this.env.ctx.count('fanout_plays');
    } else if (m.method === 'TEARDOWN') this.teardown(m.url);
    this.writeClient(encode(response(m, 200, 'OK', headers)));
  }

  /**
   * TEARDOWN by the client whose upstream session feeds shared tracks that others still read:
   * its own readers leave, the upstream session stays, and the answer comes from here. False if
   * nobody else reads them (the TEARDOWN goes upstream as usual).
   */
  private heldTeardown(m: RtspMessage): boolean {
    if (!this.feedsOthers()) return false;
    this.teardown(m.url);
    if ([...this.ownedHubs].every((h) => h.ended)) return false;
    this.upstreamHeld = true;
    this.writeClient(encode(response(m, 200, 'OK', this.sessionId === null ? [] : [['Session', this.sessionId]])));
    return true;
  }

  /** This connection's upstream session feeds readers of other clients. */
  private feedsOthers(): boolean {
    for (const h of this.ownedHubs) for (const r of h.readers) if (!this.tracks.some((t) => t.reader === r)) return true;
    return false;
  }

  /** A hub this connection fed ended (its last reader left): tear the upstream session down if the client no longer wants it. */
  private hubEnded(h: Hub): void {
    this.env.hubs?.remove(h);
    this.env.ports.release(h.server);
    this.ownedHubs.delete(h);
    if (this.ownedHubs.size > 0 || this.closed || !(this.upstreamHeld || this.clientGone)) return;
    const cseq = String(++this.lastCseq);
    this.injected.add(cseq);
    this.env.ctx.count('upstream_teardowns');
    const headers: Array<[string, string]> = [['CSeq', cseq]];
    if (this.sessionId !== null) headers.push(['Session', this.sessionId]);
    this.handler.onData(encode({ request: true, method: 'TEARDOWN', url: this.playUrl ?? h.url, version: 'RTSP/1.0', status: 0, reason: '', headers, body: EMPTY }));
  }

  // ---- teardown --------------------------------------------------------------------------

  /** TEARDOWN of `url`: the tracks it names (a track URL, or the aggregate URL above them) are released. */
  private teardown(url: string): void {
    const base = url.endsWith('/') ? url.slice(0, -1) : url;
    const hit = this.tracks.filter((t) => t.url === url || t.url.startsWith(`${base}/`) || t.url === base);
    for (const t of hit.length > 0 ? hit : [...this.tracks]) this.release(t);
  }

  private release(t: Track): void {
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
    const s = this.sock;
    if (!s.destroyed) {
      if (!s.writableEnded) s.end();
      if (s.writableFinished) s.destroy();
      else s.once('finish', () => s.destroy());
    }
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

  private finishNow(err: L7Error | null): void {
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

/** The SETUP asks for RTP over UDP unicast. */
function wantsUdp(m: RtspMessage): boolean {
  const t = parseTransport(header(m, 'transport') ?? '').find((x) => lowerTransport(x) !== null && param(x, 'multicast') === undefined);
  return t !== undefined && lowerTransport(t) === 'udp';
}
