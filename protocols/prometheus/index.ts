/**
 * Prometheus (docs/l7mp-compat.md §3.3, §6.1): a virtual cluster that answers every request, once it
 * has ended, with the Prometheus text exposition of the process's metrics (the admin server's
 * `/metrics`, aggregated over all workers), whatever the path: match `/HTTP/url/path` in a rule
 * to serve it on `/metrics` only. Unlike l7mp it sends the exposition's Content-Type.
 */
import { adminCluster } from '../core/admin.ts';
import { httpMeta } from '../core/http.ts';

export const prometheus = adminCluster('Prometheus', 'Prometheus: answers each request with the metrics of the whole process.', (md) => {
  const auth = httpMeta(md)?.headers?.authorization;
  return { method: 'GET', url: '/metrics', headers: auth === undefined ? {} : { authorization: auth }, body: new Uint8Array(0) };
});
