/**
 * RTSP cluster: one TCP control connection per session (TCP_NODELAY), default port 554. Once it is
 * connected it tells the session's RTSP listener connection, if any, the server's address and our
 * end's (metadata key {@link RTSP_CONTROL}): the listener's server-side pinholes bind to that
 * local address and connect to the server. The bytes themselves pass untouched; the listener side
 * parses and rewrites both directions.
 */
import net from 'node:net';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { ClusterContext, ClusterInstance, Connection, EndpointInfo, SessionInfo } from '../types.ts';
import { SocketConnection } from '../core/socket-connection.ts';
import { hostPort } from '../core/server.ts';
import type { RtspClusterSpec } from './config.ts';
import { RTSP_CONTROL, type ControlConnection } from './control-base.ts';

export class RtspCluster implements ClusterInstance {
  private readonly name: string;
  private readonly spec: RtspClusterSpec;

  constructor(cfg: { name: string; spec: RtspClusterSpec }, _ctx: ClusterContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
  }

  connect(s: SessionInfo, ep: EndpointInfo | null, signal: AbortSignal): Promise<Connection> {
    if (ep === null) return Promise.reject(new L7Error(ErrorCode.ClusterNoEndpoint, `No endpoint in cluster "${this.name}"`));
    const port = this.spec.port ?? 554;
    const b = this.spec.bind;
    const what = `RTSP ${hostPort(ep.address, port)}`;
    const control = (s.metadata as { [RTSP_CONTROL]?: ControlConnection })[RTSP_CONTROL];
    return new Promise((resolve, reject) => {
      const sock = net.createConnection({ host: ep.address, port, noDelay: true, allowHalfOpen: true, ...(b ? { localAddress: b.address, localPort: b.port } : {}) });
      const fail = (err: Error): void => {
        signal.removeEventListener('abort', onAbort);
        sock.destroy();
        reject(new L7Error(ErrorCode.UpstreamConnect, `cluster "${this.name}": ${what}: ${err.message}`, { cause: err }));
      };
      const onAbort = (): void => fail(new Error('aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      sock.once('error', fail);
      sock.once('connect', () => {
        signal.removeEventListener('abort', onAbort);
        sock.removeListener('error', fail);
        control?.upstreamConnected({ remoteAddress: sock.remoteAddress ?? ep.address, localAddress: sock.localAddress ?? '' });
        resolve(new SocketConnection(sock, 'upstream', hostPort(sock.localAddress, sock.localPort), what));
      });
    });
  }

  close(): void {}
}
