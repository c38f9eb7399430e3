/** TCP: byte-stream listener (every worker, SO_REUSEPORT) and cluster. */
import { defineProtocol } from '../core/define.ts';
import { tcpListener } from '../core/server.ts';
import { TcpClusterSpec, TcpListenerSpec } from './config.ts';
import { TcpListener } from './listener.ts';
import { TcpCluster } from './cluster.ts';

export const tcp = defineProtocol({
  name: 'TCP',
  kind: 'byte',
  listener: tcpListener({ schema: TcpListenerSpec, create: (cfg, ctx) => new TcpListener(cfg, ctx) }),
  cluster: { schema: TcpClusterSpec, virtual: false, create: (cfg) => new TcpCluster(cfg) },
});
