/**
 * WebSocket cluster. The URL is `ws://<endpoint>:<cluster port><path>`: the path (and `wss`) come
 * from the session's `/HTTP/url` when it has them (a WebSocket-to-WebSocket proxy keeps the path),
 * else `/`. The host and port of an absolute-form request target (`GET ws://10.0.0.5:22/`) are used
 * only with `target_from_request: true`, as l7mp always did: otherwise any downstream peer could
 * choose where the proxy connects (docs/threat-model.md). Request headers are copied from `/HTTP/headers`
 * except hop-by-hop and `sec-websocket-*` ones; `sec-websocket-protocol` becomes the subprotocol.
 *
 * Deviation from l7mp (bug B4, docs/l7mp-compat.md §3.3): a session without `/HTTP` metadata (from a
 * UDP, TCP or Unix listener) connects with no extra headers instead of failing.
 */
import { WebSocket } from 'ws';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import type { ClusterContext, ClusterInstance, Connection, EndpointInfo, SessionInfo } from '../types.ts';
import { connectAttempt } from '../core/connect.ts';
import { httpMeta, type HttpMeta } from '../core/http.ts';
import { hostPort } from '../core/server.ts';
import { WsConnection } from './connection.ts';
import { DEFAULT_MAX_PAYLOAD, type WsClusterSpec } from './config.ts';

const SKIP_HEADERS = new Set(['connection', 'upgrade', 'content-length', 'transfer-encoding', 'keep-alive', 'te', 'trailer', 'proxy-connection']);

/** The upstream URL, headers and subprotocols for a session (exported for tests). */
export function upstreamRequest(
  http: HttpMeta | undefined,
  ep: EndpointInfo,
  port: number,
  targetFromRequest = false,
): { url: string; headers: Record<string, string>; protocols: string[] } {
  const u = http?.url ?? {};
  const scheme = u.protocol === 'wss:' || u.protocol === 'wss' ? 'wss' : 'ws';
  const host = targetFromRequest && u.host ? u.host : ep.address;
  const p = targetFromRequest && u.port ? Number(u.port) : port;
  let path = u.path ? u.path : '/';
  if (!path.startsWith('/')) path = `/${path}`;
  const headers: Record<string, string> = {};
  let protocols: string[] = [];
  for (const [k, v] of Object.entries(http?.headers ?? {})) {
    if (v === undefined) continue;
    const key = k.toLowerCase();
    if (key === 'sec-websocket-protocol') {
      protocols = String(v)
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      continue;
    }
    if (key.startsWith('sec-websocket-') || SKIP_HEADERS.has(key)) continue;
    headers[key] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return { url: `${scheme}://${hostPort(host, p)}${path}`, headers, protocols };
}

export class WsCluster implements ClusterInstance {
  private readonly name: string;
  private readonly spec: WsClusterSpec;

  constructor(cfg: { name: string; spec: WsClusterSpec }, _ctx: ClusterContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
  }

  connect(session: SessionInfo, ep: EndpointInfo | null, signal: AbortSignal): Promise<Connection> {
    if (ep === null) return Promise.reject(new L7Error(ErrorCode.ClusterNoEndpoint, `No endpoint in cluster "${this.name}"`));
    const req = upstreamRequest(httpMeta(session.metadata), ep, this.spec.port, this.spec.target_from_request === true);
    return connectAttempt(signal, `cluster "${this.name}": WebSocket ${req.url}`, (a) => {
      const ws = new WebSocket(req.url, req.protocols, {
        headers: req.headers,
        perMessageDeflate: false,
        maxPayload: this.spec.max_payload ?? DEFAULT_MAX_PAYLOAD,
        ...(this.spec.bind?.address ? { localAddress: this.spec.bind.address } : {}),
      });
      a.onFail(() => {
        ws.removeAllListeners();
        ws.on('error', () => {});
        ws.terminate();
      });
      ws.once('error', a.fail);
      ws.once('open', () => {
        ws.removeListener('error', a.fail);
        a.done(new WsConnection(ws, 'upstream', 'ws-client', req.url));
      });
    });
  }

  close(): void {}
}
