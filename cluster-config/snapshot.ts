/**
 * The frozen, normalized config that workers build from. Every inline object of the document has
 * become a named top-level object (l7mp's naming, docs/l7mp-compat.md §1.9), every reference is a
 * name, every default is filled in. Plain data: it crosses threads by structured clone.
 */
import type { LogLevel } from '../common/log.ts';

/** A protocol spec after validation by its protocol's schema. */
export interface ProtocolSpec {
  readonly protocol: string;
  readonly [field: string]: unknown;
}

export interface ListenerConfig {
  readonly name: string;
  readonly spec: ProtocolSpec;
  /** Name of the rulelist (may name nothing yet: resolved per session, as l7mp). */
  readonly rules: string;
  readonly options: ListenerOptions;
}

/**
 * `listeners[].options`: l7mp's `track`, and the admission limits (README, Limits). An unset limit
 * takes its default when the listener applies it (actors/admission.ts), so dumps show what was set.
 */
export interface ListenerOptions {
  /** Seconds an ended session stays listed. */
  readonly track: number;
  /** Concurrent sessions of the listener, process-wide. */
  readonly max_sessions?: number;
  /** New sessions per second of the listener (sessions/s). */
  readonly session_rate?: number;
  /** Concurrent sessions per source IP address, per worker. */
  readonly max_sessions_per_source?: number;
  /** New sessions per second per source IP address, per worker (sessions/s). */
  readonly source_session_rate?: number;
  /** Token bucket depth of `source_session_rate` (sessions). */
  readonly source_session_burst?: number;
}

export interface EndpointConfig {
  readonly name: string;
  readonly spec: { readonly address: string; readonly [field: string]: unknown };
  /** > 0; default 1. */
  readonly weight: number;
}

export type LbPolicy = 'Trivial' | 'ConsistentHash' | 'HashRing' | 'None';

/**
 * Passive outlier detection, defaults filled in (schema `OutlierDetection`; Envoy
 * `outlier_detection`). Times in ms.
 */
export interface OutlierDetectionConfig {
  readonly enabled: boolean;
  /** Consecutive failures that eject an endpoint. */
  readonly consecutive_failures: number;
  /** Unit: ms. */
  readonly base_ejection_time: number;
  /** Unit: ms. */
  readonly max_ejection_time: number;
  /** Unit: percent (0..100); at least one endpoint may always be ejected. */
  readonly max_ejection_percent: number;
  /** The ejection multiplier decays by one per interval in. Unit: ms. */
  readonly interval: number;
}

/** Active health check, defaults filled in (schema `HealthCheck`; Envoy `health_checks`). */
export interface HealthCheckConfig {
  readonly protocol: 'UDP' | 'TCP';
  readonly port: number;
  /** Unit: ms. */
  readonly interval: number;
  /** Unit: ms. */
  readonly timeout: number;
  readonly unhealthy_threshold: number;
  readonly healthy_threshold: number;
  /** Probe payload, in `encoding`. */
  readonly send: string;
  /** Expected bytes of the answer (contained), in `encoding`; absent: any answer. */
  readonly receive?: string;
  readonly encoding: 'utf8' | 'hex';
}

/** Outlier detection defaults (Envoy's, except that it is on). */
export const DEFAULT_OUTLIER_DETECTION: OutlierDetectionConfig = Object.freeze({
  enabled: true,
  consecutive_failures: 5,
  base_ejection_time: 30_000,
  max_ejection_time: 300_000,
  max_ejection_percent: 10,
  interval: 10_000,
});

export interface ClusterConfig {
  readonly name: string;
  readonly spec: ProtocolSpec;
  readonly endpoints: readonly EndpointConfig[];
  readonly loadbalancer: { readonly policy: LbPolicy; readonly key?: string };
  /** Always present (defaults filled); optional only for snapshots built by hand (tests). */
  readonly outlier_detection?: OutlierDetectionConfig;
  /** Present only when configured. */
  readonly health_check?: HealthCheckConfig;
}

export interface RuleListConfig {
  readonly name: string;
  readonly rules: readonly string[];
}

export interface RewriteConfig {
  readonly path: string;
  readonly value: unknown;
}

export interface RuleConfig {
  readonly name: string;
  /** A JSONPredicate object; null = match everything. */
  readonly match: Readonly<Record<string, unknown>> | null;
  readonly action: {
    readonly rewrite: readonly RewriteConfig[];
    readonly route?: string;
    readonly apply?: string;
  };
}

export type RetryOn = 'never' | 'connect-failure' | 'disconnect' | 'always';

export interface RetryConfig {
  readonly retry_on: RetryOn;
  readonly num_retries: number;
  /** ms */
  readonly timeout: number;
}

export interface RouteConfig {
  readonly name: string;
  readonly destination: string;
  readonly ingress: readonly string[];
  readonly egress: readonly string[];
  readonly retry: RetryConfig;
}

export interface AdminConfig {
  readonly log_level: LogLevel;
  readonly strict: boolean;
  readonly log_file?: string;
  readonly access_log_path?: string;
  readonly offload: 'init' | 'no_init' | 'disable';
  /** Admin HTTP server address and port (no server when port is undefined). */
  readonly address?: string;
  readonly port?: number;
  /** Concurrent sessions of the process (lowered to what the open-file limit allows). */
  readonly max_sessions?: number;
  /** File descriptors the session cap leaves free (default 256). */
  readonly fd_reserve?: number;
  /** Event-loop lag (ms) past which a worker refuses new datagram sessions (default 50; 0: off). */
  readonly overload_lag_ms?: number;
  /** How long a drain lets live sessions finish, s (default 30; 0: cut at once). */
  readonly drain_timeout_s?: number;
  /** Reload the `-c` file when it changes (`--watch-config`); present only when true. */
  readonly watch_config?: true;
  /** Serve the admin API without a token beyond loopback (`--admin-insecure`); present only when true. */
  readonly insecure?: true;
  /** No SO_REUSEPORT steering of UDP listeners (runtime/main/steering.ts); present only when false. */
  readonly steering?: false;
}

/** A whole config, normalized and frozen. Arrays keep the order objects were defined in. */
export interface ConfigSnapshot {
  readonly admin: AdminConfig;
  readonly listeners: readonly ListenerConfig[];
  readonly clusters: readonly ClusterConfig[];
  readonly rulelists: readonly RuleListConfig[];
  readonly rules: readonly RuleConfig[];
  readonly routes: readonly RouteConfig[];
  /** Names of objects created from inline definitions (deleted with their parent by recursive deletes). */
  readonly autogenerated: readonly string[];
}

/** Retry defaults when `retry` is missing (l7mp: never / 1 / 2000 ms). */
export const DEFAULT_RETRY: RetryConfig = Object.freeze({ retry_on: 'never', num_retries: 1, timeout: 2000 });

/** Freeze an object graph in place and return it. */
export function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}
