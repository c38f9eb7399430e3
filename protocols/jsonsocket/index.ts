/**
 * JSONSocket v1 (docs/l7mp-compat.md §5): a JSON header handshake over another protocol (UDP, TCP,
 * Unix sockets, WebSocket...). The transports are given by the registry ({@link jsonSocketProtocol}),
 * so JSONSocket imports no other protocol.
 */
import type { ProtocolModule } from '../types.ts';
import { defineProtocol } from '../core/define.ts';
import { jsonSocketSpecs, transportOf, type JsonSocketListenerSpec, type JsonSocketTransports } from './config.ts';
import { JsonSocketListener } from './listener.ts';
import { JsonSocketCluster } from './cluster.ts';

export type { JsonSocketTransports } from './config.ts';

const byName = (mods: readonly ProtocolModule[]): ReadonlyMap<string, ProtocolModule> => new Map(mods.map((m) => [m.name, m]));

/** JSONSocket over the given transports, by `protocol` name. */
export function jsonSocketProtocol(transports: JsonSocketTransports): ProtocolModule {
  const specs = jsonSocketSpecs(transports);
  const listeners = byName(transports.listener);
  const clusters = byName(transports.cluster);
  const transportListener = (spec: JsonSocketListenerSpec) => {
    const t = transportOf(spec);
    return { t, side: listeners.get(t.protocol)?.listener };
  };
  return defineProtocol({
    name: 'JSONSocket',
    // Per connection it is the transport's kind; datagram as l7mp lists it (UDP, WebSocket).
    kind: 'datagram',
    listener: {
      schema: specs.listener,
      placement: (spec) => {
        const { t, side } = transportListener(spec);
        return side?.placement(t) ?? 'single';
      },
      idleTimeoutMs: (spec) => {
        const { t, side } = transportListener(spec);
        return side?.idleTimeoutMs?.(t) ?? 0;
      },
      binds: (spec) => {
        const { t, side } = transportListener(spec);
        return side?.binds?.(t) ?? [];
      },
      drainWhenQuiet: (spec) => {
        const { t, side } = transportListener(spec);
        return side?.drainWhenQuiet?.(t) ?? false;
      },
      create: (cfg, ctx) => new JsonSocketListener(cfg, ctx, listeners),
      // Its own, and those of the transport listener it runs (which counts through it).
      events: Object.assign(
        {},
        ...transports.listener.map((m) => m.listener?.events ?? {}),
        {
          malformed: { drop: true, help: 'Transport connections whose JSONSocket header was rejected (400, 505).' },
          header_timeout: { drop: false, help: 'Transport connections closed (408) because their JSONSocket header was not in within header_timeout.' },
        },
      ),
    },
    cluster: {
      schema: specs.cluster,
      virtual: false,
      create: (cfg, ctx) => new JsonSocketCluster(cfg, ctx, clusters),
      events: Object.assign({}, ...transports.cluster.map((m) => m.cluster?.events ?? {})),
    },
    // l7mp's k8s form writes the transport as a protocol-keyed spec too: {JSONSocket: {transport: {UDP: {...}}}}.
    crd: { nestedSpecs: ['transport'] },
  });
}
