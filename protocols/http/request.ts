/**
 * What HTTP and WebSocket listeners read from a downstream request head, guarded: the request
 * target and headers come from an untrusted peer, and Node's parser lets through targets that
 * `new URL()` rejects (`GET http://[/ HTTP/1.1`, issue 12: one such upgrade request killed a
 * worker). Nothing here throws; a head the proxy cannot read is a {@link rawErrorResponse} and a
 * counted drop (`malformed`, exported as `l7mp_listener_dropped_packets_total{reason="malformed"}`).
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { HttpMeta } from './exchange.ts';

/** An absolute-form request target (RFC 9112 §3.2.2): a scheme, then `://`. */
const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * l7mp's `HTTP` metadata of a request (compat reference §3.1): `url.path` is the path plus query
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
