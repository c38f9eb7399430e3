/**
 * L7mpController (docs/l7mp-compat.md §2, §3.3): a virtual cluster that serves l7mp's REST API (and
 * every other admin route: /api/v1/actors, /metrics, /healthz) to sessions of an HTTP listener,
 * the l7mp way of exposing the API. The API itself runs on the main thread, so a change made
 * through any worker applies to all of them atomically. The bearer token, when set, is required
 * here too.
 */
import { L7Error, ErrorCode } from '../../common/errors.ts';
import { adminCluster } from '../core/admin.ts';
import { httpMeta } from '../core/http.ts';

export const l7mpController = adminCluster('L7mpController', "L7mpController: serves l7mp's REST API to the sessions of an HTTP listener.", (md, body) => {
  const http = httpMeta(md);
  if (http?.method === undefined || http.url?.path === undefined) {
    return new L7Error(ErrorCode.InvalidArgument, 'L7mpController serves HTTP sessions only (no HTTP metadata)');
  }
  return { method: http.method, url: http.url.path, headers: http.headers ?? {}, body };
});
