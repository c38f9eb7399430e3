/** WebSocket (`ws`): datagram listener (every worker, SO_REUSEPORT) and cluster. */
import type { ProtocolModule } from '../types.ts';
import { WsClusterSpec, WsListenerSpec } from './config.ts';
import { WsListener } from './listener.ts';
import { WsCluster } from './cluster.ts';
import { DEFAULT_STREAM_IDLE_TIMEOUT_S } from '../schema.ts';

export const websocket: ProtocolModule = {
  name: 'WebSocket',
  kind: 'datagram',
  listener: {
    schema: WsListenerSpec,
    placement: () => 'shared',
    create: (cfg, ctx) => new WsListener(cfg, ctx),
    binds: (spec: WsListenerSpec) => [{ transport: 'tcp', address: spec.address ?? '::', port: spec.port }],
    idleTimeoutMs: (spec: WsListenerSpec) => (spec.options?.idle_timeout ?? DEFAULT_STREAM_IDLE_TIMEOUT_S) * 1000,
  },
  cluster: { schema: WsClusterSpec, virtual: false, create: (cfg, ctx) => new WsCluster(cfg, ctx) },
};
