/**
 * Prometheus (compat reference §3.3, §6.1): a virtual cluster that answers every request, once it
 * has ended, with the Prometheus text exposition of the process's metrics (the admin server's
 * `/metrics`, aggregated over all workers), whatever the path: match `/HTTP/url/path` in a rule
 * to serve it on `/metrics` only. Unlike l7mp it sends the exposition's Content-Type.
 */
import { Type } from '@sinclair/typebox';
import type { ProtocolModule } from '../types.ts';
import { AdminConnection, type HttpMeta } from '../virtual/admin-connection.ts';

export const prometheus: ProtocolModule = {
  name: 'Prometheus',
  kind: 'byte',
  cluster: {
    schema: Type.Object({ protocol: Type.Literal('Prometheus') }, { description: 'Prometheus: answers each request with the metrics of the whole process.' }),
    virtual: true,
    create: (cfg, ctx) => ({
      connect: (s) =>
        Promise.resolve(
          new AdminConnection(
            cfg.name,
            s.metadata,
            (md) => {
              const auth = (md.HTTP as HttpMeta | undefined)?.headers?.authorization;
              return { method: 'GET', url: '/metrics', headers: auth === undefined ? {} : { authorization: auth }, body: new Uint8Array(0) };
            },
            ctx.admin,
          ),
        ),
      close() {},
    }),
  },
};
