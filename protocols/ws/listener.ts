/**
 * WebSocket listener: an HTTP server bound on every worker (SO_REUSEPORT) that upgrades every
 * request to a WebSocket session. Metadata follows l7mp's HTTP shape (docs/l7mp-compat.md §3.1).
 * Every socket gets an 'error' handler: an oversized message closes that connection (1009), never
 * the worker. The upgrade request has a deadline (`options.handshake_timeout`, 408) and a head size
 * limit (431). A request the proxy cannot read (a parser error, a target `new URL()` rejects such as
 * `GET http://[/`, a bad handshake) is a 400 and a counted drop (`malformed`); so is a frame that
 * breaks RFC 6455 after the upgrade (ws closes it with 1002/1007/1009).
 */
import http from 'node:http';
import type net from 'node:net';
import { WebSocketServer } from 'ws';
import type { ListenerContext, ListenerInstance, ListenerSpecContext } from '../types.ts';
import { closeServer, hostPort, listen, stopListening } from '../core/server.ts';
import { httpMetadata, rejectSocket } from '../core/http.ts';
import { HTTP_LIMIT_DEFAULTS, HttpServerGuard, serverOptions } from '../core/http-limits.ts';
import { WsConnection } from './connection.ts';
import { DEFAULT_MAX_PAYLOAD, WS_HANDSHAKE_TIMEOUT_S, type WsListenerSpec } from './config.ts';

export class WsListener implements ListenerInstance {
  private readonly name: string;
  private readonly spec: WsListenerSpec;
  private readonly ctx: ListenerContext;
  private readonly server: http.Server;
  private readonly wss: WebSocketServer;
  /** Counts and answers what the HTTP server refuses before an upgrade (timeouts, 431, 400). */
  private readonly guard: HttpServerGuard;
  private closed = false;

  constructor(cfg: ListenerSpecContext<WsListenerSpec>, ctx: ListenerContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
    this.ctx = ctx;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: cfg.spec.max_payload ?? DEFAULT_MAX_PAYLOAD, perMessageDeflate: false });
    // The handshake deadline runs from accept to a complete upgrade request (Node's header
    // deadline starts at accept); the upgrade is answered synchronously once the head is in.
    const handshakeMs = (cfg.spec.options?.handshake_timeout ?? WS_HANDSHAKE_TIMEOUT_S) * 1000;
    const limits = serverOptions({
      headersTimeoutMs: handshakeMs,
      requestTimeoutMs: handshakeMs,
      keepAliveTimeoutMs: HTTP_LIMIT_DEFAULTS.keepalive_timeout * 1000,
      maxHeaderSize: cfg.spec.options?.max_header_size ?? HTTP_LIMIT_DEFAULTS.max_header_size,
    });
    this.server = http.createServer(limits, (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
      res.end('WebSocket upgrade required\n');
    });
    this.guard = new HttpServerGuard(this.server, ctx, 'handshake_timeout', this.name);
    this.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    // A handshake ws refuses (bad Sec-WebSocket-Key or version, not a GET...): ws leaves the answer to us.
    this.wss.on('wsClientError', (err: Error, socket: net.Socket) => this.malformed(socket, `WebSocket handshake: ${err.message}`));
  }

  private onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    if (this.closed) {
      socket.destroy();
      return;
    }
    const meta = httpMetadata(req);
    if (meta === null) {
      this.malformed(socket, 'malformed request target');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const raddr = socket.remoteAddress ?? '';
      const rport = socket.remotePort ?? 0;
      const laddr = socket.localAddress ?? '';
      const lport = socket.localPort ?? 0;
      const conn = new WsConnection(ws, 'downstream', hostPort(laddr, lport), hostPort(raddr, rport), this.onBadFrame);
      const metadata = { IP: { src_addr: raddr, dst_addr: laddr }, TCP: { src_port: rport, dst_port: lport }, HTTP: meta };
      this.ctx.accept(conn, metadata, `WS:${raddr}:${rport}-${laddr}:${lport}-${this.ctx.nextSessionSeq()}`);
    });
  }

  /** A request or handshake the listener cannot serve: 400, count, close. */
  private malformed(socket: net.Socket, why: string): void {
    this.ctx.count('malformed');
    this.ctx.rateLog.warn(`ws-upgrade:${this.name}`, { listener: this.name, peer: socket.remoteAddress, why }, 'WebSocket upgrade rejected');
    rejectSocket(socket, 400, why);
  }

  /** A frame that broke RFC 6455 after the upgrade (ws closed it with 1002/1007/1009). */
  private readonly onBadFrame = (err: Error & { code?: string }): void => {
    this.ctx.count('malformed');
    this.ctx.rateLog.warn(`ws-frame:${this.name}`, { listener: this.name, code: err.code, err: err.message }, 'WebSocket protocol error');
  };

  start(): Promise<void> {
    const address = this.spec.address ?? '::';
    return listen(this.server, { port: this.spec.port, host: address, reusePort: true }, this.name, `WebSocket ${hostPort(address, this.spec.port)}`, this.ctx);
  }

  /**
   * Drain: stop listening and close the idle HTTP connections that have not upgraded yet; the
   * WebSocket sessions carry on until their peers close them (or the drain deadline).
   */
  drain(): void {
    stopListening(this.server);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await closeServer(this.server);
  }

  describe(): Record<string, unknown> {
    return { protocol: 'WebSocket', address: hostPort(this.spec.address ?? '::', this.spec.port), connections: this.wss.clients.size };
  }
}
