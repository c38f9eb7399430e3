/** WebSocket (`ws`): datagram listener (every worker, SO_REUSEPORT) and cluster. */
import type { ProtocolModule } from '../types.ts';
import { WsClusterSpec, WsListenerSpec } from './config.ts';
import { WsListener } from './listener.ts';
import { WsCluster } from './cluster.ts';
import { HTTP_LIMIT_DEFAULTS } from '../http/limits.ts';

export const websocket: ProtocolModule = {
  name: 'WebSocket',
  kind: 'datagram',
  listener: {
    schema: WsListenerSpec,
    placement: () => 'shared',
    create: (cfg, ctx) => new WsListener(cfg, ctx),
    binds: (spec: WsListenerSpec) => [{ transport: 'tcp', address: spec.address ?? '::', port: spec.port }],
    idleTimeoutMs: (spec: WsListenerSpec) => (spec.options?.idle_timeout ?? HTTP_LIMIT_DEFAULTS.idle_timeout) * 1000,
  },
  cluster: { schema: WsClusterSpec, virtual: false, create: (cfg, ctx) => new WsCluster(cfg, ctx) },
};
