/**
 * The cluster half of the protocol contract (protocols/types.ts re-exports it): what a cluster
 * instance does on one worker (open upstream connections for sessions), and what it gets from
 * that worker (the ring, messages to its peers on other workers, the admin API).
 */
import type { Logger, RateLimitedLog } from '../../common/log.ts';
import type { Connection, Metadata } from './connection.ts';

/** A session's view passed to a cluster when it opens an upstream connection. */
export interface SessionInfo {
  readonly name: string;
  readonly metadata: Metadata;
  /**
   * A session rebuilt after its worker died: bind this local address and port, and connect to
   * the endpoint's address at `remotePort`, so that the endpoint sees the same source (datagram
   * clusters with {@link Connection.rebuildTuple}; others ignore it).
   */
  readonly rebind?: { readonly localAddress: string; readonly localPort: number; readonly remotePort: number };
}

/** An endpoint as a cluster sees it. */
export interface EndpointInfo {
  readonly name: string;
  readonly address: string;
  readonly weight: number;
}

/** A cluster instance on one worker: it opens upstream connections for sessions. */
export interface ClusterInstance {
  /**
   * Open a connection for `session` to `endpoint` (null for virtual clusters). Resolves when the
   * connection is ready to carry data; rejects with an L7Error (`L7_ERR_UPSTREAM_CONNECT`). The
   * caller enforces timeouts and aborts with `signal`: on abort the protocol releases whatever it
   * opened.
   */
  connect(session: SessionInfo, endpoint: EndpointInfo | null, signal: AbortSignal): Promise<Connection>;
  /**
   * Open the connection at once, for clusters whose connect asks nothing of the endpoint (UDP:
   * connect(2) only records the peer). Returns it ready to carry data, or null when it cannot be
   * made at once (a name to resolve, a rebuilt session's old port): then {@link connect} is used.
   * Throws an L7Error (`L7_ERR_UPSTREAM_CONNECT`) on failure, having released what it opened.
   * A new session's upstream then costs no promise, timer or abort signal.
   */
  connectNow?(session: SessionInfo, endpoint: EndpointInfo): Connection | null;
  /** Release shared resources. Idempotent. */
  close(): void;
  /**
   * A message from the cluster of the same name on another worker ({@link ClusterContext.sendPeer}),
   * for clusters whose state spans workers (Sync). Data path: never throws; drop and count instead.
   */
  onPeerMessage?(from: number, msg: unknown): void;
  /** The ring of live workers changed (a worker died or came back): `live` are the live slots. */
  onRingChange?(live: readonly number[]): void;
}

/** A request to the process's admin API (REST API, metrics), made from a worker. */
export interface AdminCall {
  method: string;
  /** Path and query string, e.g. `/api/v1/listeners?recursive=true`. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: Uint8Array;
  /**
   * The downstream peer's IP address (the session's `IP.src_addr`; '' when it has none). Without
   * an admin token only loopback peers are served (runtime/main/admin/server.ts).
   */
  peer?: string;
}

/** The admin API's answer to an {@link AdminCall}. */
export interface AdminAnswer {
  status: number;
  statusMessage: string;
  headers: Record<string, string>;
  body: Uint8Array;
}

/** What a cluster gets from the worker. */
export interface ClusterContext {
  readonly slot: number;
  readonly log: Logger;
  readonly rateLog: RateLimitedLog;
  /** The owner slot of `key` on the consistent hash ring of live workers (this slot if none is live). */
  ownerOf(key: string): number;
  /**
   * Send `msg` (plain data: msgpack-encodable, Uint8Array for bytes) to the cluster of the same
   * name on worker `slot`, over the workers' MessagePort mesh; it arrives at that instance's
   * {@link ClusterInstance.onPeerMessage}, in order per pair of workers. Returns false if that
   * worker is unreachable (the caller counts a drop).
   */
  sendPeer(slot: number, msg: unknown): boolean;
  /** A cluster-level counter (drops, events), aggregated in metrics as `l7mp_cluster_events_total`. */
  count(counter: string, n?: number): void;
  /**
   * Serve a request with the process's admin API, which lives on the main thread (the
   * L7mpController and Prometheus clusters). Never rejects: failures come back as l7mp error
   * answers (503 while the API is not up yet).
   */
  admin(call: AdminCall): Promise<AdminAnswer>;
}
