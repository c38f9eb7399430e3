/**
 * l7mp's dumps of the REST API (docs/l7mp-compat.md §1; runtime/main/admin/api-v1.ts serves them): the
 * shape of each object kind, built from one config snapshot, and of a session, built from its
 * node in the actor tree. `recursive` expands references (§2.1).
 */
import fs from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { protocol } from '../../../protocols/registry.ts';
import type { ActorNode } from '../../../actors/tree.ts';
import type { ClusterConfig, ConfigSnapshot, EndpointConfig, HealthCheckConfig, ListenerConfig, OutlierDetectionConfig, RouteConfig, RuleConfig, RuleListConfig } from '../../../cluster-config/snapshot.ts';
import { DEFAULT_OUTLIER_DETECTION } from '../../../cluster-config/snapshot.ts';
import type { ObjectKind } from '../../../cluster-config/store.ts';

/** A missing object in a recursive dump (l7mp's marker). */
export const stale = (name: string): string => `${name}:<STALE>`;

let version: string | undefined;
/** Our package version (l7mp showed `0.5.7 [git sha] [date]`). */
function packageVersion(): string {
  if (version === undefined) {
    try {
      version = String((JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown }).version ?? 'unknown');
    } catch {
      version = 'unknown';
    }
  }
  return version;
}

/** `GET /api/v1/admin` (docs/l7mp-compat.md §1.1). `offload` is whether the kernel offload engine runs. */
export interface AdminDump {
  log_level: string;
  strict: boolean;
  offload: boolean;
  version: string;
  log_file?: string;
  access_log_path?: string;
  address?: string;
  port?: number;
  /** Admission limits, as set (README, Limits). */
  max_sessions?: number;
  fd_reserve?: number;
  overload_lag_ms?: number;
  /** How long a drain lets live sessions finish, s (set: the configured value; default 30). */
  drain_timeout_s?: number;
}

/** `{name, spec, weight}` (§1.4); a stage's endpoint in a session dump has no weight. */
export interface EndpointDump {
  name: string;
  spec: Record<string, unknown>;
  weight?: number;
}

/** `{name, spec, endpoints: <count> | [endpoint dump], loadbalancer}` (§1.3). */
export interface ClusterDump {
  name: string;
  spec: Record<string, unknown>;
  endpoints: number | EndpointDump[];
  loadbalancer: { policy: string; key?: string };
  /** Only when it differs from the defaults (l7mp dumps stay as they were). */
  outlier_detection?: OutlierDetectionConfig;
  /** Only when configured. */
  health_check?: HealthCheckConfig;
}

/** `{name, destination, ingress, egress, retry}` (§1.7); recursive: cluster dumps. */
export interface RouteDump {
  name: string;
  destination: string | ClusterDump;
  ingress: Array<string | ClusterDump>;
  egress: Array<string | ClusterDump>;
  retry: RouteConfig['retry'];
}

/** `{name, match, action}` (§1.6); a wildcard match dumps as `{"match": "*"}`. */
export interface RuleDump {
  name: string;
  match: Record<string, unknown>;
  action: { rewrite?: RuleConfig['action']['rewrite']; route?: string | RouteDump; apply?: string };
}

/** `{name, spec, rules: <rulelist name> | [rule dump] | "<name>:<STALE>", options}` (§1.2). */
export interface ListenerDump {
  name: string;
  spec: Record<string, unknown>;
  rules: string | Array<RuleDump | string>;
  options: ListenerConfig['options'];
}

/** One stage of a session dump: the cluster, the endpoint it reached, and its status. */
export interface StageDump {
  origin: string;
  /** `{name, spec}` of the endpoint, the virtual endpoint of a virtual cluster, or `"<INVALID>"` while none. */
  endpoint: EndpointDump | '<INVALID>';
  /** INIT (connecting), CONNECTED, DISCONNECTED (lost, may be retried), END (session ending). */
  status: string;
  /** Our addition: the peer address, and packets each way on this stage. */
  remote: string | null;
  stats: { tx_packets: number; rx_packets: number };
}

/**
 * A session (§2.1 notes). `metadata` and `events` appear once the session actor reports them in
 * its `describe()`; `route`, `worker`, `id` (the actor id for `DELETE /api/v1/actors/{id}`),
 * `age_ms` and the counters are our additions.
 */
export interface SessionDump {
  name: string;
  metadata?: Record<string, unknown>;
  source: { origin: string; listener: Record<string, unknown> | '<INVALID>'; status: string; remote: string | null; stats: Record<string, number> };
  destination: StageDump | { status: 'PENDING' };
  ingress: StageDump[];
  egress: StageDump[];
  status: string;
  events?: unknown[];
  route: string | null;
  worker: number | null;
  id: string;
  age_ms: number | null;
}

/** The kinds with their own list, add, get and delete paths. */
export type TopKind = Exclude<ObjectKind, 'endpoint'>;

/** The §1 dump shapes, built from one snapshot. `recursive` expands references (§2.1). */
export class Dumper {
  private readonly s: ConfigSnapshot;
  private readonly recursive: boolean;
  private readonly offload: boolean;

  /** @param offload whether the kernel offload engine runs (the admin dump's `offload`). */
  constructor(s: ConfigSnapshot, recursive: boolean, offload = false) {
    this.s = s;
    this.recursive = recursive;
    this.offload = offload;
  }

  /** Every object of a kind, dumped, in config order. */
  all(kind: TopKind): unknown[] {
    const s = this.s;
    switch (kind) {
      case 'listener':
        return s.listeners.map((x) => this.listener(x));
      case 'cluster':
        return s.clusters.map((x) => this.cluster(x));
      case 'rulelist':
        return s.rulelists.map((x) => this.rulelist(x));
      case 'rule':
        return s.rules.map((x) => this.rule(x));
      case 'route':
        return s.routes.map((x) => this.route(x));
    }
  }

  /** The dump of the object of a kind named `name`, or undefined. */
  one(kind: TopKind, name: string): unknown {
    const s = this.s;
    const find = <T extends { readonly name: string }>(a: readonly T[]): T | undefined => a.find((x) => x.name === name);
    switch (kind) {
      case 'listener': {
        const x = find(s.listeners);
        return x && this.listener(x);
      }
      case 'cluster': {
        const x = find(s.clusters);
        return x && this.cluster(x);
      }
      case 'rulelist': {
        const x = find(s.rulelists);
        return x && this.rulelist(x);
      }
      case 'rule': {
        const x = find(s.rules);
        return x && this.rule(x);
      }
      case 'route': {
        const x = find(s.routes);
        return x && this.route(x);
      }
    }
  }

  admin(): AdminDump {
    const a = this.s.admin;
    return {
      log_level: a.log_level,
      strict: a.strict,
      offload: this.offload,
      version: packageVersion(),
      ...(a.log_file !== undefined ? { log_file: a.log_file } : {}),
      ...(a.access_log_path !== undefined ? { access_log_path: a.access_log_path } : {}),
      ...(a.address !== undefined ? { address: a.address } : {}),
      ...(a.port !== undefined ? { port: a.port } : {}),
      ...(a.max_sessions !== undefined ? { max_sessions: a.max_sessions } : {}),
      ...(a.fd_reserve !== undefined ? { fd_reserve: a.fd_reserve } : {}),
      ...(a.overload_lag_ms !== undefined ? { overload_lag_ms: a.overload_lag_ms } : {}),
      ...(a.drain_timeout_s !== undefined ? { drain_timeout_s: a.drain_timeout_s } : {}),
    };
  }

  listener(l: ListenerConfig): ListenerDump {
    let rules: ListenerDump['rules'] = l.rules;
    if (this.recursive) {
      const rl = this.s.rulelists.find((x) => x.name === l.rules);
      rules = rl === undefined ? stale(l.rules) : this.rulelist(rl).rules;
    }
    return { name: l.name, spec: { ...l.spec }, rules, options: { ...l.options } };
  }

  rulelist(rl: RuleListConfig): { name: string; rules: Array<RuleDump | string> } {
    const rules = rl.rules.map((n) => {
      if (!this.recursive) return n;
      const r = this.s.rules.find((x) => x.name === n);
      return r === undefined ? stale(n) : this.rule(r);
    });
    return { name: rl.name, rules };
  }

  rule(r: RuleConfig): RuleDump {
    const a = r.action;
    let route: string | RouteDump | undefined = a.route;
    if (a.route !== undefined && this.recursive) {
      const rt = this.s.routes.find((x) => x.name === a.route);
      route = rt === undefined ? stale(a.route) : this.route(rt);
    }
    return {
      name: r.name,
      match: r.match === null ? { match: '*' } : { ...r.match },
      action: {
        ...(a.rewrite.length > 0 ? { rewrite: a.rewrite.map((w) => ({ ...w })) } : {}),
        ...(route !== undefined ? { route } : {}),
        ...(a.apply !== undefined ? { apply: a.apply } : {}),
      },
    };
  }

  route(r: RouteConfig): RouteDump {
    const ref = (n: string): string | ClusterDump => {
      if (!this.recursive) return n;
      const c = this.s.clusters.find((x) => x.name === n);
      return c === undefined ? stale(n) : this.cluster(c);
    };
    return { name: r.name, destination: ref(r.destination), ingress: r.ingress.map(ref), egress: r.egress.map(ref), retry: { ...r.retry } };
  }

  /** `endpointArray` forces the endpoint array (GET /config, so the dump can be posted back). */
  cluster(c: ClusterConfig, endpointArray = false): ClusterDump {
    const eps = this.endpoints(c);
    const lb = c.loadbalancer;
    return {
      name: c.name,
      spec: { ...c.spec },
      endpoints: this.recursive || endpointArray ? eps : eps.length,
      loadbalancer: { policy: lb.policy, ...(lb.key !== undefined ? { key: lb.key } : {}) },
      ...(c.outlier_detection !== undefined && !isDeepStrictEqual(c.outlier_detection, DEFAULT_OUTLIER_DETECTION) ? { outlier_detection: { ...c.outlier_detection } } : {}),
      ...(c.health_check !== undefined ? { health_check: { ...c.health_check } } : {}),
    };
  }

  /** A virtual cluster's one endpoint is `{name: <cluster>, spec: {address: "<VIRTUAL>"}}` (§1.3). */
  endpoints(c: ClusterConfig): EndpointDump[] {
    if (protocol(c.spec.protocol)?.cluster?.virtual === true) return [{ name: c.name, spec: { address: '<VIRTUAL>' } }];
    return c.endpoints.map((e) => this.endpoint(e));
  }

  endpoint(e: EndpointConfig): EndpointDump {
    return { name: e.name, spec: { ...e.spec }, weight: e.weight };
  }

  /** A session actor node as l7mp's session dump (§2.1); B2 fixed: real stage entries. */
  session(n: ActorNode): SessionDump {
    const status = typeof n.status === 'string' ? n.status : 'INIT';
    const listener = typeof n.listener === 'string' ? n.listener : '';
    const l = this.s.listeners.find((x) => x.name === listener);
    const down = (n.downstream ?? {}) as { remote?: string; [k: string]: unknown };
    const stages = (Array.isArray(n.stages) ? n.stages : []) as StageInfo[];
    const ending = status === 'FINALIZING' || status === 'DESTROYED';
    const stage = (st: StageInfo): StageDump => ({
      origin: st.cluster,
      endpoint: this.stageEndpoint(st),
      status: typeof st.status === 'string' ? st.status : ending ? 'END' : st.remote !== null ? 'CONNECTED' : status === 'INIT' ? 'INIT' : 'DISCONNECTED',
      remote: st.remote,
      stats: { tx_packets: st.tx_packets ?? 0, rx_packets: st.rx_packets ?? 0 },
    });
    const dest = stages.find((st) => st.role === 'destination');
    const { remote, ...counters } = down;
    let metadata: Record<string, unknown> | undefined;
    if (n.metadata !== null && typeof n.metadata === 'object') {
      const { name: _name, ...rest } = n.metadata as Record<string, unknown>;
      metadata = rest;
    }
    return {
      name: n.name,
      ...(metadata !== undefined ? { metadata } : {}),
      source: {
        origin: listener,
        listener: l === undefined ? '<INVALID>' : { ...l.spec },
        status: ending ? 'END' : status === 'INIT' ? 'INIT' : 'CONNECTED',
        remote: remote ?? null,
        stats: counters as Record<string, number>,
      },
      destination: dest === undefined ? { status: 'PENDING' } : stage(dest),
      ingress: stages.filter((st) => st.role === 'ingress').map(stage),
      egress: stages.filter((st) => st.role === 'egress').map(stage),
      status,
      ...(Array.isArray(n.events) ? { events: n.events as unknown[] } : {}),
      route: typeof n.route === 'string' ? n.route : null,
      worker: n.worker,
      id: n.id,
      age_ms: typeof n.age_ms === 'number' ? n.age_ms : null,
    };
  }

  private stageEndpoint(st: StageInfo): EndpointDump | '<INVALID>' {
    const c = this.s.clusters.find((x) => x.name === st.cluster);
    if (c !== undefined && protocol(c.spec.protocol)?.cluster?.virtual === true) return { name: c.name, spec: { address: '<VIRTUAL>' } };
    if (st.endpoint === null || st.endpoint === undefined) return '<INVALID>';
    const byName = typeof st.endpoint_name === 'string' ? c?.endpoints.find((e) => e.name === st.endpoint_name) : undefined;
    const e = byName ?? c?.endpoints.find((x) => x.spec.address === st.endpoint);
    return e !== undefined ? { name: e.name, spec: { ...e.spec } } : { name: st.endpoint_name ?? st.endpoint, spec: { address: st.endpoint } };
  }
}

/** A stage as the session actor's `describe()` reports it (`status`, `endpoint_name` when it adds them). */
interface StageInfo {
  role: 'ingress' | 'destination' | 'egress';
  cluster: string;
  endpoint?: string | null;
  endpoint_name?: string;
  status?: string;
  remote: string | null;
  tx_packets?: number;
  rx_packets?: number;
}

/** Every session node of the actor tree. */
export function sessionNodes(n: ActorNode, out: ActorNode[] = []): ActorNode[] {
  if (n.kind === 'session') out.push(n);
  for (const c of n.children) sessionNodes(c, out);
  return out;
}
