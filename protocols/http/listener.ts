/**
 * HTTP listener (l7mp compat reference §3.1, §3.2): an HTTP/1.1 server bound on every worker
 * with SO_REUSEPORT; every request is one session.
 *
 * The session's downstream is a byte stream: the request body flows to the route, and what the
 * route sends back is the response body. The response head is l7mp's implicit `200` with no
 * Content-Type unless an upstream stage set one through the {@link HttpExchange} (the HTTP
 * cluster relays its upstream's status and headers; the L7mpController answers the API's). A
 * session that fails before it answers (no route, upstream unreachable) gets l7mp's JSON error
 * response, e.g. `404 {"status":404,"message":"Not Found","content":"No route for session ..."}`.
 */
import http from 'node:http';
import type net from 'node:net';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import { ConnStats } from '../types.ts';
import type { Connection, ConnectionHandler, ListenerContext, ListenerInstance, ListenerSpecContext, Metadata } from '../types.ts';
import { hostPort, listen } from '../stream/server.ts';
import type { HttpListenerSpec } from './config.ts';
import { HTTP_EXCHANGE, HOP_BY_HOP, l7mpErrorBody, l7mpStatusMessage, type HttpExchange, type ResponseHead } from './exchange.ts';
import { clientErrorHandler, httpMetadata } from './request.ts';

/** How long a closing listener lets in-flight requests finish before it drops them, ms. */
const CLOSE_GRACE_MS = 1000;

/** One request/response exchange: the downstream of one session. */
export class HttpServerConnection implements Connection, HttpExchange {
  readonly kind = 'byte' as const;
  readonly stats = new ConnStats();
  readonly local: string;
  readonly remote: string;
  private handler: ConnectionHandler | null = null;
  private head: ResponseHead | null = null;
  private closed = false;
  private readonly req: http.IncomingMessage;
  private readonly res: http.ServerResponse;

  constructor(req: http.IncomingMessage, res: http.ServerResponse, local: string, remote: string) {
    this.req = req;
    this.res = res;
    this.local = local;
    this.remote = remote;
    // 'close' comes after 'finish' for a complete response, or alone when the client went away.
    res.once('close', () => {
      this.finish(res.writableFinished ? null : new L7Error(ErrorCode.DownstreamReset, `${remote}: client closed the connection before the response ended`));
    });
    // A write Node refuses (after the end, on a destroyed socket) is emitted as 'error': without a
    // listener it would be thrown out of the event loop.
    res.on('error', (err: Error) => this.finish(new L7Error(ErrorCode.DownstreamReset, `${remote}: ${err.message}`, { cause: err })));
  }

  /** Request body chunks are read only once a handler is set: until then the socket pushes back. */
  setHandler(h: ConnectionHandler): void {
    const first = this.handler === null;
    this.handler = h;
    if (!first) return;
    this.req.on('data', (chunk: Buffer) => {
      this.stats.rxPackets++;
      this.stats.rxBytes += chunk.length;
      (this.handler as ConnectionHandler).onData(chunk);
    });
    this.req.once('end', () => (this.handler as ConnectionHandler).onEnd());
    this.res.on('drain', () => (this.handler as ConnectionHandler).onDrain());
  }

  setResponseHead(head: ResponseHead): void {
    if (!this.res.headersSent) this.head = head;
  }

  private writeHead(): void {
    if (this.res.headersSent) return;
    const h = this.head;
    if (h === null) {
      this.res.writeHead(200);
      return;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(h.headers)) if (!HOP_BY_HOP.has(k.toLowerCase()) && k.toLowerCase() !== 'content-length') headers[k] = v;
    // The head may come from an upstream that is not to be trusted: Node's client parses a status
    // like 099 or 000, and writeHead throws on a status outside 100..999 or a character it refuses.
    // That would throw out of the upstream's 'data' event and end the worker: answer 502 instead.
    if (h.status >= 200 && h.status <= 999) {
      try {
        if (h.statusMessage !== undefined) this.res.writeHead(h.status, h.statusMessage, headers);
        else this.res.writeHead(h.status, headers);
        return;
      } catch {
        // fall through to 502
      }
    }
    this.stats.drops++;
    this.res.writeHead(502, 'Bad Gateway');
  }

  send(data: Buffer): boolean {
    if (this.closed || this.res.writableEnded) {
      this.stats.drops++;
      return true;
    }
    this.writeHead();
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
    return this.res.write(data);
  }

  pause(): void {
    this.req.pause();
  }

  resume(): void {
    this.req.resume();
  }

  /** Ends the response; the exchange closes once it is flushed. */
  end(): boolean {
    if (!this.closed && !this.res.writableEnded) {
      this.writeHead();
      this.res.end();
    }
    return true;
  }

  close(): void {
    this.end();
  }

  /**
   * The session failed before it connected: l7mp's JSON error response (status from the error,
   * e.g. 404 for no route, compat reference §2.3).
   */
  onSessionFailed(err: L7Error): void {
    if (this.closed || this.res.headersSent) return;
    const status = err.status >= 400 && err.status < 600 ? err.status : 500;
    const message = l7mpStatusMessage(status);
    const body = l7mpErrorBody(status, message, err.message);
    this.res.writeHead(status, message, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    this.res.end(body);
  }

  private finish(err: L7Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.handler?.onClose(err);
  }
}

export class HttpListener implements ListenerInstance {
  private readonly name: string;
  private readonly spec: HttpListenerSpec;
  private readonly ctx: ListenerContext;
  private readonly server: http.Server;
  private requests = 0;
  private closed = false;

  constructor(cfg: ListenerSpecContext<HttpListenerSpec>, ctx: ListenerContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
    this.ctx = ctx;
    // No request timeout: a session may stream for as long as its route lives (nginx's
    // client_body_timeout is per read, and the session's own idle handling applies).
    this.server = http.createServer({ requestTimeout: 0, keepAlive: true }, (req, res) => this.onRequest(req, res));
    this.server.on('clientError', clientErrorHandler(this.name, ctx));
  }

  start(): Promise<void> {
    const address = this.spec.address ?? '::';
    return listen(this.server as net.Server, { port: this.spec.port, host: address, reusePort: true }, this.name, `HTTP ${hostPort(address, this.spec.port)}`, this.ctx);
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.closed) {
      res.writeHead(503, { connection: 'close' }).end();
      return;
    }
    this.requests++;
    const meta = httpMetadata(req);
    if (meta === null) {
      // An absolute-form target that is not a URL (`GET http://[/`): 400, never a session.
      this.ctx.count('malformed');
      this.ctx.rateLog.warn(`http-target:${this.name}`, { listener: this.name, peer: req.socket.remoteAddress }, 'malformed HTTP request target');
      const body = l7mpErrorBody(400, 'Bad Request', 'Malformed request target');
      res.writeHead(400, 'Bad Request', { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
      res.end(body);
      return;
    }
    const sock = req.socket;
    const raddr = sock.remoteAddress ?? '';
    const rport = sock.remotePort ?? 0;
    const laddr = sock.localAddress ?? '';
    const lport = sock.localPort ?? 0;
    const conn = new HttpServerConnection(req, res, hostPort(laddr, lport), hostPort(raddr, rport));
    const metadata: Metadata = {
      IP: { src_addr: raddr, dst_addr: laddr },
      TCP: { src_port: rport, dst_port: lport },
      HTTP: meta,
      [HTTP_EXCHANGE]: conn,
    };
    this.ctx.accept(conn, metadata, `HTTP:${raddr}:${rport}-${laddr}:${lport}-${this.ctx.nextSessionSeq()}`);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => {
      const t = setTimeout(() => this.server.closeAllConnections(), CLOSE_GRACE_MS);
      this.server.close(() => {
        clearTimeout(t);
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }

  describe(): Record<string, unknown> {
    return { protocol: 'HTTP', address: hostPort(this.spec.address ?? '::', this.spec.port), requests: this.requests };
  }
}
