/**
 * UnixDomainSocket listener and cluster specs (docs/l7mp-compat.md §3.2, §3.3). l7mp-ts adds
 * `type: dgram` (SOCK_DGRAM, message boundaries kept; l7mp listed UNIX/dgram as a TODO) and, for
 * datagram listeners, an idle timeout.
 */
import { Type, type Static } from '@sinclair/typebox';
import { SocketPath } from '../schema.ts';

const SocketType = Type.Optional(
  Type.Union([Type.Literal('stream'), Type.Literal('dgram')], {
    default: 'stream',
    description: 'stream: SOCK_STREAM, a byte stream per connection (l7mp). dgram: SOCK_DGRAM, one message per datagram, a session per sending socket path (new in l7mp-ts).',
    expect: '"stream" or "dgram"',
  }),
);

export const UdsListenerSpec = Type.Object(
  {
    protocol: Type.Literal('UnixDomainSocket'),
    filename: SocketPath('Path of the listening socket. A stale socket file nobody listens on is replaced; the file is removed when the listener closes.'),
    type: SocketType,
    options: Type.Optional(
      Type.Object(
        {
          idle_timeout: Type.Optional(
            Type.Number({
              minimum: 0,
              description:
                'Seconds without a read on either side of a session (a datagram, or a read of the byte stream) after which it ends with L7_ERR_SESSION_IDLE; 0 disables. Default 120 for type dgram (as UDP), 600 for type stream (nginx proxy_timeout). Unit: s.',
              expect: 'a number of seconds >= 0',
            }),
          ),
        },
        { description: 'UnixDomainSocket listener options.' },
      ),
    ),
  },
  {
    description:
      'Unix socket listener on one worker: one session per connection (stream, a byte stream) or per sending socket path (dgram, datagrams; senders that did not bind a path share one session that cannot be answered).',
  },
);
export type UdsListenerSpec = Static<typeof UdsListenerSpec>;

export const UdsClusterSpec = Type.Object(
  { protocol: Type.Literal('UnixDomainSocket'), type: SocketType },
  {
    description:
      'Unix socket cluster: each endpoint `address` is a socket path. dgram: each session stage gets a socket bound to a path of its own in the temp directory (removed when it closes), so the endpoint can answer it.',
  },
);
export type UdsClusterSpec = Static<typeof UdsClusterSpec>;

/** Default idle timeout of Unix datagram sessions, s (as UDP). */
export const DEFAULT_UDS_DGRAM_IDLE_TIMEOUT_S = 120;
