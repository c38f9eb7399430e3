/**
 * The error catalogue: every error l7mp-ts raises has a stable `code` of the form
 * `L7_ERR_<AREA>_<WHAT>`. Errors cross threads (and later NATS) as plain data, so callers match
 * on `code`, never on `instanceof`. The original error, if any, is kept as `cause`.
 *
 * `status` is the HTTP-like status l7mp attached to the same failure (400 bad request, 404 no
 * route / not found, 503 upstream unavailable, 500 internal), so the REST API and JSONSocket can
 * answer in l7mp's shapes.
 *
 * Modelled on undici `lib/core/errors.js` and nats.js `core/src/errors.ts`.
 */

/** Stable error codes. `as const` object instead of an enum (erasable TypeScript). */
export const ErrorCode = {
  /** A config document failed validation; `message` names the field path and the value. */
  ConfigInvalid: 'L7_ERR_CONFIG_INVALID',
  /** A config document could not be read or parsed (YAML/JSON syntax, missing file). */
  ConfigUnreadable: 'L7_ERR_CONFIG_UNREADABLE',
  /** A reference by name (rulelist, rule, route, cluster) names nothing. */
  ConfigUnknownRef: 'L7_ERR_CONFIG_UNKNOWN_REF',
  /** Two objects of one kind share a name (`<Kind> "<n>" already defined`, as l7mp says). */
  ConfigDuplicate: 'L7_ERR_CONFIG_DUPLICATE',
  /** No rule matched a session: l7mp's `No route for session "<name>"`. */
  RouteNotFound: 'L7_ERR_ROUTE_NOT_FOUND',
  /** A cluster has no endpoint to pick (`No endpoint in cluster`). */
  ClusterNoEndpoint: 'L7_ERR_CLUSTER_NO_ENDPOINT',
  /** Connecting a session stage to an upstream failed (refused, reset, DNS). */
  UpstreamConnect: 'L7_ERR_UPSTREAM_CONNECT',
  /** Connecting a session stage did not finish within the route's `retry.timeout`. */
  UpstreamTimeout: 'L7_ERR_UPSTREAM_TIMEOUT',
  /** An established upstream connection failed (reset, ICMP unreachable). */
  UpstreamReset: 'L7_ERR_UPSTREAM_RESET',
  /** The downstream peer went away or errored. */
  DownstreamReset: 'L7_ERR_DOWNSTREAM_RESET',
  /** A listener could not bind its address (port in use, permission, bad path). */
  ListenerBind: 'L7_ERR_LISTENER_BIND',
  /** A session saw no traffic for its idle timeout. */
  SessionIdle: 'L7_ERR_SESSION_IDLE',
  /** A session was ended by the control plane (API delete, listener removed, shutdown). */
  SessionStopped: 'L7_ERR_SESSION_STOPPED',
  /** A session was still live at the end of a drain (`admin.drain_timeout_s`, a second SIGTERM) and was cut. */
  SessionDrained: 'L7_ERR_SESSION_DRAINED',
  /** An actor's `receive` threw; the supervisor decides what happens next. */
  ActorFailed: 'L7_ERR_ACTOR_FAILED',
  /** A supervisor gave up after too many restarts within its period. */
  ActorRestartLimit: 'L7_ERR_ACTOR_RESTART_LIMIT',
  /** A worker thread exited or threw; it is replaced by the runtime. */
  WorkerDied: 'L7_ERR_WORKER_DIED',
  /** A worker failed while starting; the runtime stops instead of looping. */
  WorkerStart: 'L7_ERR_WORKER_START',
  /** A control-plane call was given bad arguments (CLI flag, API body). */
  InvalidArgument: 'L7_ERR_INVALID_ARGUMENT',
  /**
   * The admin API would be reachable from beyond loopback without a bearer token: a non-loopback
   * admin bind (refused at start), or an L7mpController/Prometheus request from a non-loopback
   * peer (403). `--admin-token` or `--admin-insecure` (admin.insecure) lift it.
   */
  AdminInsecure: 'L7_ERR_ADMIN_INSECURE',
  /** A message on the data path could not be decoded; it is dropped and counted. */
  Malformed: 'L7_ERR_MALFORMED',
  /** A downstream peer went over a configured limit (an HTTP request body over `max_body_size`: 413); the session ends. */
  DownstreamLimit: 'L7_ERR_DOWNSTREAM_LIMIT',
  /** A bug: an invariant did not hold. */
  Internal: 'L7_ERR_INTERNAL',
} as const;

/** One of the {@link ErrorCode} values. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Default l7mp-style status for each code (HTTP semantics; used by the REST API and JSONSocket). */
const defaultStatus: Record<ErrorCodeValue, number> = {
  L7_ERR_CONFIG_INVALID: 400,
  L7_ERR_CONFIG_UNREADABLE: 400,
  L7_ERR_CONFIG_UNKNOWN_REF: 404,
  L7_ERR_CONFIG_DUPLICATE: 400,
  L7_ERR_ROUTE_NOT_FOUND: 404,
  L7_ERR_CLUSTER_NO_ENDPOINT: 404,
  L7_ERR_UPSTREAM_CONNECT: 503,
  L7_ERR_UPSTREAM_TIMEOUT: 504,
  L7_ERR_UPSTREAM_RESET: 503,
  L7_ERR_DOWNSTREAM_RESET: 499,
  L7_ERR_LISTENER_BIND: 500,
  L7_ERR_SESSION_IDLE: 408,
  L7_ERR_SESSION_STOPPED: 200,
  L7_ERR_SESSION_DRAINED: 503,
  L7_ERR_ACTOR_FAILED: 500,
  L7_ERR_ACTOR_RESTART_LIMIT: 500,
  L7_ERR_WORKER_DIED: 500,
  L7_ERR_WORKER_START: 500,
  L7_ERR_INVALID_ARGUMENT: 400,
  L7_ERR_ADMIN_INSECURE: 403,
  L7_ERR_MALFORMED: 400,
  L7_ERR_DOWNSTREAM_LIMIT: 413,
  L7_ERR_INTERNAL: 500,
};

/** The plain-data form of an {@link L7Error}, safe to structured-clone or msgpack. */
export interface L7ErrorData {
  code: ErrorCodeValue;
  message: string;
  status: number;
  cause?: L7ErrorData | { message: string; code?: string };
}

/** The only error class l7mp-ts throws on the control plane (and passes as data on the data path). */
export class L7Error extends Error {
  readonly code: ErrorCodeValue;
  /** l7mp/HTTP status of this failure (see {@link ErrorCode}). */
  readonly status: number;

  constructor(code: ErrorCodeValue, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'L7Error';
    this.code = code;
    this.status = options?.status ?? defaultStatus[code];
  }

  /** Plain data for crossing a thread or the bus. */
  toData(): L7ErrorData {
    const out: L7ErrorData = { code: this.code, message: this.message, status: this.status };
    const c = this.cause;
    if (c instanceof L7Error) out.cause = c.toData();
    else if (c instanceof Error) out.cause = { message: c.message, code: (c as NodeJS.ErrnoException).code };
    return out;
  }

  /** Rebuild an error from {@link L7Error.toData} output. */
  static fromData(d: L7ErrorData): L7Error {
    return new L7Error(d.code, d.message, { status: d.status, cause: d.cause });
  }
}

/** Wrap anything thrown into an {@link L7Error} with `code`, keeping the original as `cause`. */
export function asL7Error(err: unknown, code: ErrorCodeValue, prefix?: string): L7Error {
  if (err instanceof L7Error) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new L7Error(code, prefix ? `${prefix}: ${msg}` : msg, { cause: err });
}

/** True when `err` carries the given code (works on {@link L7ErrorData} too). */
export function hasCode(err: unknown, code: ErrorCodeValue): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
