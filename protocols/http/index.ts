/** HTTP/1.1: a byte-stream listener (every worker, SO_REUSEPORT; one session per request) and cluster. */
import { defineProtocol } from '../core/define.ts';
import { HTTP_GUARD_EVENTS } from '../core/http-limits.ts';
import { tcpListener } from '../core/server.ts';
import { HttpClusterSpec, HttpListenerSpec } from './config.ts';
import { HttpListener } from './listener.ts';
import { HttpCluster } from './cluster.ts';

export const httpProtocol = defineProtocol({
  name: 'HTTP',
  kind: 'byte',
  listener: tcpListener({
    schema: HttpListenerSpec,
    create: (cfg, ctx) => new HttpListener(cfg, ctx),
    events: {
      ...HTTP_GUARD_EVENTS,
      header_timeout: { drop: false, help: 'Connections closed (408) because their request head was not in within header_timeout.' },
      body_too_large: { drop: true, help: 'Requests answered 413: their body was larger than max_body_size.' },
    },
  }),
  cluster: { schema: HttpClusterSpec, virtual: false, create: (cfg) => new HttpCluster(cfg) },
});
