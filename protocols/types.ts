/**
 * The contract between the actor runtime and the protocols. A protocol is a folder under
 * protocols/ that exports one {@link ProtocolModule}, listed once in protocols/registry.ts; no code
 * switches on protocol names (Envoy's extension registry).
 *
 * Data path: a {@link Connection} is one side of a session (the downstream the listener accepted,
 * or one upstream a cluster opened). Connections never use Node streams or events on the hot
 * path: each gets one {@link ConnectionHandler} object, set once, whose `onData` is called per
 * datagram (datagram streams) or per read chunk (byte streams). Counters are plain fields.
 */
import type { L7Error } from '../runtime/common/errors.ts';
import type { Logger, RateLimitedLog } from '../runtime/common/log.ts';
import type { TSchema } from '@sinclair/typebox';
import type { MessagePort } from 'node:worker_threads';

/** Message boundaries kept (UDP, WebSocket, Echo) or not (TCP, Unix stream, Logger). */
export type StreamKind = 'datagram' | 'byte';

/** Session metadata, l7mp's schema (compat reference §3.1): `/IP/src_addr`, `/UDP/src_port`... */
export type Metadata = Record<string, unknown>;

/** Per-connection counters, incremented on the data path (plain fields, no allocation). */
export class ConnStats {
  /** Datagrams (or read chunks) received from the peer. */
  rxPackets = 0;
  /** Bytes received from the peer. */
  rxBytes = 0;
  /** Datagrams (or writes) sent to the peer. */
  txPackets = 0;
  /** Bytes sent to the peer. */
  txBytes = 0;
  /** Messages dropped by this connection (send on a closed socket, overflow, malformed). */
  drops = 0;
  /**
   * Datagrams whose send failed in the kernel, by errno (UDP and Unix datagram sockets): never
   * counted in tx. `metrics` reports them as drops with reason `emsgsize` (larger than the path
   * allows: 65507 bytes over IPv4, the socket's send buffer for Unix datagrams), `enobufs` (no
   * buffer space in the kernel), `econnrefused` (the connected peer's port or path is closed: an
   * earlier datagram drew an ICMP port unreachable) and `send_error` (any other errno).
   */
  dropEmsgsize = 0;
  dropEnobufs = 0;
  dropEconnrefused = 0;
  dropSendError = 0;

  /**
   * The outcome of one datagram send (a dgram send callback): tx on success, else a drop by
   * errno. Returns the errno name of a refused send (`ECONNREFUSED`: the peer's port is closed),
   * null when it was sent.
   */
  sendResult(err: Error | null | undefined, bytes: number | undefined): string | null {
    if (err === null || err === undefined) {
      this.txPackets++;
      this.txBytes += bytes ?? 0;
      return null;
    }
    const code = (err as NodeJS.ErrnoException).code;
    this.sendFailed(code);
    return code ?? '';
  }

  sendFailed(code: string | undefined): void {
    if (code === 'EMSGSIZE') this.dropEmsgsize++;
    else if (code === 'ENOBUFS') this.dropEnobufs++;
    else if (code === 'ECONNREFUSED') this.dropEconnrefused++;
    else this.dropSendError++;
  }
}

/**
 * The errno name (`EMSGSIZE`...) of an error that carries only the C library's text, as
 * `node-unix-socket` reports them ("Message too long"); undefined for any other text.
 */
export function errnoOfMessage(msg: string): string | undefined {
  if (/EMSGSIZE|Message too long/i.test(msg)) return 'EMSGSIZE';
  if (/ENOBUFS|No buffer space/i.test(msg)) return 'ENOBUFS';
  if (/ECONNREFUSED|Connection refused/i.test(msg)) return 'ECONNREFUSED';
  return undefined;
}

/** Receives what a {@link Connection} reads and its end. One object, set once per connection. */
export interface ConnectionHandler {
  /**
   * One datagram, or one chunk of a byte stream. Return true only if no reference to `data` is
   * kept after the call (it was copied, or written to the kernel: {@link Connection.sendReleased}):
   * a connection that reads into recycled buffers (stream sockets, protocols/stream/read-buffer.ts)
   * then reads into the same memory again. Anything else (void) hands the buffer over to the handler.
   */
  onData(data: Buffer): boolean | void;
  /** The connection's send buffer drained below its high-water mark (byte streams). */
  onDrain(): void;
  /**
   * The peer finished sending (a TCP/Unix FIN, or a virtual peer that ended); the connection can
   * still send. Byte streams and virtual clusters only; datagram connections never call it.
   */
  onEnd(): void;
  /** The connection closed: `null` for a normal end (FIN, close), an error otherwise. Called once. */
  onClose(err: L7Error | null): void;
}

/** One side of a session: a downstream accepted by a listener or an upstream opened by a cluster. */
export interface Connection {
  readonly kind: StreamKind;
  /**
   * True for a virtual stage that maps each message to at most one message (Echo, Logger,
   * JSONEncap...): it keeps whatever framing its input had, so it neither creates message
   * boundaries nor loses them. Optional, default false.
   */
  readonly passThrough?: boolean;
  readonly stats: ConnStats;
  /** Human-readable local and remote addresses, for the actor tree and logs. */
  readonly local: string;
  readonly remote: string;
  /**
   * Set the receiver. Data that arrived before a handler was set is held (bounded, see each
   * protocol) and delivered on this call, in order.
   */
  setHandler(h: ConnectionHandler): void;
  /**
   * Send one message (datagram) or chunk (byte stream). Returns false when the connection buffers
   * above its high-water mark: the caller pauses its source until `onDrain`. Never throws: a send
   * on a closed connection is dropped and counted.
   */
  send(data: Buffer): boolean;
  /**
   * Optional: true when no buffer passed to `send` is referenced by the connection any more (every
   * byte went to the kernel, or was dropped), so the caller may reuse the memory at once. Without
   * the method, a sent buffer is assumed held.
   */
  sendReleased?(): boolean;
  /** Stop reading from the peer (byte streams; a no-op for datagram sockets, which cannot push back). */
  pause(): void;
  resume(): void;
  /**
   * Half-close: finish our sending side after what is queued (FIN), keep reading. Returns false if
   * the protocol has no half-close (datagram sockets, WebSocket): the caller decides when to close.
   */
  end(): boolean;
  /** End gracefully (FIN / close the socket). Idempotent; `onClose(null)` follows unless already closed. */
  close(): void;
  /**
   * Optional, byte streams: close for good because the peer broke a limit (a header deadline):
   * what is queued is flushed, then the socket is destroyed whatever the peer does, so a peer that
   * never sends its FIN cannot keep it (nginx `reset_timedout_connection`). Without it, `close()`.
   * Idempotent; `onClose(null)` follows unless already closed.
   */
  abort?(): void;
  /**
   * Kernel offload (native-offload/): the fd of this connection's own connected datagram socket,
   * or -1 while it has none yet. Only plain UDP connections have the method; a session whose
   * every connection has it may be spliced in the kernel. Listener sockets never offer it.
   */
  spliceFd?(): number;
  /**
   * While the session is spliced, a socket error (ECONNREFUSED after an ICMP error) goes to this
   * hook instead of closing the connection; null (the default) gives errors back to the connection.
   */
  spliceErrorHook?: ((err: Error) => void) | null;
  /**
   * While spliced, JavaScript stops reading the socket (false); true reads again (the session went
   * back to userspace). Comes with {@link Connection.spliceFd}. Returns true if the socket was
   * stopped and has nothing queued to send, so it may leave the event loop's poll set
   * (`Splice.unpoll`).
   */
  spliceReading?(reading: boolean): boolean;
  /**
   * Kernel offload, a session's source only (`offload.establish`, protocols/schema.ts): the
   * session is spliced once this connection sent this many datagrams, with or without a reply (a
   * one-way flow never gets one). 0 or absent: only a reply establishes it.
   */
  readonly spliceAfter?: number;
  /**
   * Optional, datagram sockets a worker crash can rebuild (runtime/session-table.ts): the 5-tuple
   * of this connection now (null while it has none, e.g. a socket not yet connected). Another
   * worker binds `localAddress:localPort` and connects to `remoteAddress:remotePort` again, so
   * neither peer sees a change. Plain UDP connections have it.
   */
  rebuildTuple?(): SocketTuple | null;
  /**
   * Optional, downstream connections only: the session has connected every stage of its route.
   * Called once, before anything read from the upstream stages is sent to this connection. A
   * listener whose protocol answers a handshake (JSONSocket's 200 reply) answers from here.
   */
  onSessionConnected?(): void;
  /**
   * Optional, downstream connections only: the session failed before it connected (no route, a
   * stage that could not connect). `err.status` is l7mp's status (404 no route...). Called once,
   * just before the session closes this connection; a protocol that has an error reply (JSONSocket)
   * sends it from here.
   */
  onSessionFailed?(err: L7Error): void;
}

/** The addresses of one datagram connection (see {@link Connection.rebuildTuple}). */
export interface SocketTuple {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** A downstream served through the listening sockets (UDP `session_sockets: listener`). */
  readonly shared?: boolean;
}

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
   * closes the connections). Optional: a runtime without it gives protocols no child sessions.
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
   * an admin token only loopback peers are served (runtime/admin/server.ts).
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

/**
 * A counter a protocol's listener or cluster counts ({@link ListenerContext.count},
 * {@link ClusterContext.count}), declared once with the protocol so that metrics and docs read
 * them from the registry instead of knowing protocols (Envoy's stats declared per filter).
 */
export interface ProtocolEvent {
  /**
   * True: a message (or connection) dropped, exported as a drop reason
   * (`l7mp_listener_dropped_packets_total{reason}` / `l7mp_cluster_dropped_packets_total{reason}`);
   * false: an event (`l7mp_listener_events_total{event}` / `l7mp_cluster_events_total{event}`).
   */
  readonly drop: boolean;
  /** What it counts, one sentence. */
  readonly help: string;
}

/** A protocol's counters by name. */
export type ProtocolEvents = Readonly<Record<string, ProtocolEvent>>;

/**
 * A main-thread service a protocol needs (Unix datagram sockets must be owned by the main thread,
 * protocols/uds/dgram-host.ts): the runtime makes one host per process, and for each worker a
 * MessageChannel whose one port the host serves and whose other port the worker hands to
 * `worker` before it builds anything of the protocol.
 */
export interface ProtocolService {
  /** Main thread: the host, made once. */
  host(): ProtocolServiceHost;
  /** Worker: the port of this worker's channel to the host. */
  worker(port: MessagePort): void;
}

/** The main thread's side of a {@link ProtocolService}. */
export interface ProtocolServiceHost {
  /** Serve a worker's port. */
  attach(port: MessagePort): void;
  /** The worker is gone: free what it had and close the port. */
  detach(port: MessagePort): void;
}

/**
 * How l7mp's Kubernetes form of a spec (`{UDP: {port: 9001}}`, fleet/crd.ts) differs for this
 * protocol beyond the protocol key.
 */
export interface CrdHooks {
  /** Spec fields that hold another protocol's spec in k8s form (JSONSocket's `transport`). */
  readonly nestedSpecs?: readonly string[];
  /**
   * A cluster spec field that names its endpoint in k8s form (UnixDomainSocket's `filename`): it
   * becomes the cluster's one endpoint when it has none, and leaves the spec.
   */
  readonly endpointField?: string;
}

/**
 * A protocol as the runtime sees it: its name, its spec schemas, factories, counters and hooks.
 * Exported by each protocol's index.ts, made with `defineProtocol()` (protocols/core/define.ts),
 * which types every spec from its schema.
 *
 * `Spec` is the type the runtime passes specs as: it only has specs validated against the
 * protocol's own schema, which `defineProtocol` types. It is `any` while the UDP and TCP modules
 * are still written as plain objects (their factories take the spec's own type); once they use
 * `defineProtocol` it becomes `unknown` (issue 16 item 1).
 */
type Spec = any;

export interface ProtocolModule {
  /** The `spec.protocol` value, e.g. `UDP`. */
  readonly name: string;
  /** Stream kind of its connections. */
  readonly kind: StreamKind;
  /** Listener side, if the protocol can accept. */
  readonly listener?: {
    /** TypeBox/JSON schema of the listener `spec` (every field with description, default, unit). */
    readonly schema: TSchema;
    create(cfg: ListenerSpecContext<Spec>, ctx: ListenerContext): ListenerInstance;
    /**
     * Where the listener binds: `shared` listeners bind on every worker (SO_REUSEPORT); `single`
     * ones (Unix socket paths, UDP singleton) on one worker only.
     */
    placement(spec: Spec): 'shared' | 'single';
    /** Idle timeout of its sessions in ms (0 = none; stream protocols end on FIN). Default 0. */
    idleTimeoutMs?(spec: Spec): number;
    /**
     * True if its sessions have no end of their own (datagram peers: UDP, Unix datagram): while
     * the process drains, such a session ends once it has been quiet for the drain grace
     * (`DRAIN_QUIET_MS`, at most its idle timeout), so a drain finishes when the traffic stops.
     * Default false: sessions end by their protocol (FIN, a close frame, the response's end).
     */
    drainWhenQuiet?(spec: Spec): boolean;
    /**
     * The local addresses the listener binds: config validation rejects two listeners that would
     * bind the same one (SO_REUSEPORT would otherwise let them split the traffic silently).
     */
    binds?(spec: Spec): readonly ListenerBind[];
    /** Config-time checks beyond the schema; see the cluster side's `prepare`. */
    prepare?(spec: Spec, path: string): Spec;
    /** The listener events it counts ({@link ListenerContext.count}). */
    readonly events?: ProtocolEvents;
  };
  /** Cluster side, if the protocol can connect. */
  readonly cluster?: {
    readonly schema: TSchema;
    /** Virtual clusters (Echo, Discard, Logger) take no endpoints and ignore load balancing. */
    readonly virtual: boolean;
    /**
     * Config-time checks beyond the schema (run once on the main thread when a config is
     * validated, after the schema passed): e.g. that a module file exists and exports a
     * function. May return a normalized spec (absolute paths) that replaces the given one.
     * @throws L7Error `L7_ERR_CONFIG_INVALID` whose message starts with `<path>.<field>: `.
     */
    prepare?(spec: Spec, path: string): Spec;
    /**
     * Export the traffic of each live session stage through this cluster as l7mp's
     * `session_byte_counter_total` / `session_packet_counter_total{sessionName, clusterName}`
     * (the Metric cluster). Default false: session names are unbounded label values.
     */
    readonly sessionMetrics?: boolean;
    create(cfg: { name: string; spec: Spec }, ctx: ClusterContext): ClusterInstance;
    /** The cluster events it counts ({@link ClusterContext.count}). */
    readonly events?: ProtocolEvents;
  };
  /** A main-thread service its sockets need (Unix datagram sockets). */
  readonly service?: ProtocolService;
  /** Its Kubernetes (CRD) form, where it is more than `{<protocol>: <spec>}`. */
  readonly crd?: CrdHooks;
}
