/**
 * L7mpController (compat reference §2, §3.3): a virtual cluster that serves l7mp's REST API (and
 * every other admin route: /api/v1/actors, /metrics, /healthz) to sessions of an HTTP listener,
 * the l7mp way of exposing the API. The API itself runs on the main thread, so a change made
 * through any worker applies to all of them atomically. The bearer token, when set, is required
 * here too.
 */
import { Type } from '@sinclair/typebox';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import type { ProtocolModule } from '../types.ts';
import { AdminConnection, type HttpMeta } from '../virtual/admin-connection.ts';

export const l7mpController: ProtocolModule = {
  name: 'L7mpController',
  kind: 'byte',
  cluster: {
    schema: Type.Object({ protocol: Type.Literal('L7mpController') }, { description: "L7mpController: serves l7mp's REST API to the sessions of an HTTP listener." }),
    virtual: true,
    create: (cfg, ctx) => ({
      connect: (s) =>
        Promise.resolve(
          new AdminConnection(
            cfg.name,
            s.metadata,
            (md, body) => {
              const http = md.HTTP as HttpMeta | undefined;
              if (http?.method === undefined || http.url?.path === undefined) {
                return new L7Error(ErrorCode.InvalidArgument, `cluster "${cfg.name}": L7mpController serves HTTP sessions only (no HTTP metadata)`);
              }
              return { method: http.method, url: http.url.path, headers: http.headers ?? {}, body };
            },
            ctx.admin,
          ),
        ),
      close() {},
    }),
  },
};
