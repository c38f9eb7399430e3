/**
 * Timeouts and size limits of the HTTP/1.1 servers behind the HTTP and WebSocket listeners
 * (issue 12 item 3; docs/threat-model.md). Node's server does the work (its header deadline
 * is the CVE-2018-12122 slowloris fix); this module gives it finite defaults in the style of
 * nginx and HAProxy, and counts what each limit closes:
 *
 * | limit | default | on violation | listener counter |
 * |---|---|---|---|
 * | header deadline (HAProxy `timeout http-request`, nginx `client_header_timeout`: total, not inactivity) | 10 s | 408, close | `header_timeout` (WebSocket: `handshake_timeout`) |
 * | whole-request deadline (Envoy `request_timeout`, Node `requestTimeout`) | 300 s | 408 (if no response started), close | `request_timeout` |
 * | keep-alive idle (nginx `keepalive_timeout`; Node adds its 1 s `keepAliveTimeoutBuffer`) | 5 s | close | `keepalive_timeout` |
 * | request head size (Node `maxHeaderSize`, nginx `large_client_header_buffers`) | 16 KiB | 431, close | `header_too_large` |
 * | request body size (nginx `client_max_body_size`) | 1 MiB | 413, close | `body_too_large` |
 *
 * A deadline is checked every `min(header, request) / 4` (50 ms..1 s), so a connection is closed at
 * most that long after it. Any other parse error is a 400 and a close (`malformed`); a peer that
 * reset is closed silently.
 */
import type http from 'node:http';
import type net from 'node:net';
import { Type } from '@sinclair/typebox';
import type { ListenerContext, ProtocolEvents } from '../types.ts';

/** Defaults of the listener options below. Units: s for timeouts, bytes for sizes. */
export const HTTP_LIMIT_DEFAULTS = {
  header_timeout: 10,
  request_timeout: 300,
  keepalive_timeout: 5,
  max_header_size: 16384,
  max_body_size: 1048576,
} as const;

/** Schema of a deadline in seconds that must be finite and positive. */
export const Deadline = (description: string, dflt: number) =>
  Type.Number({ exclusiveMinimum: 0, default: dflt, description: `${description} Unit: s.`, expect: 'a number of seconds > 0' });

/** Schema of a timeout in seconds where 0 disables it. */
export const Timeout = (description: string, dflt: number) =>
  Type.Number({ minimum: 0, default: dflt, description: `${description} 0 disables it. Unit: s.`, expect: 'a number of seconds >= 0' });

/** Schema of a size in bytes. */
export const Size = (description: string, dflt: number, min: number) =>
  Type.Integer({ minimum: min, default: dflt, description: `${description} Unit: bytes.`, expect: `an integer number of bytes >= ${min}` });

/** The server-side deadlines and sizes, in Node's units. */
export interface HttpServerLimits {
  /** Total time from accept (or the end of the previous request) to a complete request head. Unit: ms. */
  readonly headersTimeoutMs: number;
  /** Total time to receive the whole request, body included; 0 = none. Unit: ms. */
  readonly requestTimeoutMs: number;
  /** Idle time between requests on a kept-alive connection. Unit: ms. */
  readonly keepAliveTimeoutMs: number;
  /** Largest request head. Unit: bytes. */
  readonly maxHeaderSize: number;
}

/**
 * Options for the `node:http` server constructor. The header deadline is capped by the request deadline (Node
 * refuses a larger one).
 */
export function serverOptions(l: HttpServerLimits): http.ServerOptions {
  const requestTimeout = l.requestTimeoutMs;
  const headersTimeout = requestTimeout > 0 ? Math.min(l.headersTimeoutMs, requestTimeout) : l.headersTimeoutMs;
  const shortest = requestTimeout > 0 ? Math.min(headersTimeout, requestTimeout) : headersTimeout;
  return {
    headersTimeout,
    requestTimeout,
    keepAliveTimeout: l.keepAliveTimeoutMs,
    maxHeaderSize: l.maxHeaderSize,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(shortest / 4))),
  };
}

/**
 * The listener counters an {@link HttpServerGuard} counts, but its header deadline's, whose name
 * each listener gives (`header_timeout`, `handshake_timeout`).
 */
export const HTTP_GUARD_EVENTS = {
  request_timeout: { drop: false, help: 'Connections closed (408) because their request was not in within request_timeout.' },
  keepalive_timeout: { drop: false, help: 'Kept-alive connections closed after keepalive_timeout without a request.' },
  header_too_large: { drop: true, help: 'Requests answered 431: their head was larger than max_header_size.' },
  malformed: { drop: true, help: 'Requests answered 400: the proxy could not parse or serve them.' },
} as const satisfies ProtocolEvents;

const reply = (status: string): string => `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`;
const REQUEST_TIMEOUT = reply('408 Request Timeout');
const HEADER_TOO_LARGE = reply('431 Request Header Fields Too Large');
const BAD_REQUEST = reply('400 Bad Request');

/**
 * Counts and answers what Node's HTTP server rejects before a request reaches the listener
 * (`clientError`), and closes kept-alive connections that idle past the keep-alive timeout.
 * One per server. Never throws.
 */
/** How long a connection closed for a client error may linger after its answer, ms. */
const LINGER_MS = 1000;

export class HttpServerGuard {
  private readonly ctx: ListenerContext;
  private readonly headerEvent: string;
  /** Sockets reading a request body (its head is in). */
  private readonly inBody = new WeakSet<net.Socket>();
  /** The response under way on a socket (its status line may not be out yet). */
  private readonly responses = new WeakMap<net.Socket, http.ServerResponse>();

  private readonly listener: string;

  /**
   * @param headerEvent the counter of a header deadline (`header_timeout`, `handshake_timeout`)
   * @param listener the listener's name, for the (rate-limited) log of malformed requests
   */
  constructor(server: http.Server, ctx: ListenerContext, headerEvent: string, listener = '') {
    this.ctx = ctx;
    this.headerEvent = headerEvent;
    this.listener = listener;
    server.on('clientError', (err: NodeJS.ErrnoException, sock: net.Socket) => this.onClientError(err, sock));
    // Only the keep-alive timer sets a socket timeout (the server's `timeout` is 0).
    server.on('timeout', (sock: net.Socket) => {
      ctx.count('keepalive_timeout');
      sock.destroy();
    });
  }

  /** A request's head is in: a deadline hit from now on is the request deadline, until it ends. */
  track(req: http.IncomingMessage, res: http.ServerResponse): void {
    const sock = req.socket;
    this.responses.set(sock, res);
    res.once('close', () => {
      if (this.responses.get(sock) === res) this.responses.delete(sock);
    });
    if (req.complete) return;
    this.inBody.add(sock);
    const done = (): void => {
      this.inBody.delete(sock);
    };
    req.once('end', done);
    req.once('close', done);
  }

  private onClientError(err: NodeJS.ErrnoException, sock: net.Socket): void {
    if (err.code === 'ECONNRESET' || !sock.writable) {
      sock.destroy();
      return;
    }
    let response = BAD_REQUEST;
    let event = 'malformed';
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      response = REQUEST_TIMEOUT;
      event = this.inBody.has(sock) ? 'request_timeout' : this.headerEvent;
    } else if (err.code === 'HPE_HEADER_OVERFLOW' || err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') {
      response = HEADER_TOO_LARGE;
      event = 'header_too_large';
    }
    this.ctx.count(event);
    if (event === 'malformed') this.ctx.rateLog.warn(`http-client-error:${this.listener}`, { listener: this.listener, code: err.code, err: err.message }, 'malformed HTTP request');
    // As Node's default handler: a status line only if no response has started on the socket.
    // Then a lingering close (nginx lingering_close): FIN after the answer, and the socket is
    // destroyed only LINGER_MS later. Destroying it at once with bytes of the peer unread (a
    // slowloris client is still sending) makes the kernel answer with a RST, which can discard
    // the answer at the peer before it reads it.
    if (this.responses.get(sock)?.headersSent !== true) sock.end(response);
    else sock.end();
    setTimeout(() => sock.destroy(), LINGER_MS).unref();
  }
}
