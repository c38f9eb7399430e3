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
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { Connection, EndpointInfo, SessionInfo } from '../types.ts';
import { connectAttempt, EndpointCluster } from '../core/connect.ts';
import { BaseConnection } from '../core/connection.ts';
import { HOP_BY_HOP, httpExchange, httpMeta, type HttpExchange } from '../core/http.ts';
import { hostPort } from '../core/server.ts';
import type { HttpClusterSpec } from './config.ts';

/** The upstream side of one session stage: one request and its response. */
export class HttpClientConnection extends BaseConnection {
  readonly kind = 'byte' as const;
  /** Local address of the socket the request went out on (set once it is connected). */
  local = '';
  readonly remote: string;
  private res: http.IncomingMessage | null = null;
  private readonly req: http.ClientRequest;

  constructor(req: http.ClientRequest, exchange: HttpExchange | undefined, remote: string) {
    super();
    this.req = req;
    this.remote = remote;
    req.on('response', (res) => {
      this.res = res;
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = v;
      // The HTTP listener drops hop-by-hop headers and the length when it writes the head.
      exchange?.setResponseHead({ status: res.statusCode ?? 502, ...(res.statusMessage ? { statusMessage: res.statusMessage } : {}), headers });
      res.on('data', (chunk: Buffer) => this.receive(chunk));
      res.once('end', () => {
        this.receiveEnd();
        this.finish(null);
      });
      res.once('error', (err) => this.finish(new L7Error(ErrorCode.UpstreamReset, `${remote}: ${err.message}`, { cause: err })));
    });
    req.on('drain', () => this.handler.onDrain());
    req.on('error', (err) => this.finish(new L7Error(ErrorCode.UpstreamReset, `${remote}: ${err.message}`, { cause: err })));
  }

  protected override writable(): boolean {
    return !this.req.writableEnded;
  }

  protected override write(data: Buffer): boolean {
    return this.req.write(data);
  }

  override pause(): void {
    this.res?.pause();
  }

  override resume(): void {
    this.res?.resume();
  }

  /** The request body is complete. */
  override end(): boolean {
    if (!this.closed && !this.req.writableEnded) this.req.end();
    return true;
  }

  /** `close()` abandons the exchange if the response has not ended yet (the socket is not reused then). */
  protected override shutdown(): void {
    this.req.destroy();
  }

  protected override release(err: L7Error | null): void {
    if (err !== null) this.req.destroy();
  }
}

export class HttpCluster extends EndpointCluster<HttpClusterSpec> {
  private readonly agent: http.Agent;

  constructor(cfg: { name: string; spec: HttpClusterSpec }) {
    super(cfg);
    this.agent = new http.Agent({ keepAlive: true, ...(cfg.spec.bind?.address ? { localAddress: cfg.spec.bind.address } : {}) });
  }

  protected open(s: SessionInfo, ep: EndpointInfo, signal: AbortSignal): Promise<Connection> {
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
    return connectAttempt(signal, `cluster "${this.name}": ${what}`, (a) => {
      const req = http.request({ agent: this.agent, host: ep.address, port: this.spec.port, method, path, headers, setHost: headers.host === undefined });
      const conn = new HttpClientConnection(req, httpExchange(s.metadata), what);
      a.onFail(() => req.destroy());
      req.once('error', a.fail);
      req.once('socket', (sock) => {
        const ok = (): void => {
          req.removeListener('error', a.fail);
          conn.local = hostPort(sock.localAddress, sock.localPort);
          a.done(conn);
        };
        if (sock.connecting) sock.once('connect', ok);
        else ok();
      });
      req.flushHeaders();
    });
  }

  override close(): void {
    this.agent.destroy();
  }
}
