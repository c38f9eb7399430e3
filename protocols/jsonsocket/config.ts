/**
 * JSONSocket listener and cluster specs (docs/l7mp-compat.md §3.2, §3.3, §5). The transport is
 * another protocol's listener or cluster spec; `transport_spec` is l7mp's alias of `transport`.
 * The transports are given by the registry ({@link JsonSocketTransports}): JSONSocket imports no
 * other protocol.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { ProtocolModule } from '../types.ts';

/** The protocols JSONSocket runs over, by side, in the order their specs are tried. */
export interface JsonSocketTransports {
  /** Listener transports (l7mp: UDP, TCP, UnixDomainSocket, WebSocket). */
  readonly listener: readonly ProtocolModule[];
  /** Cluster transports (l7mp: the listener ones plus the virtual Stdio, Echo and Discard). */
  readonly cluster: readonly ProtocolModule[];
}

/** `A, B or C`. */
function names(mods: readonly ProtocolModule[]): string {
  const n = mods.map((m) => m.name);
  return n.length < 2 ? n.join('') : `${n.slice(0, -1).join(', ')} or ${n[n.length - 1]}`;
}

/** A virtual transport's spec (no fields but the protocol). */
const VirtualTransport = (name: string): TSchema => Type.Object({ protocol: Type.Literal(name) }, { description: `${name} transport (virtual).` });

/** The transport spec of a JSONSocket spec (`transport`, or l7mp's alias `transport_spec`). */
export function transportOf(spec: { transport?: unknown; transport_spec?: unknown }): { protocol: string } & Record<string, unknown> {
  return (spec.transport ?? spec.transport_spec) as { protocol: string } & Record<string, unknown>;
}

/** The listener and cluster spec schemas of JSONSocket over `t`. */
export function jsonSocketSpecs(t: JsonSocketTransports) {
  const listenerSide = t.listener.filter((m) => m.listener !== undefined);
  const clusterSide = t.cluster.filter((m) => m.cluster !== undefined);
  const ListenerTransport = Type.Union(
    listenerSide.map((m) => (m.listener as { schema: TSchema }).schema),
    { description: `The transport listener spec: ${names(listenerSide)}.`, expect: `a ${names(listenerSide)} listener spec` },
  );
  const ClusterTransport = Type.Union(
    clusterSide.map((m) => (m.cluster?.virtual === true ? VirtualTransport(m.name) : (m.cluster as { schema: TSchema }).schema)),
    { description: `The transport cluster spec: ${names(clusterSide)}.`, expect: `a ${names(clusterSide)} cluster spec` },
  );
  return { listener: listenerSpec(ListenerTransport), cluster: clusterSpec(ClusterTransport) };
}

/** Either `transport` or `transport_spec` must be given. */
const oneTransport = { anyOf: [{ required: ['transport'] }, { required: ['transport_spec'] }] };

const listenerSpec = (ListenerTransport: TSchema) =>
  Type.Object(
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

export type JsonSocketListenerSpec = Static<ReturnType<typeof listenerSpec>>;

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

const clusterSpec = (ClusterTransport: TSchema) =>
  Type.Object(
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

export type JsonSocketClusterSpec = Static<ReturnType<typeof clusterSpec>>;
