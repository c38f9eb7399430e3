/** HTTP/1.1: a byte-stream listener (every worker, SO_REUSEPORT; one session per request) and cluster. */
import type { ProtocolModule } from '../types.ts';
import { HttpClusterSpec, HttpListenerSpec } from './config.ts';
import { HttpListener } from './listener.ts';
import { HttpCluster } from './cluster.ts';
import { DEFAULT_STREAM_IDLE_TIMEOUT_S } from '../schema.ts';

export const httpProtocol: ProtocolModule = {
  name: 'HTTP',
  kind: 'byte',
  listener: {
    schema: HttpListenerSpec,
    placement: () => 'shared',
    create: (cfg, ctx) => new HttpListener(cfg, ctx),
    binds: (spec: HttpListenerSpec) => [{ transport: 'tcp', address: spec.address ?? '::', port: spec.port }],
    idleTimeoutMs: (spec: HttpListenerSpec) => (spec.options?.idle_timeout ?? DEFAULT_STREAM_IDLE_TIMEOUT_S) * 1000,
  },
  cluster: { schema: HttpClusterSpec, virtual: false, create: (cfg, ctx) => new HttpCluster(cfg, ctx) },
};
