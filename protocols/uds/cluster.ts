/** Unix stream-socket cluster: one connection per session stage to the endpoint's socket path. */
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import type { ClusterInstance, Connection, EndpointInfo, SessionInfo } from '../types.ts';
import { connectSocket } from '../core/socket-connection.ts';

export class UdsCluster implements ClusterInstance {
  private readonly name: string;

  constructor(cfg: { name: string }) {
    this.name = cfg.name;
  }

  connect(_s: SessionInfo, ep: EndpointInfo | null, signal: AbortSignal): Promise<Connection> {
    if (ep === null) return Promise.reject(new L7Error(ErrorCode.ClusterNoEndpoint, `No endpoint in cluster "${this.name}"`));
    return connectSocket({ path: ep.address }, this.name, `unix:${ep.address}`, signal);
  }

  close(): void {}
}
