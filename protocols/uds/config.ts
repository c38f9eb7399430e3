/** UnixDomainSocket (SOCK_STREAM) listener and cluster specs (l7mp compat reference §3.2, §3.3). */
import { Type, type Static } from '@sinclair/typebox';
import { SocketPath } from '../schema.ts';

export const UdsListenerSpec = Type.Object(
  {
    protocol: Type.Literal('UnixDomainSocket'),
    filename: SocketPath('Path of the listening socket. A stale socket file nobody listens on is replaced; the file is removed when the listener closes.'),
  },
  { description: 'Unix stream-socket listener: one session per connection (byte stream), on one worker.' },
);
export type UdsListenerSpec = Static<typeof UdsListenerSpec>;

export const UdsClusterSpec = Type.Object(
  { protocol: Type.Literal('UnixDomainSocket') },
  { description: 'Unix stream-socket cluster: each endpoint `address` is a socket path.' },
);
