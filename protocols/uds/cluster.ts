/** Unix stream-socket cluster: one connection per session stage to the endpoint's socket path. */
import type { Connection, EndpointInfo, SessionInfo } from '../types.ts';
import { EndpointCluster } from '../core/connect.ts';
import { connectSocket } from '../core/socket-connection.ts';
import type { UdsClusterSpec } from './config.ts';

export class UdsCluster extends EndpointCluster<UdsClusterSpec> {
  protected open(_s: SessionInfo, ep: EndpointInfo, signal: AbortSignal): Promise<Connection> {
    return connectSocket({ path: ep.address }, this.name, `unix:${ep.address}`, signal);
  }
}
