/**
 * The l7mp config document (compat reference §1): `{admin, listeners, clusters, rulelists, rules,
 * routes}`. One schema, written with TypeBox so it is both JSON Schema (validated by ajv) and a
 * TypeScript type. Every field has a description, its default and its unit; `expect` is the phrase
 * validation errors use.
 *
 * Protocol `spec`s are checked here only for a `protocol` string; each protocol's own schema
 * (protocols/<name>/config.ts) validates the rest, so the error path names the exact field.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { LOG_LEVELS } from '../runtime/common/log.ts';

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

export const Cluster = Type.Object(
  {
    name: Name,
    spec: Spec('cluster'),
    endpoints: Type.Optional(Type.Array(Endpoint, { description: 'Upstream endpoints (none for virtual clusters such as Echo).' })),
    loadbalancer: Type.Optional(LoadBalancer),
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
  { description: 'Retry policy of a route (compat reference §4.6). Missing fields take their defaults (l7mp did not merge them: bug B14).' },
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
        { track: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'Seconds an ended session stays listed. Unit: s.', expect: 'an integer number of seconds >= 0' })) },
        { additionalProperties: true },
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
    offload_ifs: Type.Optional(Type.Union([Type.Array(Type.String()), Type.String()], { description: 'Interfaces to offload on.' })),
    address: Type.Optional(Type.String({ minLength: 1, default: '127.0.0.1', description: 'Address of the admin HTTP server (REST API, actor tree, metrics); `--admin` overrides.' })),
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Port of the admin HTTP server; no admin server when unset (and no `--admin`). 0 picks a free port.', expect: 'an integer 0..65535' })),
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

/** For validators: every schema of this file and the protocols carries TSchema. */
export type { TSchema };
