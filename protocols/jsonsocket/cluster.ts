/**
 * JSONSocket cluster (docs/l7mp-compat.md §5, client side): opens a transport connection with the
 * transport cluster (its endpoints are the JSONSocket cluster's), sends the request header built
 * from the session metadata, and is connected once the reply is accepted (2xx or no status, as
 * l7mp). A rejected reply, a close before it, or the session's timeout (the route's
 * `retry.timeout`, through `signal`) fail the attempt; the route's retry policy decides the rest.
 */
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { ClusterContext, ClusterInstance, Connection, EndpointInfo, ProtocolModule, SessionInfo } from '../types.ts';
import { connectAttempt } from '../core/connect.ts';
import { checkReply, requestHeader, type HeaderOp } from './codec.ts';
import { FramedConnection } from './framed.ts';
import { HeaderReader } from './header-reader.ts';
import { transportOf, type JsonSocketClusterSpec } from './config.ts';

export class JsonSocketCluster implements ClusterInstance {
  private readonly name: string;
  private readonly ops: readonly HeaderOp[] | undefined;
  private readonly inner: ClusterInstance;

  /** @param transports the cluster transports by `protocol` name. */
  constructor(cfg: { name: string; spec: JsonSocketClusterSpec }, ctx: ClusterContext, transports: ReadonlyMap<string, ProtocolModule>) {
    this.name = cfg.name;
    this.ops = cfg.spec.header as HeaderOp[] | undefined;
    const t = transportOf(cfg.spec);
    const mod = transports.get(t.protocol);
    if (mod?.cluster === undefined) throw new L7Error(ErrorCode.ConfigInvalid, `cluster "${cfg.name}": spec.transport.protocol: JSONSocket cannot run over ${JSON.stringify(t.protocol)}`);
    this.inner = mod.cluster.create({ name: cfg.name, spec: t }, ctx);
  }

  async connect(session: SessionInfo, ep: EndpointInfo | null, signal: AbortSignal): Promise<Connection> {
    const conn = await this.inner.connect(session, ep, signal);
    const header = Buffer.from(JSON.stringify(requestHeader(session.metadata, this.ops)));
    return connectAttempt<Connection>(signal, `cluster "${this.name}": JSONSocket ${conn.remote}`, (a) => {
      a.onFail(() => conn.close());
      conn.setHandler(
        new HeaderReader(conn, {
          header: (bytes, rest) => {
            const bad = checkReply(bytes);
            if (bad !== null) return a.fail(`reply rejected: ${bad}`);
            if (a.settled) return;
            const framed = new FramedConnection(conn, true);
            if (rest !== null) framed.onData(rest);
            a.done(framed);
          },
          invalid: (reason) => a.fail(`reply rejected: ${reason}`),
          gone: (err) => (err === null ? a.fail('closed before the JSONSocket reply') : a.fail(err)),
        }),
      );
      conn.send(header);
    });
  }

  close(): void {
    this.inner.close();
  }
}
