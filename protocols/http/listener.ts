/**
 * HTTP listener (docs/l7mp-compat.md §3.1, §3.2): an HTTP/1.1 server bound on every worker
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
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { ConnectionHandler, ListenerContext, ListenerInstance, ListenerSpecContext, Metadata } from '../types.ts';
import { BaseConnection } from '../core/connection.ts';
import { HTTP_EXCHANGE, HOP_BY_HOP, httpMetadata, type HttpExchange, type ResponseHead } from '../core/http.ts';
import { HTTP_LIMIT_DEFAULTS, HttpServerGuard, serverOptions } from '../core/http-limits.ts';
import { l7mpErrorBody, l7mpStatusMessage } from '../core/l7mp-error.ts';
import { hostPort, listen, stopListening } from '../core/server.ts';
import type { HttpListenerSpec } from './config.ts';

/** How long a closing listener lets in-flight requests finish before it drops them, ms. */
const CLOSE_GRACE_MS = 1000;

/**
 * A listener's drain state, shared with its exchanges: once `draining`, a response not yet begun
 * goes out with `Connection: close`, and a connection whose response ends is closed if idle.
 */
export interface HttpDrain {
  draining: boolean;
  readonly server: http.Server;
}

/** One request/response exchange: the downstream of one session. */
export class HttpServerConnection extends BaseConnection implements HttpExchange {
  readonly kind = 'byte' as const;
  readonly local: string;
  readonly remote: string;
  private head: ResponseHead | null = null;
  private reading = false;
  private readonly req: http.IncomingMessage;
  private readonly res: http.ServerResponse;
  /** Largest request body, 0 = none. Unit: bytes. */
  private readonly maxBody: number;
  private readonly ctx: ListenerContext;
  private readonly listenerDrain: HttpDrain | null;

  /**
   * @param maxBody largest request body (bytes, 0 = no limit); `ctx` counts `body_too_large`.
   * @param drain the listener's drain state (none: never drains)
   */
  constructor(req: http.IncomingMessage, res: http.ServerResponse, local: string, remote: string, maxBody: number, ctx: ListenerContext, drain: HttpDrain | null = null) {
    super();
    this.req = req;
    this.res = res;
    this.local = local;
    this.remote = remote;
    this.maxBody = maxBody;
    this.ctx = ctx;
    this.listenerDrain = drain;
    // 'close' comes after 'finish' for a complete response, or alone when the client went away.
    res.once('close', () => {
      this.finish(res.writableFinished ? null : new L7Error(ErrorCode.DownstreamReset, `${remote}: client closed the connection before the response ended`));
      // Draining: a keep-alive connection whose response went out before the drain began is
      // closed now that it is idle (one with a pipelined request waits for that one).
      if (drain?.draining === true) drain.server.closeIdleConnections();
    });
    // A write Node refuses (after the end, on a destroyed socket) is emitted as 'error': without a
    // listener it would be thrown out of the event loop.
    res.on('error', (err: Error) => this.finish(new L7Error(ErrorCode.DownstreamReset, `${remote}: ${err.message}`, { cause: err })));
  }

  /** Request body chunks are read only once a handler is set: until then the socket pushes back. */
  override setHandler(h: ConnectionHandler): void {
    super.setHandler(h);
    if (this.reading) return;
    this.reading = true;
    this.req.on('data', (chunk: Buffer) => {
      // rxBytes is this request's body so far: chunked bodies are counted as they stream.
      if (!this.countRx(chunk)) return;
      if (this.maxBody > 0 && this.stats.rxBytes > this.maxBody) this.bodyTooLarge();
      else this.handler.onData(chunk);
    });
    this.req.once('end', () => this.handler.onEnd());
    this.res.on('drain', () => this.handler.onDrain());
  }

  setResponseHead(head: ResponseHead): void {
    if (!this.res.headersSent) this.head = head;
  }

  private writeHead(): void {
    if (this.res.headersSent) return;
    if (this.listenerDrain?.draining === true) this.res.shouldKeepAlive = false;
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

  protected override writable(): boolean {
    return !this.res.writableEnded;
  }

  protected override write(data: Buffer): boolean {
    this.writeHead();
    return this.res.write(data);
  }

  override pause(): void {
    this.req.pause();
  }

  override resume(): void {
    this.req.resume();
  }

  /** Ends the response; the exchange closes once it is flushed. */
  override end(): boolean {
    if (!this.closed && !this.res.writableEnded) {
      this.writeHead();
      this.res.end();
    }
    return true;
  }

  /** Ends the response (see `end`): the exchange closes when it is flushed or the client leaves. */
  override close(): void {
    this.end();
  }

  /**
   * The session failed before it connected: l7mp's JSON error response (status from the error,
   * e.g. 404 for no route, docs/l7mp-compat.md §2.3).
   */
  onSessionFailed(err: L7Error): void {
    if (this.closed || this.res.headersSent) return;
    const status = err.status >= 400 && err.status < 600 ? err.status : 500;
    const message = l7mpStatusMessage(status);
    const body = l7mpErrorBody(status, message, err.message);
    this.res.writeHead(status, message, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    this.res.end(body);
  }

  /**
   * The body went over `max_body_size`: 413 and close if no response has started (nginx), else the
   * connection is reset; the session ends with L7_ERR_DOWNSTREAM_LIMIT. Counted `body_too_large`.
   */
  private bodyTooLarge(): void {
    this.ctx.count('body_too_large');
    this.req.pause();
    const err = new L7Error(ErrorCode.DownstreamLimit, `${this.remote}: request body over ${this.maxBody} bytes`);
    if (!this.res.headersSent) {
      const body = l7mpErrorBody(413, 'Payload Too Large', err.message);
      this.res.writeHead(413, 'Payload Too Large', { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
      this.res.end(body);
    } else this.res.destroy();
    this.finish(err);
  }
}

/** The request's `Content-Length` is over `maxBody` bytes (0 = no limit). */
function declaredOver(req: http.IncomingMessage, maxBody: number): boolean {
  const cl = req.headers['content-length'];
  return maxBody > 0 && cl !== undefined && Number(cl) > maxBody;
}

/**
 * A request whose `Content-Length` is over `maxBody` (bytes, 0 = no limit) gets 413 and a close
 * before any session starts; true if it did.
 */
export function rejectLargeBody(req: http.IncomingMessage, res: http.ServerResponse, maxBody: number): boolean {
  if (!declaredOver(req, maxBody)) return false;
  const cl = req.headers['content-length'] as string;
  const body = l7mpErrorBody(413, 'Payload Too Large', `request body of ${cl} bytes is over the limit of ${maxBody} bytes`);
  res.writeHead(413, 'Payload Too Large', { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
  return true;
}

export class HttpListener implements ListenerInstance {
  private readonly name: string;
  private readonly spec: HttpListenerSpec;
  private readonly ctx: ListenerContext;
  private readonly server: http.Server;
  private readonly guard: HttpServerGuard;
  /** Largest request body, 0 = none. Unit: bytes. */
  private readonly maxBody: number;
  private requests = 0;
  private closed = false;
  /** Draining: no new connections; every response goes out with `Connection: close`. */
  private readonly drainState: HttpDrain;

  constructor(cfg: ListenerSpecContext<HttpListenerSpec>, ctx: ListenerContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
    this.ctx = ctx;
    // Finite deadlines and sizes (limits.ts); the request deadline covers receiving the request,
    // not the response, which streams for as long as the session lives (its idle timeout applies).
    const o = cfg.spec.options;
    const D = HTTP_LIMIT_DEFAULTS;
    this.maxBody = o?.max_body_size ?? D.max_body_size;
    const limits = serverOptions({
      headersTimeoutMs: (o?.header_timeout ?? D.header_timeout) * 1000,
      requestTimeoutMs: (o?.request_timeout ?? D.request_timeout) * 1000,
      keepAliveTimeoutMs: (o?.keepalive_timeout ?? D.keepalive_timeout) * 1000,
      maxHeaderSize: o?.max_header_size ?? D.max_header_size,
    });
    this.server = http.createServer({ ...limits, keepAlive: true }, (req, res) => this.onRequest(req, res));
    this.drainState = { draining: false, server: this.server };
    this.guard = new HttpServerGuard(this.server, ctx, 'header_timeout', this.name);
    // `Expect: 100-continue`: no 100 for a body that is over the limit, its 413 goes at once
    // (RFC 9110 §10.1.1), so the client does not send it.
    this.server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (!declaredOver(req, this.maxBody)) res.writeContinue();
      this.onRequest(req, res);
    });
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
    // A request on a keep-alive connection during a drain is served, and its answer tells the
    // client to go elsewhere for the next one (Envoy's drain does the same for HTTP/1).
    if (this.drainState.draining) res.shouldKeepAlive = false;
    this.guard.track(req, res);
    if (rejectLargeBody(req, res, this.maxBody)) {
      this.ctx.count('body_too_large');
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
    const conn = new HttpServerConnection(req, res, hostPort(laddr, lport), hostPort(raddr, rport), this.maxBody, this.ctx, this.drainState);
    const metadata: Metadata = {
      IP: { src_addr: raddr, dst_addr: laddr },
      TCP: { src_port: rport, dst_port: lport },
      HTTP: meta,
      [HTTP_EXCHANGE]: conn,
    };
    this.ctx.accept(conn, metadata, `HTTP:${raddr}:${rport}-${laddr}:${lport}-${this.ctx.nextSessionSeq()}`);
  }

  /**
   * Drain: stop listening, close the idle keep-alive connections, and answer the requests under
   * way with `Connection: close` (those whose head is already out close once they are done).
   */
  drain(): void {
    if (this.drainState.draining) return;
    this.drainState.draining = true;
    // http.Server.close() also closes the connections that have no request under way.
    stopListening(this.server as net.Server);
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
