/** TCP cluster: one connection per session stage, TCP_NODELAY on (as l7mp). */
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import type { ClusterContext, ClusterInstance, Connection, EndpointInfo, SessionInfo } from '../types.ts';
import { connectSocket } from '../core/socket-connection.ts';
import { hostPort } from '../core/server.ts';
import type { TcpClusterSpec } from './config.ts';

export class TcpCluster implements ClusterInstance {
  private readonly name: string;
  private readonly spec: TcpClusterSpec;

  constructor(cfg: { name: string; spec: TcpClusterSpec }, _ctx: ClusterContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
  }

  connect(_s: SessionInfo, ep: EndpointInfo | null, signal: AbortSignal): Promise<Connection> {
    if (ep === null) return Promise.reject(new L7Error(ErrorCode.ClusterNoEndpoint, `No endpoint in cluster "${this.name}"`));
    const b = this.spec.bind;
    return connectSocket(
      { host: ep.address, port: this.spec.port, noDelay: true, ...(b ? { localAddress: b.address, localPort: b.port } : {}) },
      this.name,
      `TCP ${hostPort(ep.address, this.spec.port)}`,
      signal,
    );
  }

  close(): void {}
}
