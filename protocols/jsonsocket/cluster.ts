/**
 * JSONSocket cluster (compat reference §5, client side): opens a transport connection with the
 * transport cluster (its endpoints are the JSONSocket cluster's), sends the request header built
 * from the session metadata, and is connected once the reply is accepted (2xx or no status, as
 * l7mp). A rejected reply, a close before it, or the session's timeout (the route's
 * `retry.timeout`, through `signal`) fail the attempt; the route's retry policy decides the rest.
 */
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import type { ClusterContext, ClusterInstance, Connection, EndpointInfo, SessionInfo } from '../types.ts';
import { checkReply, requestHeader, type HeaderOp } from './codec.ts';
import { FramedConnection } from './framed.ts';
import { HeaderReader } from './header-reader.ts';
import type { JsonSocketClusterSpec } from './config.ts';
import { clusterTransports, transportOf } from './transports.ts';

export class JsonSocketCluster implements ClusterInstance {
  private readonly name: string;
  private readonly ops: readonly HeaderOp[] | undefined;
  private readonly inner: ClusterInstance;

  constructor(cfg: { name: string; spec: JsonSocketClusterSpec }, ctx: ClusterContext) {
    this.name = cfg.name;
    this.ops = cfg.spec.header as HeaderOp[] | undefined;
    const t = transportOf(cfg.spec);
    const mod = clusterTransports.get(t.protocol);
    if (mod?.cluster === undefined) throw new L7Error(ErrorCode.ConfigInvalid, `cluster "${cfg.name}": spec.transport.protocol: JSONSocket cannot run over ${JSON.stringify(t.protocol)}`);
    this.inner = mod.cluster.create({ name: cfg.name, spec: t }, ctx);
  }

  async connect(session: SessionInfo, ep: EndpointInfo | null, signal: AbortSignal): Promise<Connection> {
    const conn = await this.inner.connect(session, ep, signal);
    const header = Buffer.from(JSON.stringify(requestHeader(session.metadata, this.ops)));
    return new Promise<Connection>((resolve, reject) => {
      let settled = false;
      const fail = (why: string, cause?: unknown): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        conn.close();
        reject(new L7Error(ErrorCode.UpstreamConnect, `cluster "${this.name}": JSONSocket ${conn.remote}: ${why}`, cause === undefined ? undefined : { cause }));
      };
      const onAbort = (): void => fail('aborted');
      if (signal.aborted) return fail('aborted');
      signal.addEventListener('abort', onAbort, { once: true });
      conn.setHandler(
        new HeaderReader(conn, {
          header: (bytes, rest) => {
            const bad = checkReply(bytes);
            if (bad !== null) return fail(`reply rejected: ${bad}`);
            if (settled) return;
            settled = true;
            signal.removeEventListener('abort', onAbort);
            const framed = new FramedConnection(conn, true);
            if (rest !== null) framed.onData(rest);
            resolve(framed);
          },
          invalid: (reason) => fail(`reply rejected: ${reason}`),
          gone: (err) => fail(err === null ? 'closed before the JSONSocket reply' : err.message, err ?? undefined),
        }),
      );
      conn.send(header);
    });
  }

  close(): void {
    this.inner.close();
  }
}
