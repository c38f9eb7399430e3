/**
 * The listener half of the protocol contract (protocols/types.ts re-exports it): what a listener
 * instance does on one worker, and what it gets from that worker (accepting sessions, admission,
 * the ring, hand-offs, child sessions).
 */
import type { Logger, RateLimitedLog } from '../../common/log.ts';
import type { Connection, Metadata } from './connection.ts';


/** A downstream a listener recreated for a session rebuilt after its worker died ({@link ListenerInstance.adopt}). */
export interface AdoptedDownstream {
  readonly conn: Connection;
  readonly metadata: Metadata;
  /** The l7mp session name (a new sequence number). */
  readonly name: string;
}

/** What a listener gets from the worker that hosts it. */
export interface ListenerContext {
  /** This worker's slot (0..N-1). */
  readonly slot: number;
  /** Worker threads of the process (default 1). */
  readonly workers?: number;
  /** Kernel offload is asked for (`-o init|no_init`, admin.offload), available or not (default false). */
  readonly offload?: boolean;
  /** Datagrams reach the worker that owns their peer on the ring (SO_REUSEPORT steering; default false). */
  readonly steered?: boolean;
  readonly log: Logger;
  readonly rateLog: RateLimitedLog;
  /**
   * A new downstream: the listener hands its connection and metadata to the runtime, which starts
   * a session actor that routes and owns it. `name` is the l7mp session name (e.g.
   * `UDP:1.2.3.4:5000-0.0.0.0:9001-0`); the runtime makes it unique.
   */
  accept(conn: Connection, metadata: Metadata, name: string): void;
  /**
   * Admission control (README, Limits): may a new session from `source` (an IP address; undefined
   * for address-less peers such as Unix sockets) be accepted now? A datagram listener asks before
   * it allocates anything for a new peer; on false the runtime has already counted the refusal
   * under its reason and logged it (rate-limited), and the listener drops the datagram. `accept`
   * applies the same check to every protocol: a connection past a limit is closed there.
   */
  admit(source: string | undefined): boolean;
  /**
   * Datagram listeners: the worker slot that owns the session key (peer `address:port`) on the
   * consistent hash ring of live workers.
   */
  ownerOf(key: string): number;
  /**
   * Datagram listeners: send the first datagram(s) of a peer this worker does not own to its owner
   * (a msgpack envelope over a MessagePort). Returns false if the owner is unreachable; the caller
   * then serves the peer itself.
   */
  handoff(slot: number, h: DatagramHandoff): boolean;
  /** A listener-level counter (malformed, filtered, handoffs...), aggregated in metrics. */
  count(counter: string, n?: number): void;
  /**
   * The next session sequence number of this listener, unique across workers (slot + k * workers),
   * for l7mp's session names (`...-<n>`).
   */
  nextSessionSeq(): number;
  /**
   * Start a session between two connections the protocol opened itself, as a child of the session
   * that owns `parent` (a downstream this listener accepted): no routing, `child.upstream` is its
   * one destination stage. The child is a session like any other (idle timeout, metrics, access
   * log, kernel offload when both connections are plain UDP sockets) and ends with its parent.
   * Used by RTSP for its RTP/RTCP pinholes. Returns null if the parent session is gone (the caller
   * closes the connections), or if the protocol does not declare `listener.spawnsChildren`.
   * Optional: a runtime without it gives protocols no child sessions.
   */
  spawnChild?(parent: Connection, child: ChildSessionSpec): ChildSession | null;
}

/** A session a protocol starts under another ({@link ListenerContext.spawnChild}). */
export interface ChildSessionSpec {
  /** Session name (made unique among the parent's children). */
  name: string;
  /** Its downstream (stage 0). */
  source: Connection;
  /** Its destination stage, already connected. */
  upstream: Connection;
  /** Shown as the destination stage's cluster name (actor tree, metrics, access log). */
  cluster: string;
  metadata: Metadata;
  /** 0 = none. Unit: ms. */
  idleTimeoutMs: number;
}

/** Handle of a child session. */
export interface ChildSession {
  /** End it (idempotent): its connections are closed. */
  stop(): void;
}

/** A datagram handed from the worker that received it to the worker that owns its session. */
export interface DatagramHandoff {
  /** Listener name. */
  listener: string;
  /** Peer address and port. */
  address: string;
  port: number;
  /** The datagram. */
  data: Uint8Array;
}

/** A local address a listener binds: an IP transport and port, or a Unix socket path. */
export type ListenerBind = { transport: 'tcp' | 'udp'; address: string; port: number } | { transport: 'unix'; path: string };

/** A listener instance on one worker: it binds, accepts, and closes. */
export interface ListenerInstance {
  /** Bind. Rejects with an L7Error (code `L7_ERR_LISTENER_BIND`) naming the address. */
  start(): Promise<void>;
  /** Stop accepting and release the address (a Unix socket file is removed). Idempotent. */
  close(): Promise<void>;
  /**
   * Optional: the process drains (SIGTERM, a drain request). Stop taking new sessions but keep the
   * live ones: a stream server stops listening (connections it has stay; new ones are refused by
   * the kernel), an HTTP server answers what is under way with `Connection: close` and closes its
   * idle keep-alive connections. Datagram listeners need none: their socket stays open for the
   * live sessions, and `ctx.admit` refuses new peers while draining. One way (there is no undrain);
   * idempotent; never throws.
   */
  drain?(): void;
  /** Datagram listeners: a datagram another worker handed to this one. */
  onHandoff?(h: DatagramHandoff): void;
  /**
   * Datagram listeners: recreate the downstream of peer `address:port` whose session lived on a
   * worker that died (runtime/session-table.ts). `shared` is the session's socket mode then; the
   * peer's datagrams reach the returned connection from this call on (a connected socket opens
   * asynchronously, meanwhile they arrive through the listener). Null if the listener cannot (it
   * is closing, the peer already has a session here, the mode changed).
   */
  adopt?(address: string, port: number, shared: boolean): AdoptedDownstream | null;
  /**
   * Datagram listeners in a SO_REUSEPORT group: the listening socket's fd, which the runtime puts
   * in the group's steering socket array (this worker's slot), or -1 while it has none.
   */
  steerFd?(): number;
  /**
   * The ring of live workers changed (one died, or came back): `ctx.ownerOf` answers by the new
   * ring from now on. Called before the steering moves the peers' datagrams to their new owners.
   */
  onRingChange?(): void;
  /** For the actor tree: bound addresses and the like. */
  describe(): Record<string, unknown>;
}

/** A listener's config as the protocol sees it: validated and frozen. */
export interface ListenerSpecContext<S> {
  /** Listener name. */
  readonly name: string;
  /** The validated `spec` (its protocol's schema). */
  readonly spec: S;
}
