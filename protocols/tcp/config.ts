/** TCP listener and cluster specs (docs/l7mp-compat.md §3.2, §3.3), plus a bind address. */
import { Type, type Static } from '@sinclair/typebox';
import { Address, Bind, Port, StreamIdleTimeout } from '../schema.ts';

export const TcpListenerSpec = Type.Object(
  {
    protocol: Type.Literal('TCP'),
    port: Port('TCP port to listen on.'),
    address: Type.Optional(Address('Bind address. Default `::` (dual stack, as l7mp: IPv4 peers show as ::ffff:a.b.c.d).', '::')),
    options: Type.Optional(Type.Object({ idle_timeout: Type.Optional(StreamIdleTimeout()) }, { description: 'TCP listener options.' })),
  },
  { description: 'TCP listener: one session per accepted connection (byte stream).' },
);
export type TcpListenerSpec = Static<typeof TcpListenerSpec>;

export const TcpClusterSpec = Type.Object(
  {
    protocol: Type.Literal('TCP'),
    port: Port('Upstream TCP port of every endpoint.'),
    bind: Type.Optional(Bind),
  },
  { description: 'TCP cluster: one connection per session stage, TCP_NODELAY on.' },
);
export type TcpClusterSpec = Static<typeof TcpClusterSpec>;
