/**
 * The l7mp config document (docs/l7mp-compat.md §1): `{admin, listeners, clusters, rulelists, rules,
 * routes}`. One schema, written with TypeBox so it is both JSON Schema (validated by ajv) and a
 * TypeScript type. Every field has a description, its default and its unit; `expect` is the phrase
 * validation errors use.
 *
 * Protocol `spec`s are checked here only for a `protocol` string; each protocol's own schema
 * (protocols/<name>/config.ts) validates the rest, so the error path names the exact field.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { LOG_LEVELS } from '../common/log.ts';
import { DEFAULT_FD_RESERVE } from '../common/fd-limit.ts';
import { DEFAULT_OVERLOAD_LAG_MS } from '../actors/overload.ts';

/** Default of `listeners[].options.max_sessions_per_source`. */
export const DEFAULT_MAX_SESSIONS_PER_SOURCE = 1024;
/** Default of `listeners[].options.session_rate` (new sessions/s of a listener, all workers). */
export const DEFAULT_SESSION_RATE = 10_000;
/** Default of `listeners[].options.source_session_rate` (sessions/s). */
export const DEFAULT_SOURCE_SESSION_RATE = 1000;
/** Default of `admin.drain_timeout_s`: how long a drain lets live sessions finish. Unit: s. */
export const DEFAULT_DRAIN_TIMEOUT_S = 30;
/** Largest `admin.drain_timeout_s` (and a drain request's `timeout_s`). Unit: s. */
export const MAX_DRAIN_TIMEOUT_S = 3600;


/** l7mp names: non-empty, no whitespace (slashes allowed: the k8s operator uses fqn names). */
export const Name = Type.String({ pattern: '^\\S+$', description: 'Unique name within its kind; no whitespace.', expect: 'a non-empty name without whitespace' });

const Spec = (what: string) =>
  Type.Object(
    { protocol: Type.String({ minLength: 1, description: `Protocol of the ${what}; selects the schema of the rest of spec.`, expect: 'a protocol name' }) },
    { additionalProperties: true, description: `${what} spec: protocol and its options.` },
  );

export const Endpoint = Type.Object(
  {
    name: Type.Optional(Name),
    spec: Type.Object(
      { address: Type.String({ minLength: 1, description: 'IP address or DNS name; for Unix socket clusters, the socket path.', expect: 'an address' }) },
      { additionalProperties: true },
    ),
    weight: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 1, description: 'Relative weight in ConsistentHash load balancing (l7mp reads it at the endpoint\'s top level).', expect: 'a number > 0' })),
  },
  { description: 'An upstream endpoint of a cluster.' },
);

export const LoadBalancer = Type.Object(
  {
    policy: Type.Union([Type.Literal('Trivial'), Type.Literal('ConsistentHash'), Type.Literal('HashRing'), Type.Literal('None')], {
      default: 'Trivial',
      description: 'Trivial: always the first endpoint. ConsistentHash (alias HashRing): weighted consistent hash of the metadata value at `key`.',
      expect: '"Trivial", "ConsistentHash", "HashRing" or "None"',
    }),
    key: Type.Optional(Type.String({ description: 'JSON-pointer-like path into session metadata hashed by ConsistentHash, e.g. /IP/src_addr. Default: the downstream address:port.' })),
  },
  { description: 'How a cluster picks an endpoint for a session stage.' },
);

/**
 * Passive outlier detection of a cluster's endpoints (Envoy `outlier_detection`, docs:
 * intro/arch_overview/upstream/outlier and config.cluster.v3.OutlierDetection). On by default.
 */
export const OutlierDetection = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ default: true, description: 'Eject endpoints that fail in a row. On by default (Envoy: off unless configured).' })),
    consecutive_failures: Type.Optional(
      Type.Integer({
        minimum: 1,
        default: 5,
        description: 'Consecutive failures that eject an endpoint: refused or timed-out connects, and errors (ICMP unreachable) on a datagram stage that never got a reply. A success (a stream connect, the first reply of a datagram stage) resets the count. Envoy: consecutive_local_origin_failure / consecutive_gateway_failure, default 5.',
        expect: 'an integer >= 1',
      }),
    ),
    base_ejection_time: Type.Optional(
      Type.Integer({ minimum: 1, default: 30000, description: 'An ejection lasts base_ejection_time times the number of times the endpoint was ejected in a row (Envoy base_ejection_time, 30 s). Unit: ms.', expect: 'an integer number of ms >= 1' }),
    ),
    max_ejection_time: Type.Optional(
      Type.Integer({ minimum: 1, default: 300000, description: 'Upper bound of one ejection (Envoy max_ejection_time, 300 s). Unit: ms.', expect: 'an integer number of ms >= 1' }),
    ),
    max_ejection_percent: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 100, default: 10, description: 'At most this share of the endpoints is ejected at once, but always at least one (Envoy max_ejection_percent, 10). Unit: percent.', expect: 'an integer 0..100' }),
    ),
    interval: Type.Optional(
      Type.Integer({ minimum: 1, default: 10000, description: 'The ejection multiplier goes down by one per interval an endpoint stays in (Envoy interval, 10 s). Unit: ms.', expect: 'an integer number of ms >= 1' }),
    ),
  },
  { description: 'Passive outlier detection: endpoints that fail in a row are left out of load balancing for a back-off. State is per worker thread.' },
);

/**
 * Active health checks of a cluster's endpoints (Envoy `health_checks`: tcp_health_check with
 * send/receive, docs: intro/arch_overview/upstream/health_checking). Optional: none by default.
 */
export const HealthCheck = Type.Object(
  {
    protocol: Type.Optional(
      Type.Union([Type.Literal('UDP'), Type.Literal('TCP')], {
        description: 'UDP: send `send` to address:port, healthy if a reply (containing `receive`, if set) comes back within `timeout`. TCP: connect (then, if `send` is set, write it and wait for `receive`). Default: UDP for UDP clusters, else TCP.',
        expect: '"UDP" or "TCP"',
      }),
    ),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Port to check. Default: the cluster\'s spec.port.', expect: 'an integer 1..65535' })),
    interval: Type.Optional(Type.Integer({ minimum: 10, default: 5000, description: 'Time between two checks of one endpoint. Unit: ms.', expect: 'an integer number of ms >= 10' })),
    timeout: Type.Optional(Type.Integer({ minimum: 1, default: 1000, description: 'A check with no (matching) answer within this time fails. Unit: ms.', expect: 'an integer number of ms >= 1' })),
    unhealthy_threshold: Type.Optional(Type.Integer({ minimum: 1, default: 3, description: 'Consecutive failed checks that mark a healthy endpoint unhealthy.', expect: 'an integer >= 1' })),
    healthy_threshold: Type.Optional(Type.Integer({ minimum: 1, default: 2, description: 'Consecutive passed checks that mark an unhealthy endpoint healthy again.', expect: 'an integer >= 1' })),
    send: Type.Optional(Type.String({ default: '', description: 'Probe payload (UDP: the datagram; TCP: written after the connect, nothing when empty).' })),
    receive: Type.Optional(Type.String({ description: 'The answer must contain these bytes (Envoy fuzzy match, one block). Absent: any answer passes.' })),
    encoding: Type.Optional(Type.Union([Type.Literal('utf8'), Type.Literal('hex')], { default: 'utf8', description: 'How `send` and `receive` are written.', expect: '"utf8" or "hex"' })),
  },
  { description: 'Active health checks: run once per process (on the main thread), results pushed to every worker. Endpoints start healthy.' },
);

export const Cluster = Type.Object(
  {
    name: Name,
    spec: Spec('cluster'),
    endpoints: Type.Optional(Type.Array(Endpoint, { description: 'Upstream endpoints (none for virtual clusters such as Echo).' })),
    loadbalancer: Type.Optional(LoadBalancer),
    outlier_detection: Type.Optional(OutlierDetection),
    health_check: Type.Optional(HealthCheck),
    options: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'Accepted for l7mp compatibility; unused.' })),
  },
  { description: 'A cluster: where a route stage connects to.' },
);

/** An inline cluster: like a cluster, but the name may be generated. */
const InlineCluster = Type.Object({ ...Cluster.properties, name: Type.Optional(Name) }, { description: Cluster.description });
const ClusterRef = Type.Union([Name, InlineCluster], { expect: 'a cluster name or an inline cluster object' });

export const Retry = Type.Object(
  {
    retry_on: Type.Optional(
      Type.Union([Type.Literal('never'), Type.Literal('connect-failure'), Type.Literal('disconnect'), Type.Literal('always')], {
        default: 'never',
        description: 'When to retry a stage: never, connect-failure (at setup), disconnect (after it was up), always (both).',
        expect: '"never", "connect-failure", "disconnect" or "always"',
      }),
    ),
    num_retries: Type.Optional(Type.Integer({ minimum: 0, default: 1, description: 'Retries per stage.', expect: 'an integer >= 0' })),
    timeout: Type.Optional(Type.Integer({ minimum: 1, default: 2000, description: 'Each connect attempt times out after this long, and attempts are this far apart. Unit: ms.', expect: 'an integer number of ms >= 1' })),
  },
  { description: 'Retry policy of a route (docs/l7mp-compat.md §4.6). Missing fields take their defaults (l7mp did not merge them: bug B14).' },
);

export const Route = Type.Object(
  {
    name: Type.Optional(Name),
    destination: Type.Optional(ClusterRef),
    cluster: Type.Optional(ClusterRef),
    ingress: Type.Optional(Type.Array(ClusterRef, { description: 'Clusters traversed from the downstream towards the destination, in order.' })),
    egress: Type.Optional(Type.Array(ClusterRef, { description: 'Clusters traversed from the destination back to the downstream, in order.' })),
    retry: Type.Optional(Retry),
  },
  { description: 'A route: the destination cluster and optional ingress/egress service chains. `cluster` is an old alias of `destination`.' },
);
const RouteRef = Type.Union([Name, Route], { expect: 'a route name or an inline route object' });

export const Rewrite = Type.Object({
  path: Type.String({ minLength: 1, description: 'Metadata path to set, e.g. /HTTP/headers/x-id.' }),
  value: Type.Unknown({ description: 'Value to write (objects are deep-copied).' }),
});

export const Rule = Type.Object(
  {
    name: Type.Optional(Name),
    match: Type.Optional(
      Type.Union([Type.String(), Type.Object({}, { additionalProperties: true })], {
        description: 'A JSONPredicate over session metadata; missing or a string means match everything.',
        expect: 'a JSONPredicate object or a string',
      }),
    ),
    action: Type.Object(
      {
        rewrite: Type.Optional(Type.Array(Rewrite, { description: 'Metadata rewrites applied before routing.' })),
        route: Type.Optional(RouteRef),
        apply: Type.Optional(Type.String({ minLength: 1, description: 'Jump to this rulelist instead of routing.' })),
      },
      { description: 'What a matching rule does.' },
    ),
  },
  { description: 'A rule: a match and an action.' },
);
const RuleRef = Type.Union([Name, Rule], { expect: 'a rule name or an inline rule object' });

export const RuleList = Type.Object(
  { name: Name, rules: Type.Array(RuleRef, { description: 'Rules in order; the first match wins.' }) },
  { description: 'An ordered list of rules.' },
);

export const Listener = Type.Object(
  {
    name: Name,
    spec: Spec('listener'),
    rules: Type.Union([Name, Type.Array(RuleRef)], {
      description: 'A rulelist name, or inline rules (they become the rulelist `<listener>-RuleList-<N>`).',
      expect: 'a rulelist name or an array of rules',
    }),
    options: Type.Optional(
      Type.Object(
        {
          track: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'Seconds an ended session stays listed. Unit: s.', expect: 'an integer number of seconds >= 0' })),
          max_sessions: Type.Optional(
            Type.Integer({
              minimum: 1,
              description:
                'Admission: concurrent sessions (connections of a stream listener) of this listener in the whole process, over all workers. A new one past it is refused: its datagram dropped, its connection closed (l7mp_listener_dropped_packets_total{reason="listener_sessions"}). Default: the process-wide cap (admin.max_sessions). HAProxy frontend maxconn.',
              expect: 'an integer >= 1',
            }),
          ),
          session_rate: Type.Optional(
            Type.Number({
              exclusiveMinimum: 0,
              default: DEFAULT_SESSION_RATE,
              description:
                'Admission: new sessions per second the listener takes, all sources and workers together (each worker a token bucket of rate / workers, one second deep). Past it: reason="listener_rate". Creating sessions is the expensive part of a flood: a rate below what the machine can create keeps CPU for the sessions it carries. Unit: sessions/s. HAProxy rate-limit sessions.',
              expect: 'a number > 0',
            }),
          ),
          max_sessions_per_source: Type.Optional(
            Type.Integer({
              minimum: 1,
              default: DEFAULT_MAX_SESSIONS_PER_SOURCE,
              description:
                'Admission: concurrent sessions of one source IP address (any port) on this listener, counted per worker thread (a UDP source spread over its ports may reach it on each worker). Past it: reason="source_sessions". nginx limit_conn with $binary_remote_addr.',
              expect: 'an integer >= 1',
            }),
          ),
          source_session_rate: Type.Optional(
            Type.Number({
              exclusiveMinimum: 0,
              default: DEFAULT_SOURCE_SESSION_RATE,
              description:
                'Admission: new sessions per second one source IP address may open on this listener (token bucket per worker thread, burst `source_session_burst`). Past it: reason="source_rate". Unit: sessions/s. nginx limit_req, HAProxy sc_conn_rate.',
              expect: 'a number > 0',
            }),
          ),
          source_session_burst: Type.Optional(
            Type.Integer({
              minimum: 1,
              description: 'Admission: the token bucket depth of `source_session_rate` (sessions a source may open at once). Default: 2 x source_session_rate, at least 1.',
              expect: 'an integer >= 1',
            }),
          ),
        },
        { additionalProperties: true, description: 'Listener options. Admission limits apply to every protocol; see README, Limits.' },
      ),
    ),
  },
  { description: 'A listener: accepts downstream sessions and routes them by its rules.' },
);

export const Admin = Type.Object(
  {
    log_level: Type.Optional(
      Type.Union(
        LOG_LEVELS.map((l) => Type.Literal(l)),
        { default: 'info', description: 'Log level (`-l` overrides).', expect: LOG_LEVELS.map((l) => `"${l}"`).join(', ') },
      ),
    ),
    log_file: Type.Optional(Type.String({ description: 'stdout, stderr or a path. Logs go to stderr.' })),
    access_log_path: Type.Optional(Type.String({ minLength: 1, description: 'File to which every worker appends one JSON line per ended session (see README, access log).' })),
    strict: Type.Optional(Type.Boolean({ default: false, description: 'Strict validation: unknown fields are errors (`-s`).' })),
    offload: Type.Optional(Type.Union([Type.Literal('init'), Type.Literal('no_init'), Type.Literal('disable'), Type.Boolean()], { description: 'Kernel offload (`-o`).', expect: '"init", "no_init" or "disable"' })),
    steering: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          'SO_REUSEPORT steering of UDP listeners: an SK_REUSEPORT BPF program sends each new peer to the worker that owns it on the ring, with `-o init|no_init` or more than one worker, where the offload addon and CAP_BPF allow; steered workers answer their peers from the listening sockets (UDP `session_sockets` defaults to listener). false: never; the kernel picks a worker by its own hash, and workers keep connected session sockets and hand new peers to each other. Read at start.',
      }),
    ),
    offload_ifs: Type.Optional(Type.Union([Type.Array(Type.String()), Type.String()], { description: 'Interfaces to offload on.' })),
    address: Type.Optional(Type.String({ minLength: 1, default: '127.0.0.1', description: 'Address of the admin HTTP server (REST API, actor tree, metrics); `--admin` overrides.' })),
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Port of the admin HTTP server; no admin server when unset (and no `--admin`). 0 picks a free port.', expect: 'an integer 0..65535' })),
    max_sessions: Type.Optional(
      Type.Integer({
        minimum: 1,
        description:
          'Admission: concurrent sessions of the whole process, all listeners. Default and upper bound: (open-file soft limit - fd_reserve) / the fewest file descriptors a session of the config holds: 1 where a listener answers from its listening sockets and no session is spliced (UDP with one worker and no kernel offload, by default: the upstream socket alone), else 2 (a socket of its own and one upstream); a larger value is lowered to it. Besides, each session is charged the fds it holds (its listener\'s 1 or 2) against open-file soft limit - fd_reserve (l7mp_process_session_fds). Past either: l7mp_listener_dropped_packets_total{reason="process_sessions"}.',
        expect: 'an integer >= 1',
      }),
    ),
    fd_reserve: Type.Optional(
      Type.Integer({
        minimum: 16,
        default: DEFAULT_FD_RESERVE,
        description: 'File descriptors the sessions may not take (their budget is the open-file soft limit less this): left for the admin server, listeners, logs, chains and the offload. Unit: fds.',
        expect: 'an integer >= 16',
      }),
    ),
    overload_lag_ms: Type.Optional(
      Type.Number({
        minimum: 0,
        default: DEFAULT_OVERLOAD_LAG_MS,
        description:
          'Overload guard: a worker whose event loop is later than this refuses new datagram sessions (their datagrams dropped, reason="overload") until it catches up, so a flood of new peers cannot starve the sessions it carries. 0 turns it off. Unit: ms.',
        expect: 'a number of ms >= 0',
      }),
    ),
    drain_timeout_s: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: MAX_DRAIN_TIMEOUT_S,
        default: DEFAULT_DRAIN_TIMEOUT_S,
        description:
          'Drain (SIGTERM, `POST /api/v1/admin {"drain": ...}`, the fleet\'s drain command): how long live sessions may finish after the node stops taking new ones; those left then are cut. 0 ends them at once (SIGTERM then stops as SIGINT does). Unit: s.',
        expect: `a number of seconds 0..${MAX_DRAIN_TIMEOUT_S}`,
      }),
    ),
    watch_config: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Watch the `-c` file (`--watch-config`) and reload it when its content changes, as SIGHUP does (debounced; a bad file is refused and the running config stays). Read at start; ignored on a fleet member.',
        expect: 'true or false',
      }),
    ),
    insecure: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Serve the admin API without a token beyond loopback (`--admin-insecure`): allows a non-loopback admin address, and L7mpController/Prometheus requests from non-loopback peers. Without it and without a token, a non-loopback admin bind fails the start and such requests get 403.',
        expect: 'true or false',
      }),
    ),
  },
  { additionalProperties: true, description: 'Process-wide settings.' },
);

export const ConfigDocument = Type.Object(
  {
    admin: Type.Optional(Admin),
    listeners: Type.Optional(Type.Array(Listener)),
    clusters: Type.Optional(Type.Array(Cluster)),
    rulelists: Type.Optional(Type.Array(RuleList)),
    // A top-level rule is a rule whose name is required. One object schema, not an intersection:
    // strict mode closes every object schema, and the halves of an intersection would reject each other's fields.
    rules: Type.Optional(Type.Array(Type.Object({ ...Rule.properties, name: Name }, { description: Rule.description }))),
    routes: Type.Optional(Type.Array(Route)),
    sessions: Type.Optional(Type.Unknown({ description: 'Ignored on load (l7mp).' })),
    endpoints: Type.Optional(Type.Unknown({ description: 'Ignored on load (l7mp).' })),
  },
  { description: 'An l7mp config document.' },
);

export type ConfigDocument = Static<typeof ConfigDocument>;
export type ListenerDoc = Static<typeof Listener>;
export type ClusterDoc = Static<typeof InlineCluster>;
export type RouteDoc = Static<typeof Route>;
export type RuleDoc = Static<typeof Rule>;
export type EndpointDoc = Static<typeof Endpoint>;
export type RetryDoc = Static<typeof Retry>;
export type OutlierDetectionDoc = Static<typeof OutlierDetection>;
export type HealthCheckDoc = Static<typeof HealthCheck>;

/** For validators: every schema of this file and the protocols carries TSchema. */
export type { TSchema };
