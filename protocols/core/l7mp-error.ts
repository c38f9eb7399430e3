/**
 * l7mp's error answer (docs/l7mp-compat.md §2.3), `{status, message, content}`: the body of an HTTP
 * listener's failed session and of every admin API error, wherever it is served (the admin
 * server, the L7mpController and Prometheus clusters).
 */
import http from 'node:http';
import type { AdminAnswer } from '../types.ts';

/** l7mp's error body: `{status, message, content}` 4-space indented (docs/l7mp-compat.md §2.3). */
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

/** An admin answer carrying l7mp's error body (`{status, message, content}`, §2.3). */
export function l7mpErrorAnswer(status: number, message: string, content: unknown): AdminAnswer {
  return { status, statusMessage: message, headers: { 'content-type': 'application/json' }, body: Buffer.from(l7mpErrorBody(status, message, content)) };
}
