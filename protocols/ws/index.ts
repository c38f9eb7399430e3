/** WebSocket (`ws`): datagram listener (every worker, SO_REUSEPORT) and cluster. */
import { defineProtocol } from '../core/define.ts';
import { HTTP_GUARD_EVENTS } from '../core/http-limits.ts';
import { tcpListener } from '../core/server.ts';
import { WsClusterSpec, WsListenerSpec } from './config.ts';
import { WsListener } from './listener.ts';
import { WsCluster } from './cluster.ts';

export const websocket = defineProtocol({
  name: 'WebSocket',
  kind: 'datagram',
  listener: tcpListener({
    schema: WsListenerSpec,
    create: (cfg, ctx) => new WsListener(cfg, ctx),
    events: {
      ...HTTP_GUARD_EVENTS,
      handshake_timeout: { drop: false, help: 'Connections closed (408) because their upgrade request was not in within handshake_timeout.' },
    },
  }),
  cluster: { schema: WsClusterSpec, virtual: false, create: (cfg) => new WsCluster(cfg) },
});
