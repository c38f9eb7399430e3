/** UDP: datagram listener (server and singleton modes) and cluster, IPv4 and IPv6. */
import { defineProtocol } from '../core/define.ts';
import { DEFAULT_UDP_IDLE_TIMEOUT_S, UdpClusterSpec, UdpListenerSpec } from './config.ts';
import { UdpListener } from './listener.ts';
import { udpDownstreamFds, udpMode } from './modes.ts';
import { UdpCluster } from './cluster.ts';

export const udp = defineProtocol({
  name: 'UDP',
  kind: 'datagram',
  listener: {
    schema: UdpListenerSpec,
    placement: (spec) => (udpMode(spec) === 'singleton' ? 'single' : 'shared'),
    create: (cfg, ctx) => new UdpListener(cfg, ctx),
    // A singleton's one session is the listener itself (l7mp: it never expires): no idle timeout
    // unless one is set.
    idleTimeoutMs: (spec) => (spec.options?.idle_timeout ?? (udpMode(spec) === 'singleton' ? 0 : DEFAULT_UDP_IDLE_TIMEOUT_S)) * 1000,
    binds: (spec) => [{ transport: 'udp', address: spec.address ?? '0.0.0.0', port: spec.port }],
    downstreamFds: udpDownstreamFds,
    // A UDP peer never says it is done: a drain ends its session once it goes quiet.
    drainWhenQuiet: () => true,
    events: {
      filtered: { drop: true, help: 'Datagrams from a peer outside the listener\'s `connect` filter.' },
      session_rate: { drop: true, help: 'Datagrams past a session\'s rate limit (options.max_pps / max_bps).' },
      fd_exhausted: { drop: true, help: 'A session socket that found no file descriptor (EMFILE, ENFILE): the session ends (one about to be spliced stays in userspace instead).' },
      handoff_out: { drop: false, help: 'First datagrams of a new peer handed to the worker that owns its session.' },
      handoff_in: { drop: false, help: 'Datagrams another worker handed to this one.' },
      stray: { drop: false, help: 'Datagrams of another peer that reached a session socket before it was connected (passed back to the listener, not lost).' },
      rtp_absent: { drop: false, help: 'New sessions (options.rtp) whose first datagram had no RTP header: no /RTP metadata.' },
    },
  },
  cluster: {
    schema: UdpClusterSpec,
    virtual: false,
    create: (cfg) => new UdpCluster(cfg),
  },
});
