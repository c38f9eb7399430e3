/**
 * Child sessions ({@link ListenerContext.spawnChild}): a session between two connections a
 * protocol opened itself (RTSP's RTP/RTCP pinholes), started under the session that made them.
 *
 * The {@link SessionActor} is used unchanged: its environment is the worker's, except that the
 * routing table knows one route (destination: a cluster that only this child has) and that
 * cluster's `connect` hands over the connection the protocol opened, once. A stage that closes is
 * not reconnected (`retry_on: never`): the child ends, and so does its flow.
 */
import { L7Error, ErrorCode } from '../common/errors.ts';
import type { ChildSessionSpec, ClusterInstance, Connection } from '../protocols/types.ts';
import type { RouteConfig } from '../cluster-config/snapshot.ts';
import type { RoutingTable } from '../routing/table.ts';
import type { SessionEnv, SessionInit } from './session-core.ts';

/** A cluster whose one connect resolves to a connection opened beforehand. */
class OneShotCluster implements ClusterInstance {
  private conn: Connection | null;
  constructor(conn: Connection) {
    this.conn = conn;
  }
  connect(): Promise<Connection> {
    const c = this.conn;
    this.conn = null;
    return c === null ? Promise.reject(new L7Error(ErrorCode.UpstreamConnect, 'a child session stage cannot reconnect')) : Promise.resolve(c);
  }
  close(): void {
    this.conn?.close();
    this.conn = null;
  }
}

/** The {@link SessionInit} of a child session of listener `listener`. */
export function childSessionInit(env: SessionEnv, listener: string, spec: ChildSessionSpec, name: string): SessionInit {
  const route: RouteConfig = Object.freeze({ name: `${listener}/child`, destination: spec.cluster, ingress: [], egress: [], retry: Object.freeze({ retry_on: 'never' as const, num_retries: 0, timeout: 1000 }) });
  const table = { lookup: () => ({ route, via: `child session of listener ${listener}` }), balancer: () => undefined } as unknown as RoutingTable;
  const cluster = new OneShotCluster(spec.upstream);
  const childEnv: SessionEnv = {
    table,
    cluster: (n) => (n === spec.cluster ? cluster : undefined),
    clusterCounters: () => undefined,
    timers: env.timers,
    rateLog: env.rateLog,
    onEnd: (r) => env.onEnd(r),
    offload: env.offload ?? null,
  };
  return { name, listener, metadata: { ...spec.metadata, name }, source: spec.source, idleTimeoutMs: spec.idleTimeoutMs, env: childEnv };
}
