/**
 * The admin HTTP server (main thread): the l7mp REST API under /api/v1, the live actor tree,
 * Prometheus metrics, health. Bound to 127.0.0.1 unless told otherwise (`--admin [HOST:]PORT`,
 * or `admin.address` / `admin.port` in the config).
 *
 * Routes are registered as `(method, pattern, handler)`; a pattern's `{name}` segments match one
 * percent-decoded path segment (l7mp names may contain `/`, passed as %2F). A handler returns a
 * {@link Reply} or throws; an {@link L7Error} becomes l7mp's error shape (docs/l7mp-compat.md §2.3):
 * status 400 (or the error's status) and the body `{status, message, content}`.
 *
 * With a bearer token set (`--admin-token`, or L7MP_ADMIN_TOKEN), every route requires
 * `Authorization: Bearer <token>`; otherwise 401.
 *
 * Without a token the API is only for loopback, unless `insecure` (`--admin-insecure`, or
 * `admin.insecure: true`) says otherwise: {@link AdminServer.start} refuses a non-loopback bind
 * ({@link checkAdminBind}), and a request that the workers' L7mpController or Prometheus clusters
 * forward from a non-loopback peer (or a peer without an IP address) is answered 403.
 *
 * Request bodies over 1 MiB are answered 413 (announced by Content-Length or found while reading)
 * and the connection is closed.
 */
import http from 'node:http';
import net from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { L7Error, ErrorCode } from '../../../common/errors.ts';
import { isLoopback } from '../../../common/net-addr.ts';
import type { Logger } from '../../../common/log.ts';
import type { AdminAnswer, AdminCall } from '../../../protocols/types.ts';
import { l7mpErrorBody, l7mpStatusMessage } from '../../../protocols/core/l7mp-error.ts';

/** A parsed request as handlers see it. */
export interface AdminRequest {
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  /** Decoded `{param}` values of the matched pattern. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly headers: http.IncomingHttpHeaders;
  /** The raw body (read fully before the handler runs; at most 1 MiB). */
  readonly body: Buffer;
}

/** What a handler answers. `body` objects are sent as JSON; strings and Buffers as they are. */
export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
}

export type Handler = (req: AdminRequest) => Reply | Promise<Reply>;

interface Route {
  readonly method: string;
  readonly segments: readonly string[];
  readonly handler: Handler;
}

/** Largest request body accepted, bytes; larger ones are answered 413. */
export const MAX_BODY = 1 << 20;

/** The 413 of a body over {@link MAX_BODY}. */
function tooLarge(size: number | string): L7Error {
  return new L7Error(ErrorCode.InvalidArgument, `request body larger than ${MAX_BODY} bytes (got ${size})`, { status: 413 });
}

/**
 * Refuse an admin bind that would serve the API beyond loopback without a token.
 * @param host the bind address (`0.0.0.0`, `::` and every non-loopback address or name are refused).
 * @throws L7Error `L7_ERR_ADMIN_INSECURE` naming the address and the ways out.
 */
export function checkAdminBind(host: string, port: number, token: string | undefined, insecure: boolean): void {
  if (insecure || (token !== undefined && token !== '') || isLoopback(host)) return;
  const addr = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
  throw new L7Error(
    ErrorCode.AdminInsecure,
    `admin: refusing to serve the admin API on ${addr} without a token: ${host} is not a loopback address, so anyone who reaches it could reconfigure the proxy. ` +
      'Set a token (--admin-token TOKEN or L7MP_ADMIN_TOKEN), bind a loopback address (--admin 127.0.0.1:PORT or admin.address), ' +
      'or pass --admin-insecure (admin.insecure: true) to serve it unauthenticated',
  );
}

/** l7mp's error reply: `{status, message, content}`, 4-space indented (docs/l7mp-compat.md §2.3). */
export function errorReply(status: number, message: string, content: unknown): Reply {
  return { status, headers: { 'content-type': 'application/json' }, body: l7mpErrorBody(status, message, content) };
}

/** The reason phrase l7mp used for a status. */
export const statusMessage = l7mpStatusMessage;

/** A request as the dispatcher sees it, from a socket or from a worker ({@link AdminServer.request}). */
interface RawRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  /** Reads the body (called once, after the route matched). */
  body(): Promise<Buffer>;
  /** Discards the body (no route, not authorized). */
  discard(): void;
  /** For admin-cluster calls: the downstream peer's IP address ('' when it has none). */
  readonly peer?: string;
}

export interface AdminServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  log: Logger;
  /** Bearer token required on every route when set. */
  token?: string;
  /**
   * Serve without a token beyond loopback (`--admin-insecure`, `admin.insecure`): a non-loopback
   * bind and admin-cluster requests from non-loopback peers are allowed. Default false.
   */
  insecure?: boolean;
}

export class AdminServer {
  private readonly routes: Route[] = [];
  private readonly server: http.Server;
  private readonly opts: AdminServerOptions;

  constructor(opts: AdminServerOptions) {
    this.opts = opts;
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
  }

  /** Register a handler; patterns like `/api/v1/listeners/{name}`. Later registrations do not override earlier ones. */
  route(method: string, pattern: string, handler: Handler): void {
    this.routes.push({ method, segments: pattern.split('/').filter((s) => s !== ''), handler });
  }

  /**
   * Bind.
   * @throws L7Error `L7_ERR_ADMIN_INSECURE` for a non-loopback address without a token or
   *   `insecure` ({@link checkAdminBind}); `L7_ERR_LISTENER_BIND` naming the address.
   */
  start(): Promise<void> {
    try {
      checkAdminBind(this.opts.host, this.opts.port, this.opts.token, this.opts.insecure === true);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void =>
        reject(new L7Error(ErrorCode.ListenerBind, `admin: cannot listen on ${this.opts.host}:${this.opts.port}: ${err.message}`, { cause: err }));
      this.server.once('error', onError);
      this.server.listen({ host: this.opts.host, port: this.opts.port }, () => {
        this.server.removeListener('error', onError);
        resolve();
      });
    });
  }

  /** The bound address, `host:port`. */
  get address(): string {
    const a = this.server.address() as net.AddressInfo;
    return net.isIPv6(a.address) ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Serve a request that did not come over this server's socket: the L7mpController and
   * Prometheus clusters of the workers forward their sessions' requests here. Same routes, same
   * bearer token, same answers. Without a token (and not `insecure`), only a loopback
   * `call.peer` is served; anyone else gets 403 `L7_ERR_ADMIN_INSECURE`.
   */
  async request(call: AdminCall): Promise<AdminAnswer> {
    const body = Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength);
    const raw: RawRequest = {
      method: call.method,
      url: call.url,
      headers: call.headers as http.IncomingHttpHeaders,
      body: () => (body.length > MAX_BODY ? Promise.reject(tooLarge(body.length)) : Promise.resolve(body)),
      discard() {},
      peer: call.peer ?? '',
    };
    const { status, headers, body: out } = await this.answer(raw);
    return { status, statusMessage: http.STATUS_CODES[status] ?? '', headers, body: typeof out === 'string' ? Buffer.from(out) : out };
  }

  private authorized(req: RawRequest): boolean {
    const token = this.opts.token;
    if (token === undefined || token === '') return true;
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(h);
    if (m === null) return false;
    const a = Buffer.from(m[1] as string);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  private match(method: string, path: string): { route: Route; params: Record<string, string> } | 'method' | null {
    const segs = path.split('/').filter((s) => s !== '');
    let wrongMethod = false;
    for (const r of this.routes) {
      if (r.segments.length !== segs.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segs.length && ok; i++) {
        const p = r.segments[i] as string;
        const s = segs[i] as string;
        if (p.startsWith('{') && p.endsWith('}')) {
          try {
            params[p.slice(1, -1)] = decodeURIComponent(s);
          } catch {
            ok = false;
          }
        } else ok = p === s;
      }
      if (!ok) continue;
      if (r.method !== method) {
        wrongMethod = true;
        continue;
      }
      return { route: r, params };
    }
    return wrongMethod ? 'method' : null;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw: RawRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      body: () => readBody(req),
      discard: () => req.resume(),
    };
    const { status, headers, body } = await this.answer(raw);
    // A body left unread (413) is not drained: the connection goes after the answer.
    if (status === 413) {
      headers.connection = 'close';
      res.shouldKeepAlive = false;
    }
    res.writeHead(status, headers);
    res.end(body);
  }

  /** Route, run the handler, and render its reply (or its error, l7mp's shape). Never throws. */
  private async answer(req: RawRequest): Promise<{ status: number; headers: Record<string, string>; body: string | Buffer }> {
    let reply: Reply;
    try {
      reply = await this.dispatch(req);
    } catch (e) {
      const err = e instanceof L7Error ? e : new L7Error(ErrorCode.Internal, (e as Error).message ?? String(e), { cause: e });
      const status = err.status >= 400 && err.status < 600 && err.status !== 404 ? err.status : err.code === ErrorCode.Internal ? 500 : 400;
      reply = errorReply(status, statusMessage(status), err.message);
      if (status >= 500) this.opts.log.error({ err: err.message, path: req.url }, 'admin request failed');
    }
    const status = reply.status ?? 200;
    let body: string | Buffer;
    const headers = { ...reply.headers };
    if (reply.body === undefined) body = '';
    else if (typeof reply.body === 'string' || Buffer.isBuffer(reply.body)) body = reply.body;
    else {
      body = JSON.stringify(reply.body, null, 2);
      headers['content-type'] ??= 'application/json';
    }
    headers['content-length'] = String(Buffer.byteLength(body));
    return { status, headers, body };
  }

  private async dispatch(req: RawRequest): Promise<Reply> {
    const o = this.opts;
    if (req.peer !== undefined && (o.token === undefined || o.token === '') && o.insecure !== true && !isLoopback(req.peer)) {
      // L7_ERR_ADMIN_INSECURE's answer (l7mp's shape, with the reason phrase of 403).
      req.discard();
      const who = req.peer === '' ? 'a peer without an IP address' : req.peer;
      return errorReply(403, 'Forbidden', `the admin API is served without a token to loopback peers only, not to ${who}: set --admin-token (or --admin-insecure)`);
    }
    if (!this.authorized(req)) {
      req.discard();
      return { ...errorReply(401, 'Unauthorized', 'Missing or invalid bearer token'), headers: { 'content-type': 'application/json', 'www-authenticate': 'Bearer' } };
    }
    const url = new URL(req.url, 'http://admin');
    const m = this.match(req.method, url.pathname);
    if (m === null || m === 'method') {
      req.discard();
      return errorReply(404, 'Not Found', 'Unknown API operation');
    }
    const body = await req.body();
    return m.route.handler({ method: req.method, path: url.pathname, params: m.params, query: url.searchParams, headers: req.headers, body });
  }
}

/** The whole body, at most {@link MAX_BODY} bytes. @throws L7Error (413) when larger. */
function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const announced = Number(req.headers['content-length'] ?? 0);
  if (announced > MAX_BODY) return Promise.reject(tooLarge(announced));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > MAX_BODY) {
        // Stop buffering; the answer (413) closes the connection.
        req.removeListener('data', onData);
        chunks.length = 0;
        req.pause();
        reject(tooLarge(`more than ${MAX_BODY}`));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** `--admin [HOST:]PORT` → host and port (host defaults to 127.0.0.1). @throws L7Error naming the flag and value. */
export function parseAdminAddress(v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v) ?? /^()()(\d+)$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new L7Error(ErrorCode.InvalidArgument, `--admin: must be [HOST:]PORT with PORT 0..65535, got "${v}"`);
  }
  const host = m[1] || m[2] || '127.0.0.1';
  return { host, port };
}
