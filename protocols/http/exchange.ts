/**
 * The HTTP exchange a session came from, visible to its upstream stages.
 *
 * An HTTP listener answers every request with a status line and headers before the body. The
 * session itself only carries bytes, so an upstream that knows better than l7mp's implicit
 * `200` (the HTTP cluster relaying the upstream's status, the L7mpController answering 400) sets
 * the response head here, before it delivers the first byte of the body. The exchange travels in
 * the session metadata under a symbol key: JSON predicates, dumps and the actor tree never see it,
 * and it never leaves the worker.
 */
import http from 'node:http';
import type { AdminAnswer, Metadata } from '../types.ts';

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

/** l7mp's error body: `{status, message, content}` 4-space indented (compat reference §2.3). */
export function l7mpErrorBody(status: number, message: string, content: unknown): string {
  return JSON.stringify({ status, message, content }, null, 4);
}

/**
 * The reason phrase of an error status in l7mp's error body: l7mp's own for the statuses it used
 * (404, 401, 422, 5xx as 'General Server Error', every other 4xx as 'Bad Request'), the standard
 * phrase for the ones it never sent (403 Forbidden, 408, 413, 431).
 */
export function l7mpStatusMessage(status: number): string {
  if (status === 404) return 'Not Found';
  if (status === 401) return 'Unauthorized';
  if (status === 422) return 'Unprocessable Entity';
  if (status >= 500) return 'General Server Error';
  if (status === 403 || status === 408 || status === 413 || status === 431) return http.STATUS_CODES[status] as string;
  return 'Bad Request';
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

/**
 * l7mp's `HTTP` session metadata (compat reference §3.1), as HTTP and WebSocket listeners set it:
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

/** An admin answer carrying l7mp's error body (`{status, message, content}`, §2.3). */
export function l7mpErrorAnswer(status: number, message: string, content: unknown): AdminAnswer {
  return { status, statusMessage: message, headers: { 'content-type': 'application/json' }, body: Buffer.from(l7mpErrorBody(status, message, content)) };
}
