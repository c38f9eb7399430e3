/**
 * RTSP listener: TCP control connections (every worker, SO_REUSEPORT; one worker with `fanout`).
 * A connection becomes a session when its first request is in, so rules can match /RTSP/method,
 * /RTSP/url, /RTSP/path and /RTSP/headers/<name>; one that sends no complete request within
 * `request_timeout` is closed (one sweep per listener and second, no timer per connection).
 */
import net from 'node:net';
import type { ListenerContext, ListenerInstance, ListenerSpecContext, Metadata } from '../types.ts';
import { closeServer, hostPort, listen } from '../core/server.ts';
import { establishAfter } from '../schema.ts';
import { DEFAULT_LIMITS, requestMetadata, type RtspMessage } from './codec.ts';
import type { RtspListenerSpec } from './config.ts';
import { RtspControl } from './control.ts';
import { RTSP_CONTROL, type ControlConnection, type ControlEnv } from './control-base.ts';
import { PortPairs } from './pinhole.ts';
import { HubRegistry } from './fanout.ts';

export class RtspListener implements ListenerInstance {
  private readonly name: string;
  private readonly spec: RtspListenerSpec;
  private readonly ctx: ListenerContext;
  private readonly server: net.Server;
  private readonly conns = new Set<net.Socket>();
  /** Connections still waiting for their first request. */
  private readonly waiting = new Set<ControlConnection>();
  private readonly env: ControlEnv;
  private readonly ports: PortPairs;
  private sweep: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(cfg: ListenerSpecContext<RtspListenerSpec>, ctx: ListenerContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
    this.ctx = ctx;
    const o = cfg.spec.options ?? {};
    this.ports = new PortPairs(o.rtp_ports?.min ?? 30000, o.rtp_ports?.max ?? 39999);
    this.env = {
      listener: cfg.name,
      limits: { maxHeadBytes: o.max_head_bytes ?? DEFAULT_LIMITS.maxHeadBytes, maxHeaders: o.max_headers ?? DEFAULT_LIMITS.maxHeaders, maxBodyBytes: o.max_body_bytes ?? DEFAULT_LIMITS.maxBodyBytes },
      upstreamTransport: o.upstream_transport ?? 'same',
      mediaIdleMs: (o.media_idle_timeout ?? 60) * 1000,
      ports: this.ports,
      ctx,
      first: (c, m) => this.first(c, m),
      hubs: o.fanout === true ? new HubRegistry() : null,
      readerQueue: o.reader_queue ?? 256,
      spliceAfter: establishAfter(o.offload),
    };
    this.server = net.createServer({ allowHalfOpen: true }, (sock) => this.onConnection(sock));
  }

  start(): Promise<void> {
    const address = this.spec.address ?? '::';
    const timeoutMs = (this.spec.options?.request_timeout ?? 10) * 1000;
    this.sweep = setInterval(() => {
      const now = Date.now();
      for (const c of this.waiting) {
        if (now - c.since < timeoutMs) continue;
        this.waiting.delete(c);
        this.ctx.count('request_timeout');
        c.abort();
      }
    }, Math.min(1000, timeoutMs));
    this.sweep.unref();
    return listen(this.server, { port: this.spec.port, host: address, reusePort: true }, this.name, `RTSP ${hostPort(address, this.spec.port)}`, this.ctx);
  }

  private onConnection(sock: net.Socket): void {
    if (this.closed) {
      sock.destroy();
      return;
    }
    sock.setNoDelay(true);
    this.conns.add(sock);
    const c = new RtspControl(sock, this.env, hostPort(sock.localAddress, sock.localPort), hostPort(sock.remoteAddress, sock.remotePort));
    this.waiting.add(c);
    sock.once('close', () => {
      this.conns.delete(sock);
      this.waiting.delete(c);
    });
  }

  /** The first request of `c` is in: hand the connection to the runtime, which routes it. */
  private first(c: ControlConnection, m: RtspMessage): void {
    this.waiting.delete(c);
    const { remoteAddress: raddr, remotePort: rport, localAddress: laddr, localPort: lport } = c.addrs;
    const metadata: Metadata = {
      IP: { src_addr: raddr, dst_addr: laddr },
      TCP: { src_port: rport, dst_port: lport },
      RTSP: requestMetadata(m),
      [RTSP_CONTROL]: c,
    };
    this.ctx.accept(c, metadata, `RTSP:${raddr}:${rport}-${laddr}:${lport}-${this.ctx.nextSessionSeq()}`);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    if (this.sweep !== null) clearInterval(this.sweep);
    for (const c of this.waiting) c.abort();
    this.waiting.clear();
    return closeServer(this.server, this.conns);
  }

  describe(): Record<string, unknown> {
    const h = this.env.hubs;
    const fanout = h === null ? {} : { fanout: { hubs: h.hubs.size, readers: [...h.hubs.values()].reduce((n, x) => n + x.readers.size, 0), shared_readers: h.sharedReaders, reader_drops: h.readerDrops } };
    return { protocol: 'RTSP', address: hostPort(this.spec.address ?? '::', this.spec.port), connections: this.conns.size, pinhole_pairs: this.ports.inUse, ...fanout };
  }
}
