/**
 * HTTP/1.1 knowledge shared by the protocols whose sessions carry l7mp's `HTTP` metadata (the
 * HTTP and WebSocket listeners set it; the HTTP, WebSocket and admin clusters read it):
 * - reading a downstream request head into that metadata, guarded (the target and headers come
 *   from an untrusted peer, and Node's parser lets through targets that `new URL()` rejects:
 *   `GET http://[/ HTTP/1.1`, issue 12, once killed a worker). Nothing here throws; a head the
 *   proxy cannot read is a {@link rawErrorResponse} and a counted drop (`malformed`);
 * - the {@link HttpExchange} a session came from, visible to its upstream stages. An HTTP
 *   listener answers every request with a status line and headers before the body; the session
 *   itself only carries bytes, so an upstream that knows better than l7mp's implicit `200` (the
 *   HTTP cluster relaying its upstream's status, the L7mpController answering 400) sets the
 *   response head here before it delivers the first byte of the body. The exchange travels in the
 *   session metadata under a symbol key: JSON predicates, dumps and the actor tree never see it,
 *   and it never leaves the worker.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Metadata } from '../types.ts';

/**
 * l7mp's `HTTP` session metadata (docs/l7mp-compat.md §3.1), as HTTP and WebSocket listeners set it:
 * `url.path` is the path with the query string.
 */
export interface HttpMeta {
  version?: string;
  method?: string;
  url?: { url?: string; href?: string; protocol?: string; host?: string; port?: string | number; path?: string; query?: string };
  headers?: Record<string, string | string[] | undefined>;
}

/** The `HTTP` metadata of a session, if it came from an HTTP or WebSocket listener (or a rewrite set it). */
export function httpMeta(metadata: Metadata): HttpMeta | undefined {
  return metadata.HTTP as HttpMeta | undefined;
}

/** An absolute-form request target (RFC 9112 §3.2.2): a scheme, then `://`. */
const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * l7mp's `HTTP` metadata of a request (docs/l7mp-compat.md §3.1): `url.path` is the path plus query
 * string, `url.query` the query without `?`; `protocol`, `host` and `port` are empty for the
 * usual origin-form targets and filled for absolute-form ones (forward proxies). `headers` is a
 * copy of Node's parsed headers (lower-case names, own properties only).
 * @returns null when the target is absolute-form but not a URL (`http://[/`): the caller answers
 *   400. Never throws.
 */
export function httpMetadata(req: http.IncomingMessage): HttpMeta | null {
  const target = req.url ?? '/';
  let protocol = '';
  let host = '';
  let port = '';
  let path = target;
  if (ABSOLUTE_FORM.test(target)) {
    const u = URL.parse(target);
    if (u === null) return null;
    protocol = u.protocol;
    host = u.hostname;
    port = u.port;
    path = u.pathname + u.search;
  }
  const q = path.indexOf('?');
  return {
    version: req.httpVersion,
    method: req.method ?? 'GET',
    url: { url: target, href: target, protocol, host, port, path, query: q < 0 ? '' : path.slice(q + 1) },
    headers: { ...req.headers },
  };
}

/**
 * A complete HTTP/1.1 error response for a raw socket (a failed upgrade, a request head Node could
 * not parse): status line, `Connection: close`, a short text body.
 */
export function rawErrorResponse(status: number, reason: string): string {
  const body = `${reason}\n`;
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/**
 * Answer `status` on a raw socket, then destroy it. Writes only if nothing was written on the
 * socket yet (a keep-alive connection may be in the middle of a response). Never throws.
 */
export function rejectSocket(socket: Duplex, status: number, reason: string): void {
  const s = socket as Duplex & { bytesWritten?: number };
  if (s.writable && (s.bytesWritten ?? 0) === 0) s.write(rawErrorResponse(status, reason));
  s.destroy();
}

/** Status line and headers of an HTTP response. */
export interface ResponseHead {
  status: number;
  /** Reason phrase; Node's default for `status` when absent. */
  statusMessage?: string;
  headers: Record<string, string | string[]>;
}

/** The downstream side of an HTTP exchange. */
export interface HttpExchange {
  /**
   * Use this head for the response unless it has already been sent (then it is ignored). The
   * listener drops its hop-by-hop headers and its length when it writes it.
   */
  setResponseHead(head: ResponseHead): void;
}

/** Metadata key of the {@link HttpExchange} (a symbol: not part of l7mp's metadata schema). */
export const HTTP_EXCHANGE: unique symbol = Symbol.for('l7mp-ts.http.exchange');

/** The exchange a session's metadata carries, if the session came from an HTTP listener. */
export function httpExchange(metadata: Metadata): HttpExchange | undefined {
  return (metadata as { [HTTP_EXCHANGE]?: HttpExchange })[HTTP_EXCHANGE];
}

/**
 * Request headers that describe one hop only (RFC 9110 §7.6.1), dropped when a request or
 * response is relayed.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
