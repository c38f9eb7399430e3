/** HTTP listener and cluster specs (l7mp compat reference §3.2; the cluster is new in l7mp-ts). */
import { Type, type Static } from '@sinclair/typebox';
import { Address, Bind, Port } from '../schema.ts';

export const HttpListenerSpec = Type.Object(
  {
    protocol: Type.Literal('HTTP'),
    port: Port('TCP port to listen on.'),
    address: Type.Optional(Address('Bind address. Default `::` (dual stack, as l7mp: IPv4 peers show as ::ffff:a.b.c.d).', '::')),
    path: Type.Optional(Type.String({ description: 'Accepted for l7mp compatibility and ignored, as l7mp did: match `/HTTP/url/path` in a rule instead.' })),
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
