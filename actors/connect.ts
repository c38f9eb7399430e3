/**
 * Connect phases of a session's upstream stages (docs/l7mp-compat.md §4.6): each attempt picks an
 * endpoint from the cluster's balancer (passing over the ones that failed in this phase), connects
 * with the route's timeout, and reports its result to the session as a message; failures are
 * retried under the route's `retry_on` / `num_retries`, on another endpoint at once when there is
 * one, else after `timeout`. Endpoint results feed outlier detection (routing/health.ts).
 */
import { L7Error, ErrorCode, asL7Error } from '../common/errors.ts';
import type { Connection, EndpointInfo, SessionInfo } from '../protocols/types.ts';
import type { EndpointConfig, RetryConfig, RouteConfig } from '../cluster-config/snapshot.ts';
import { avoidEndpoint, type SessionCore, type Stage } from './session-core.ts';

/** The {@link EndpointInfo} of each endpoint of the config: one per endpoint, shared by its sessions' stages. */
const endpointInfos = new WeakMap<EndpointConfig, EndpointInfo>();

function endpointInfo(ep: EndpointConfig): EndpointInfo {
  let info = endpointInfos.get(ep);
  if (info === undefined) {
    info = { name: ep.name, address: ep.spec.address, weight: ep.weight };
    endpointInfos.set(ep, info);
  }
  return info;
}

/** The route's retry policy (the session is routed). */
function retryOf(s: SessionCore): RetryConfig {
  return (s.route as RouteConfig).retry;
}

/** Start a connect phase for stage `i`, passing over `avoid` (the endpoint that just failed) if another is available. */
export function connectStage(s: SessionCore, i: number, avoid: string | null = null): void {
  const st = s.stages[i] as Stage;
  st.gen++;
  st.attempts = 0;
  st.avoid = avoid === null ? null : [avoid];
  attempt(s, i);
}

/** The endpoint stage `st` would connect to now. */
export function pickFor(s: SessionCore, st: Stage): EndpointConfig | null {
  const env = s.init.env;
  return env.table.balancer(st.cluster)?.pick(s.init.metadata as Record<string, unknown>, s.init.name, st.avoid, env.health?.(st.cluster) ?? null) ?? null;
}

/** Report a result of the stage's endpoint to the worker's outlier detection. */
export function report(s: SessionCore, st: Stage, ok: boolean): void {
  if (st.endpoint === null) return;
  if (ok) st.confirmed = true;
  s.init.env.endpointResult?.(st.cluster, st.endpoint.name, ok);
}

/** A datagram stage that has had its first reply is a success of its endpoint (reported once per connection). */
export function confirm(s: SessionCore, i: number): void {
  const st = s.stages[i] as Stage;
  if (st.confirmed || st.conn === null || st.conn.stats.rxPackets === 0) return;
  report(s, st, true);
  if (i === 1) s.replay = null;
}

/** {@link confirm} every upstream stage (a session that ends: a reply its hop has not reported yet). */
export function confirmAll(s: SessionCore): void {
  for (let i = 1; i < s.stages.length; i++) confirm(s, i);
}

/**
 * One connect attempt of stage `i` (phase `gen` of the stage): picks its endpoint (a rebuilt
 * session's old one), connects with the route's timeout and tells the session `connected` or
 * `connectFailed`. Counts the attempt (and a retry) on the cluster.
 */
export function attempt(s: SessionCore, i: number): void {
  const st = s.stages[i] as Stage;
  st.attempts++;
  st.timer = null;
  const gen = st.gen;
  const self = s.ctx.self;
  const cc = s.init.env.clusterCounters(st.cluster);
  if (cc !== undefined) {
    cc.attempts++;
    if (st.attempts > 1 || s.status === 'CONNECTED') cc.retries++;
  }
  const cluster = s.init.env.cluster(st.cluster);
  if (cluster === undefined) {
    // A cluster that does not exist (yet) is an ordinary failed attempt (l7mp §4.6).
    self.tell({ type: 'connectFailed', stage: i, gen, err: new L7Error(ErrorCode.ConfigUnknownRef, `Cannot find Cluster "${st.cluster}"`) });
    return;
  }
  const rb = s.rebuild;
  let info: SessionInfo = { name: s.init.name, metadata: s.init.metadata };
  if (rb !== null) {
    st.endpoint = { name: rb.endpoint ?? rb.remoteAddress, address: rb.remoteAddress, weight: 1 };
    info = { ...info, rebind: { localAddress: rb.localAddress, localPort: rb.localPort, remotePort: rb.remotePort } };
  } else {
    const ep = pickFor(s, st);
    st.endpoint = ep === null ? null : endpointInfo(ep);
  }
  if (cluster.connectNow !== undefined && rb === null && st.endpoint !== null) {
    // A connect that asks nothing of the endpoint (UDP): made now, no promise, timer or signal.
    let conn: Connection | null;
    try {
      conn = cluster.connectNow(info, st.endpoint);
    } catch (e) {
      self.tell({ type: 'connectFailed', stage: i, gen, err: asL7Error(e, ErrorCode.UpstreamConnect) });
      return;
    }
    if (conn !== null) {
      s.connected(i, conn, gen);
      return;
    }
  }
  const timeout = retryOf(s).timeout;
  const ac = new AbortController();
  st.abort = ac;
  const t = setTimeout(() => ac.abort(), timeout);
  const p = cluster.connect(info, st.endpoint, ac.signal).finally(() => clearTimeout(t));
  s.ctx.pipeToSelf(
    p,
    (conn) => ({ type: 'connected', stage: i, conn, gen }),
    (e) => ({
      type: 'connectFailed',
      stage: i,
      gen,
      err: ac.signal.aborted
        ? new L7Error(ErrorCode.UpstreamTimeout, `cluster "${st.cluster}": connect timed out after ${timeout} ms`, { cause: e })
        : asL7Error(e, ErrorCode.UpstreamConnect),
    }),
  );
}

/**
 * An attempt of stage `i` failed: count it, report the endpoint (a refused or timed-out connect),
 * and try again within the route's retry policy, else fail the session. A stale `gen` is ignored.
 */
export function onConnectFailed(s: SessionCore, i: number, err: L7Error, gen: number): void {
  const st = s.stages[i] as Stage;
  if (st.gen !== gen) return;
  st.abort = null;
  const cc = s.init.env.clusterCounters(st.cluster);
  if (cc !== undefined) cc.failures++;
  const failed = st.endpoint?.name;
  if (failed !== undefined && (err.code === ErrorCode.UpstreamConnect || err.code === ErrorCode.UpstreamTimeout)) {
    report(s, st, false);
    avoidEndpoint(st, failed);
  }
  if (s.rebuild !== null) {
    // The old local port is taken (or the endpoint is gone): a retry would not keep the 5-tuple.
    s.fail(new L7Error(err.code, `session ${s.init.name}: rebuild failed: ${err.message}`, { cause: err }));
    return;
  }
  const r = retryOf(s);
  // At setup, connect-failure/always allow num_retries more attempts; a reconnect phase
  // (disconnect/always) allows num_retries attempts in all (docs/l7mp-compat.md §4.6).
  const reconnecting = s.status === 'CONNECTED';
  const allowed = reconnecting ? r.num_retries : r.retry_on === 'connect-failure' || r.retry_on === 'always' ? r.num_retries + 1 : 1;
  if (st.attempts < allowed) {
    const g = st.gen;
    // Another endpoint to try: at once (Envoy retries on another host without waiting); the
    // same one again: `timeout` later.
    const next = failed === undefined ? null : pickFor(s, st);
    if (next !== null && next.name !== failed) s.ctx.self.tell({ type: 'retry', stage: i, gen: g });
    else st.timer = setTimeout(() => s.ctx.self.tell({ type: 'retry', stage: i, gen: g }), r.timeout);
    return;
  }
  s.fail(new L7Error(err.code, `Pipeline setup failed for session "${s.init.name}": ${err.message}`, { cause: err, status: 404 }));
}

