/** UDP: datagram listener (server and singleton modes) and cluster, IPv4 and IPv6. */
import type { ProtocolModule } from '../types.ts';
import { DEFAULT_UDP_IDLE_TIMEOUT_S, UdpClusterSpec, UdpListenerSpec } from './config.ts';
import { UdpListener, udpMode } from './listener.ts';
import { UdpCluster } from './cluster.ts';

export const udp: ProtocolModule = {
  name: 'UDP',
  kind: 'datagram',
  listener: {
    schema: UdpListenerSpec,
    placement: (spec: UdpListenerSpec) => (udpMode(spec) === 'singleton' ? 'single' : 'shared'),
    create: (cfg, ctx) => new UdpListener(cfg, ctx),
    idleTimeoutMs: (spec: UdpListenerSpec) => (spec.options?.idle_timeout ?? DEFAULT_UDP_IDLE_TIMEOUT_S) * 1000,
  },
  cluster: {
    schema: UdpClusterSpec,
    virtual: false,
    create: (cfg, ctx) => new UdpCluster(cfg, ctx),
  },
};
