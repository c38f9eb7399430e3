/**
 * The contract between the actor runtime and the protocols. A protocol is a folder under
 * protocols/ that exports one {@link ProtocolModule}, listed once in protocols/registry.ts; no code
 * switches on protocol names (Envoy's extension registry).
 *
 * Data path: a {@link Connection} is one side of a session (the downstream the listener accepted,
 * or one upstream a cluster opened). Connections never use Node streams or events on the hot
 * path: each gets one {@link ConnectionHandler} object, set once, whose `onData` is called per
 * datagram (datagram streams) or per read chunk (byte streams). Counters are plain fields.
 *
 * The contract is in parts under protocols/contract/ (connection.ts: the data path; listener.ts;
 * cluster.ts), all re-exported here, so a protocol imports `../types.ts` only; this file keeps the
 * {@link ProtocolModule} a protocol exports.
 */
import type { TSchema } from '@sinclair/typebox';
import type { MessagePort } from 'node:worker_threads';
import type { StreamKind } from './contract/connection.ts';
import type { ListenerBind, ListenerContext, ListenerInstance, ListenerSpecContext } from './contract/listener.ts';
import type { ClusterContext, ClusterInstance } from './contract/cluster.ts';

export * from './contract/connection.ts';
export * from './contract/listener.ts';
export * from './contract/cluster.ts';

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
 * protocol's own schema, which `defineProtocol` types for the protocol's own hooks, so the
 * contract itself needs nothing of a spec (`unknown`).
 */
type Spec = unknown;

/** What a protocol may need to know of the process it runs in. */
export interface ProcessShape {
  /** Worker threads. */
  readonly workers: number;
  /** Kernel offload is asked for (`-o init|no_init`, admin.offload), available or not. */
  readonly offload: boolean;
  /**
   * UDP listeners' datagrams are steered to the worker that owns their peer on the ring (an
   * SO_REUSEPORT program is loaded; runtime/main/steering.ts). Default false.
   */
  readonly steered?: boolean;
}

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
     * File descriptors one session of this listener holds for its downstream; its upstream holds
     * its own. Default 1 (a connection's socket); 0 when sessions are served through the
     * listening sockets (UDP `session_sockets: listener`, a UDP singleton). The process session
     * cap divides the open-file limit by the most a session of any listener holds, plus one.
     */
    downstreamFds?(spec: Spec, env: ProcessShape): number;
    /**
     * The local addresses the listener binds: config validation rejects two listeners that would
     * bind the same one (SO_REUSEPORT would otherwise let them split the traffic silently).
     */
    binds?(spec: Spec): readonly ListenerBind[];
    /** Config-time checks beyond the schema; see the cluster side's `prepare`. */
    prepare?(spec: Spec, path: string): Spec;
    /** The listener events it counts ({@link ListenerContext.count}). */
    readonly events?: ProtocolEvents;
    /**
     * True if its listeners start child sessions ({@link ListenerContext.spawnChild}, e.g. RTSP's
     * media sessions): the runtime then keeps each session's actor for its connection. Default false.
     */
    readonly spawnsChildren?: boolean;
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
