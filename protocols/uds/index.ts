/** UnixDomainSocket: stream (SOCK_STREAM) or dgram (SOCK_DGRAM) listener on one worker, cluster to socket paths. */
import type { ProtocolModule } from '../types.ts';
import { DEFAULT_STREAM_IDLE_TIMEOUT_S } from '../schema.ts';
import { DEFAULT_UDS_DGRAM_IDLE_TIMEOUT_S, UdsClusterSpec, UdsListenerSpec } from './config.ts';
import { UdsListener } from './listener.ts';
import { UdsCluster } from './cluster.ts';
import { UdsDgramListener } from './dgram-listener.ts';
import { UdsDgramCluster } from './dgram-cluster.ts';

export const uds: ProtocolModule = {
  name: 'UnixDomainSocket',
  // Per connection: byte for `type: stream` (the default), datagram for `type: dgram`.
  kind: 'byte',
  listener: {
    schema: UdsListenerSpec,
    placement: () => 'single',
    binds: (spec: UdsListenerSpec) => [{ transport: 'unix', path: spec.filename }],
    create: (cfg, ctx) => (cfg.spec.type === 'dgram' ? new UdsDgramListener(cfg, ctx) : new UdsListener(cfg, ctx)),
    idleTimeoutMs: (spec: UdsListenerSpec) => (spec.options?.idle_timeout ?? (spec.type === 'dgram' ? DEFAULT_UDS_DGRAM_IDLE_TIMEOUT_S : DEFAULT_STREAM_IDLE_TIMEOUT_S)) * 1000,
    drainWhenQuiet: (spec: UdsListenerSpec) => spec.type === 'dgram',
  },
  cluster: {
    schema: UdsClusterSpec,
    virtual: false,
    create: (cfg, ctx) => (cfg.spec.type === 'dgram' ? new UdsDgramCluster(cfg, ctx) : new UdsCluster(cfg)),
  },
};
