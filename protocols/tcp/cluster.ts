/** TCP cluster: one connection per session stage, TCP_NODELAY on (as l7mp). */
import type { Connection, EndpointInfo, SessionInfo } from '../types.ts';
import { EndpointCluster } from '../core/connect.ts';
import { connectSocket } from '../core/socket-connection.ts';
import { hostPort } from '../core/server.ts';
import type { TcpClusterSpec } from './config.ts';

export class TcpCluster extends EndpointCluster<TcpClusterSpec> {
  protected open(_s: SessionInfo, ep: EndpointInfo, signal: AbortSignal): Promise<Connection> {
    const b = this.spec.bind;
    return connectSocket(
      { host: ep.address, port: this.spec.port, noDelay: true, ...(b ? { localAddress: b.address, localPort: b.port } : {}) },
      this.name,
      `TCP ${hostPort(ep.address, this.spec.port)}`,
      signal,
    );
  }
}
