/** WebSocket listener and cluster specs (docs/l7mp-compat.md §3.2, §3.3). */
import { Type, type Static } from '@sinclair/typebox';
import { Address, Bind, Port, StreamIdleTimeout } from '../schema.ts';
import { Deadline, HTTP_LIMIT_DEFAULTS, Size } from '../core/http-limits.ts';

/** Default `options.handshake_timeout` of a WebSocket listener. Unit: s. */
export const WS_HANDSHAKE_TIMEOUT_S = 10;

const MaxPayload = Type.Optional(
  Type.Integer({
    minimum: 1,
    default: 1048576,
    description: 'Largest message accepted, bytes; a larger one closes the connection with 1009. Unit: bytes.',
    expect: 'an integer number of bytes >= 1',
  }),
);

export const WsListenerSpec = Type.Object(
  {
    protocol: Type.Literal('WebSocket'),
    port: Port('TCP port of the WebSocket server.'),
    address: Type.Optional(Address('Bind address. Default `::` (dual stack, as l7mp).', '::')),
    path: Type.Optional(Type.String({ description: 'Accepted for l7mp compatibility; ignored (every path is accepted, match on /HTTP/url/path instead).' })),
    max_payload: MaxPayload,
    options: Type.Optional(
      Type.Object(
        {
          handshake_timeout: Type.Optional(
            Deadline(
              'Total time from TCP accept to a complete upgrade request (the handshake is answered as soon as its head is in): a deadline, not an inactivity timer. Over it: 408 and close (counted handshake_timeout).',
              WS_HANDSHAKE_TIMEOUT_S,
            ),
          ),
          max_header_size: Type.Optional(Size('Largest upgrade request head. Over it: 431 and close.', HTTP_LIMIT_DEFAULTS.max_header_size, 1024)),
          idle_timeout: Type.Optional(StreamIdleTimeout()),
        },
        { description: 'WebSocket listener limits and timeouts.' },
      ),
    ),
  },
  { description: 'WebSocket listener: one session per connection; each message is one datagram.' },
);
export type WsListenerSpec = Static<typeof WsListenerSpec>;

export const WsClusterSpec = Type.Object(
  {
    protocol: Type.Literal('WebSocket'),
    port: Port('Upstream port of every endpoint.'),
    bind: Type.Optional(Bind),
    max_payload: MaxPayload,
    target_from_request: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Connect to the host and port of the downstream request\'s absolute-form target (`GET ws://host:port/path`, /HTTP/url/host and /port), as l7mp did, instead of the picked endpoint and the cluster port. Off by default: it lets any downstream peer choose where the proxy connects (SSRF, docs/threat-model.md).',
      }),
    ),
  },
  {
    description:
      'WebSocket cluster: one connection per session stage to ws://<endpoint>:<port><path>, where the path and headers come from the session\'s /HTTP metadata when it has any.',
  },
);
export type WsClusterSpec = Static<typeof WsClusterSpec>;

export const DEFAULT_MAX_PAYLOAD = 1048576;
