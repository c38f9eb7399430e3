/**
 * JSONSocket listener and cluster specs (compat reference §3.2, §3.3, §5). The transport is
 * another protocol's listener or cluster spec; `transport_spec` is l7mp's alias of `transport`.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { UdpClusterSpec, UdpListenerSpec } from '../udp/config.ts';
import { TcpClusterSpec, TcpListenerSpec } from '../tcp/config.ts';
import { UdsClusterSpec, UdsListenerSpec } from '../uds/config.ts';
import { WsClusterSpec, WsListenerSpec } from '../ws/config.ts';

const ListenerTransport = Type.Union([UdpListenerSpec, TcpListenerSpec, UdsListenerSpec, WsListenerSpec], {
  description: 'The transport listener spec: UDP, TCP, UnixDomainSocket or WebSocket.',
  expect: 'a UDP, TCP, UnixDomainSocket or WebSocket listener spec',
});

/** Either `transport` or `transport_spec` must be given. */
const oneTransport = { anyOf: [{ required: ['transport'] }, { required: ['transport_spec'] }] };

export const JsonSocketListenerSpec = Type.Object(
  {
    protocol: Type.Literal('JSONSocket'),
    transport: Type.Optional(ListenerTransport),
    transport_spec: Type.Optional(ListenerTransport),
    options: Type.Optional(
      Type.Object(
        {
          header_timeout: Type.Optional(
            Type.Number({
              minimum: 0,
              default: 10,
              description: 'Seconds a transport connection may take to send its JSONSocket header before it is closed; 0 waits forever (as l7mp). Unit: s.',
              expect: 'a number of seconds >= 0',
            }),
          ),
        },
        { description: 'JSONSocket listener options.' },
      ),
    ),
  },
  {
    ...oneTransport,
    description:
      'JSONSocket listener: each transport session first sends a JSON header with "JSONSocketVersion": 1; the header is stored at /JSONSocket in the session metadata, and the reply is 200 once the route is connected, else l7mp\'s error status (400, 404, 505...).',
  },
);
export type JsonSocketListenerSpec = Static<typeof JsonSocketListenerSpec>;

/** A virtual transport's spec (no fields but the protocol). */
const VirtualTransport = (name: string): TSchema => Type.Object({ protocol: Type.Literal(name) }, { description: `${name} transport (virtual).` });

const ClusterTransport = Type.Union([UdpClusterSpec, TcpClusterSpec, UdsClusterSpec, WsClusterSpec, VirtualTransport('Stdio'), VirtualTransport('Echo'), VirtualTransport('Discard')], {
  description: 'The transport cluster spec: UDP, TCP, UnixDomainSocket, WebSocket, Stdio, Echo or Discard.',
  expect: 'a UDP, TCP, UnixDomainSocket, WebSocket, Stdio, Echo or Discard cluster spec',
});

const HeaderOp = Type.Union(
  [
    Type.Object(
      {
        path: Type.Union([
          Type.String({ description: 'Metadata path to copy to the whole header (`/`).' }),
          Type.Object({
            from: Type.String({ description: 'Metadata path to copy from.' }),
            to: Type.Optional(Type.String({ default: '/', description: 'Header path to copy to; `/` replaces the header built so far.' })),
          }),
        ]),
      },
      { description: 'Copy a session metadata value into the header.' },
    ),
    Type.Object(
      { set: Type.Object({ key: Type.String({ description: 'Header path.' }), value: Type.Unknown({ description: 'Constant value.' }) }) },
      { description: 'Set a constant in the header.' },
    ),
  ],
  { expect: 'a {path: ...} or {set: {key, value}} header element' },
);

export const JsonSocketClusterSpec = Type.Object(
  {
    protocol: Type.Literal('JSONSocket'),
    transport: Type.Optional(ClusterTransport),
    transport_spec: Type.Optional(ClusterTransport),
    header: Type.Optional(Type.Array(HeaderOp, { description: 'How the request header is built from the session metadata, in order; JSONSocketVersion: 1 is always added.' })),
  },
  {
    ...oneTransport,
    description:
      'JSONSocket cluster: sends a JSON header built from `header` as the first message, and waits (up to the route\'s retry.timeout) for a reply with JSONSocketStatus 2xx before the stage is connected.',
  },
);
export type JsonSocketClusterSpec = Static<typeof JsonSocketClusterSpec>;
