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
    // A singleton's one session is the listener itself (l7mp: it never expires): no idle timeout
    // unless one is set.
    idleTimeoutMs: (spec: UdpListenerSpec) => (spec.options?.idle_timeout ?? (udpMode(spec) === 'singleton' ? 0 : DEFAULT_UDP_IDLE_TIMEOUT_S)) * 1000,
    binds: (spec: UdpListenerSpec) => [{ transport: 'udp', address: spec.address ?? '0.0.0.0', port: spec.port }],
    // A UDP peer never says it is done: a drain ends its session once it goes quiet.
    drainWhenQuiet: () => true,
  },
  cluster: {
    schema: UdpClusterSpec,
    virtual: false,
    create: (cfg, ctx) => new UdpCluster(cfg, ctx),
  },
};
