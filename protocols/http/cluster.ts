/**
 * HTTP cluster (new in l7mp-ts: l7mp listed `HTTP` among its clusters but had no class for it,
 * bug B17). Each session stage is one HTTP/1.1 request to the picked endpoint:
 * - from an HTTP listener, the downstream request's method, path (with query) and headers are
 *   relayed, hop-by-hop headers dropped (RFC 9110 §7.6.1), `Host` kept (as Envoy does);
 * - from any other listener, `spec.method` (default POST) to `spec.path` (default `/`);
 * - the session's bytes are the request body (chunked), the response body comes back as the
 *   stage's byte stream, and the response's status and headers go to the downstream HTTP
 *   exchange when there is one. The stage ends when the response has ended.
 * Connections to an endpoint are kept alive and reused (one agent per cluster and worker).
 */
import http from 'node:http';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import { ConnStats } from '../types.ts';
import type { ClusterContext, ClusterInstance, Connection, ConnectionHandler, EndpointInfo, SessionInfo } from '../types.ts';
import { PendingHandler } from '../udp/listener.ts';
import { hostPort } from '../stream/server.ts';
import type { HttpClusterSpec } from './config.ts';
import { HOP_BY_HOP, httpExchange, httpMeta, type HttpExchange } from './exchange.ts';

/** The upstream side of one session stage: one request and its response. */
export class HttpClientConnection implements Connection {
  readonly kind = 'byte' as const;
  readonly stats = new ConnStats();
  /** Local address of the socket the request went out on (set once it is connected). */
  local = '';
  readonly remote: string;
  private handler: ConnectionHandler = new PendingHandler();
  private res: http.IncomingMessage | null = null;
  private closed = false;
  private readonly req: http.ClientRequest;

  constructor(req: http.ClientRequest, exchange: HttpExchange | undefined, remote: string) {
    this.req = req;
    this.remote = remote;
    req.on('response', (res) => {
      this.res = res;
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = v;
      // The HTTP listener drops hop-by-hop headers and the length when it writes the head.
      exchange?.setResponseHead({ status: res.statusCode ?? 502, ...(res.statusMessage ? { statusMessage: res.statusMessage } : {}), headers });
      res.on('data', (chunk: Buffer) => {
        this.stats.rxPackets++;
        this.stats.rxBytes += chunk.length;
        this.handler.onData(chunk);
      });
      res.once('end', () => {
        this.handler.onEnd();
        this.finish(null);
      });
      res.once('error', (err) => this.finish(new L7Error(ErrorCode.UpstreamReset, `${remote}: ${err.message}`, { cause: err })));
    });
    req.on('drain', () => this.handler.onDrain());
    req.on('error', (err) => this.finish(new L7Error(ErrorCode.UpstreamReset, `${remote}: ${err.message}`, { cause: err })));
  }

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) prev.flushTo(h);
  }

  send(data: Buffer): boolean {
    if (this.closed || this.req.writableEnded) {
      this.stats.drops++;
      return true;
    }
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
    return this.req.write(data);
  }

  pause(): void {
    this.res?.pause();
  }

  resume(): void {
    this.res?.resume();
  }

  /** The request body is complete. */
  end(): boolean {
    if (!this.closed && !this.req.writableEnded) this.req.end();
    return true;
  }

  /** Abandons the exchange if the response has not ended yet (the socket is not reused then). */
  close(): void {
    if (this.closed) return;
    this.req.destroy();
    this.finish(null);
  }

  private finish(err: L7Error | null): void {
    if (this.closed) return;
    this.closed = true;
    if (err !== null) this.req.destroy();
    this.handler.onClose(err);
  }
}

export class HttpCluster implements ClusterInstance {
  private readonly name: string;
  private readonly spec: HttpClusterSpec;
  private readonly agent: http.Agent;

  constructor(cfg: { name: string; spec: HttpClusterSpec }, _ctx: ClusterContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
    this.agent = new http.Agent({ keepAlive: true, ...(cfg.spec.bind?.address ? { localAddress: cfg.spec.bind.address } : {}) });
  }

  connect(s: SessionInfo, ep: EndpointInfo | null, signal: AbortSignal): Promise<Connection> {
    if (ep === null) return Promise.reject(new L7Error(ErrorCode.ClusterNoEndpoint, `No endpoint in cluster "${this.name}"`));
    const meta = httpMeta(s.metadata);
    const method = meta?.method ?? this.spec.method ?? 'POST';
    const path = meta?.url?.path ?? this.spec.path ?? '/';
    const headers: Record<string, string | string[]> = {};
    let hasBody = meta === undefined;
    for (const [k, v] of Object.entries(meta?.headers ?? {})) {
      if (v === undefined || HOP_BY_HOP.has(k)) continue;
      if (k === 'content-length') {
        hasBody = v !== '0';
        continue;
      }
      headers[k] = v;
    }
    if (meta?.headers?.['transfer-encoding'] !== undefined) hasBody = true;
    // The route may change the body's length (JSONEncap, transforms): the length is not relayed.
    if (hasBody) headers['transfer-encoding'] = 'chunked';
    const what = `HTTP ${hostPort(ep.address, this.spec.port)}`;
    return new Promise((resolve, reject) => {
      const req = http.request({ agent: this.agent, host: ep.address, port: this.spec.port, method, path, headers, setHost: headers.host === undefined });
      const conn = new HttpClientConnection(req, httpExchange(s.metadata), what);
      const fail = (err: Error): void => {
        signal.removeEventListener('abort', onAbort);
        req.destroy();
        reject(new L7Error(ErrorCode.UpstreamConnect, `cluster "${this.name}": ${what}: ${err.message}`, { cause: err }));
      };
      const onAbort = (): void => fail(new Error('aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      req.once('error', fail);
      req.once('socket', (sock) => {
        const ok = (): void => {
          signal.removeEventListener('abort', onAbort);
          req.removeListener('error', fail);
          conn.local = hostPort(sock.localAddress, sock.localPort);
          resolve(conn);
        };
        if (sock.connecting) sock.once('connect', ok);
        else ok();
      });
      req.flushHeaders();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
