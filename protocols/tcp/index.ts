/** TCP: byte-stream listener (every worker, SO_REUSEPORT) and cluster. */
import { defineProtocol } from '../core/define.ts';
import { LISTEN_EVENTS, streamIdleTimeoutMs, tcpBinds } from '../core/server.ts';
import { TcpClusterSpec, TcpListenerSpec } from './config.ts';
import { TcpListener } from './listener.ts';
import { TcpCluster } from './cluster.ts';

export const tcp = defineProtocol({
  name: 'TCP',
  kind: 'byte',
  listener: {
    schema: TcpListenerSpec,
    placement: () => 'shared',
    create: (cfg, ctx) => new TcpListener(cfg, ctx),
    binds: tcpBinds,
    idleTimeoutMs: streamIdleTimeoutMs,
    events: LISTEN_EVENTS,
  },
  cluster: { schema: TcpClusterSpec, virtual: false, create: (cfg, ctx) => new TcpCluster(cfg, ctx) },
});
