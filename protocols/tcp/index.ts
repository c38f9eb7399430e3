/** TCP: byte-stream listener (every worker, SO_REUSEPORT) and cluster. */
import type { ProtocolModule } from '../types.ts';
import { TcpClusterSpec, TcpListenerSpec } from './config.ts';
import { TcpListener } from './listener.ts';
import { TcpCluster } from './cluster.ts';
import { DEFAULT_STREAM_IDLE_TIMEOUT_S } from '../schema.ts';

export const tcp: ProtocolModule = {
  name: 'TCP',
  kind: 'byte',
  listener: {
    schema: TcpListenerSpec,
    placement: () => 'shared',
    create: (cfg, ctx) => new TcpListener(cfg, ctx),
    binds: (spec: TcpListenerSpec) => [{ transport: 'tcp', address: spec.address ?? '::', port: spec.port }],
    idleTimeoutMs: (spec: TcpListenerSpec) => (spec.options?.idle_timeout ?? DEFAULT_STREAM_IDLE_TIMEOUT_S) * 1000,
  },
  cluster: { schema: TcpClusterSpec, virtual: false, create: (cfg, ctx) => new TcpCluster(cfg, ctx) },
};
