/** HTTP listener and cluster specs (docs/l7mp-compat.md §3.2; the cluster is new in l7mp-ts). */
import { Type, type Static } from '@sinclair/typebox';
import { Address, Bind, Port, StreamIdleTimeout } from '../schema.ts';
import { Deadline, HTTP_LIMIT_DEFAULTS as D, Size, Timeout } from '../core/http-limits.ts';

export const HttpListenerSpec = Type.Object(
  {
    protocol: Type.Literal('HTTP'),
    port: Port('TCP port to listen on.'),
    address: Type.Optional(Address('Bind address. Default `::` (dual stack, as l7mp: IPv4 peers show as ::ffff:a.b.c.d).', '::')),
    path: Type.Optional(Type.String({ description: 'Accepted for l7mp compatibility and ignored, as l7mp did: match `/HTTP/url/path` in a rule instead.' })),
    options: Type.Optional(
      Type.Object(
        {
          header_timeout: Type.Optional(
            Deadline(
              'Total time a connection has, from accept or from the end of its previous request, to send a complete request head (HAProxy timeout http-request, nginx client_header_timeout: a deadline, not an inactivity timer, so one byte at a time does not extend it). Over it: 408 and close. At most request_timeout.',
              D.header_timeout,
            ),
          ),
          request_timeout: Type.Optional(
            Timeout('Total time to receive a whole request, body included (Envoy request_timeout, Node requestTimeout). Over it: 408 if no response has started, and close.', D.request_timeout),
          ),
          keepalive_timeout: Type.Optional(Deadline('Idle time allowed between two requests on a kept-alive connection before it is closed (nginx keepalive_timeout).', D.keepalive_timeout)),
          max_header_size: Type.Optional(Size('Largest request head (request line and headers). Over it: 431 and close.', D.max_header_size, 1024)),
          max_body_size: Type.Optional(
            Size(
              'Largest request body, counted as it streams (chunked bodies too; nginx client_max_body_size). Over it: 413 and close if no response has started, else the connection is reset; the session ends with L7_ERR_DOWNSTREAM_LIMIT. 0 disables it.',
              D.max_body_size,
              0,
            ),
          ),
          idle_timeout: Type.Optional(StreamIdleTimeout()),
        },
        { description: 'HTTP listener limits and timeouts (every one finite by default).' },
      ),
    ),
  },
  { description: 'HTTP/1.1 listener: one session per request; the request body is the session\'s downstream byte stream and what comes back is the response body.' },
);
export type HttpListenerSpec = Static<typeof HttpListenerSpec>;

export const HttpClusterSpec = Type.Object(
  {
    protocol: Type.Literal('HTTP'),
    port: Port('Upstream TCP port of every endpoint.'),
    path: Type.Optional(
      Type.String({ minLength: 1, pattern: '^/', default: '/', description: 'Request path when the session did not come from an HTTP listener (else the downstream request\'s path is kept).', expect: 'a path starting with /' }),
    ),
    method: Type.Optional(
      Type.String({ minLength: 1, pattern: '^[A-Z]+$', default: 'POST', description: 'Request method when the session did not come from an HTTP listener (else the downstream request\'s method is kept).', expect: 'an upper-case HTTP method' }),
    ),
    bind: Type.Optional(Bind),
  },
  { description: 'HTTP/1.1 cluster (new in l7mp-ts; l7mp listed one but had none, bug B17): each session stage is one request; the session\'s bytes are its body and the response body comes back.' },
);
export type HttpClusterSpec = Static<typeof HttpClusterSpec>;
