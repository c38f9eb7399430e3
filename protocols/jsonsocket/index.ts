/** JSONSocket v1 (compat reference §5): a JSON header handshake over UDP, TCP, Unix sockets or WebSocket. */
import type { ProtocolModule } from '../types.ts';
import { JsonSocketClusterSpec, JsonSocketListenerSpec } from './config.ts';
import { JsonSocketListener } from './listener.ts';
import { JsonSocketCluster } from './cluster.ts';
import { listenerTransports, transportOf } from './transports.ts';

const transportListener = (spec: JsonSocketListenerSpec) => {
  const t = transportOf(spec);
  return { t, side: listenerTransports.get(t.protocol)?.listener };
};

export const jsonsocket: ProtocolModule = {
  name: 'JSONSocket',
  // Per connection it is the transport's kind; datagram as l7mp lists it (UDP, WebSocket).
  kind: 'datagram',
  listener: {
    schema: JsonSocketListenerSpec,
    placement: (spec: JsonSocketListenerSpec) => {
      const { t, side } = transportListener(spec);
      return side?.placement(t) ?? 'single';
    },
    idleTimeoutMs: (spec: JsonSocketListenerSpec) => {
      const { t, side } = transportListener(spec);
      return side?.idleTimeoutMs?.(t) ?? 0;
    },
    binds: (spec: JsonSocketListenerSpec) => {
      const { t, side } = transportListener(spec);
      return side?.binds?.(t) ?? [];
    },
    drainWhenQuiet: (spec: JsonSocketListenerSpec) => {
      const { t, side } = transportListener(spec);
      return side?.drainWhenQuiet?.(t) ?? false;
    },
    create: (cfg, ctx) => new JsonSocketListener(cfg, ctx),
  },
  cluster: { schema: JsonSocketClusterSpec, virtual: false, create: (cfg, ctx) => new JsonSocketCluster(cfg, ctx) },
};
