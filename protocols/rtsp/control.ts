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
 *
 * The socket side (reads, writes, interleaved channels, tracks and their relays, the end) is
 * protocols/rtsp/control-base.ts ({@link ControlConnection}); this file is the RTSP handling.
 */
import { encode, formatTransport, header, lowerTransport, param, parsePorts, parseTransport, response, setHeader, type RtspMessage, type TransportSpec } from './codec.ts';
import { plainAddress } from './pinhole.ts';
import { ChannelConnection } from './channel.ts';
import { Hub, HubRegistry } from './fanout.ts';
import { ControlConnection, type Track } from './control-base.ts';

const EMPTY = Buffer.alloc(0);

/** The RTSP handling of a control connection: requests, responses, the SETUP rewrite, fan-out. */
export class RtspControl extends ControlConnection {
  /** Our own RTSP session id for a client served from shared tracks (answered here, never upstream). */
  private localSession: string | null = null;
  /** The client tore its shared tracks down while other readers still read them: the upstream session is kept for them. */
  private upstreamHeld = false;
  private lastCseq = 0;
  private nextServerChannel = 0;
  private playUrl: string | null = null;
  private readonly pendingPlays = new Set<string>();
  /** CSeqs of requests this proxy sent upstream itself (the TEARDOWN of a held session): their answers are not relayed. */
  private readonly injected = new Set<string>();

  // ---- client → server -------------------------------------------------------------------

  protected override onRequest(m: RtspMessage): void | Promise<void> {
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

  // ---- server → client -------------------------------------------------------------------

  protected override onResponse(r: RtspMessage): void | Promise<void> {
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
}

/** The SETUP asks for RTP over UDP unicast. */
function wantsUdp(m: RtspMessage): boolean {
  const t = parseTransport(header(m, 'transport') ?? '').find((x) => lowerTransport(x) !== null && param(x, 'multicast') === undefined);
  return t !== undefined && lowerTransport(t) === 'udp';
}
