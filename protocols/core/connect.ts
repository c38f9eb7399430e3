/**
 * One abort-aware connect attempt, for every cluster that opens something asynchronously (a
 * socket, a WebSocket, an HTTP request, a process, a handshake). The session enforces the timeout
 * and aborts `signal`; the attempt then fails, and whatever it opened is released.
 */
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { ClusterInstance, Connection, EndpointInfo, SessionInfo } from '../types.ts';

/** The handle an opener gets. Only the first `done` or `fail` counts. */
export class ConnectAttempt<T> {
  private state: 'open' | 'done' | 'failed' = 'open';
  private readonly releases: Array<() => void> = [];
  private readonly what: string;
  private readonly signal: AbortSignal;
  private readonly resolve: (v: T) => void;
  private readonly reject: (e: L7Error) => void;

  constructor(what: string, signal: AbortSignal, resolve: (v: T) => void, reject: (e: L7Error) => void) {
    this.what = what;
    this.signal = signal;
    this.resolve = resolve;
    this.reject = reject;
  }

  /** True once done or failed. */
  get settled(): boolean {
    return this.state !== 'open';
  }

  /** Connected: resolve with `value`. */
  done(value: T): void {
    if (this.state !== 'open') return;
    this.state = 'done';
    this.signal.removeEventListener('abort', this.onAbort);
    this.resolve(value);
  }

  /**
   * Failed: run the releases, then reject. `why` is the error (its message is used and it is
   * kept as the cause) or a reason text with an optional cause. Bound: usable as an `'error'`
   * listener.
   */
  readonly fail = (why: Error | string, cause?: unknown): void => {
    if (this.state !== 'open') return;
    this.state = 'failed';
    this.signal.removeEventListener('abort', this.onAbort);
    for (const r of this.releases) r();
    const c = typeof why === 'string' ? cause : why;
    this.reject(new L7Error(ErrorCode.UpstreamConnect, `${this.what}: ${typeof why === 'string' ? why : why.message}`, c === undefined ? undefined : { cause: c }));
  };

  /** Free a resource if the attempt fails (at once if it already has). */
  onFail(release: () => void): void {
    if (this.state === 'failed') release();
    else if (this.state === 'open') this.releases.push(release);
  }

  /** @internal */
  readonly onAbort = (): void => this.fail(new Error('aborted'));
}

/**
 * Run `open`, which starts connecting and settles the attempt through its handle. Resolves with
 * the value given to `done`; rejects with L7Error `L7_ERR_UPSTREAM_CONNECT` whose message is
 * `<what>: <reason>` after running every `onFail` release. `signal` aborting first fails it with
 * `aborted` (at once, without calling `open`, if it has already); a synchronous throw from `open`
 * fails it with its message.
 */
export function connectAttempt<T>(signal: AbortSignal, what: string, open: (a: ConnectAttempt<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const a = new ConnectAttempt<T>(what, signal, resolve, reject);
    if (signal.aborted) return a.onAbort();
    signal.addEventListener('abort', a.onAbort, { once: true });
    try {
      open(a);
    } catch (e) {
      a.fail(e instanceof Error ? e : String(e));
    }
  });
}

/**
 * The base of a cluster that connects each session stage to one of its endpoints (TCP, UDP, Unix
 * sockets, WebSocket, HTTP): it keeps the cluster's name and validated spec, rejects a stage
 * without an endpoint with `L7_ERR_CLUSTER_NO_ENDPOINT` (`No endpoint in cluster "<name>"`) before
 * {@link EndpointCluster.open} runs, and has nothing to release by default.
 */
export abstract class EndpointCluster<S> implements ClusterInstance {
  protected readonly name: string;
  protected readonly spec: S;

  constructor(cfg: { readonly name: string; readonly spec: S }) {
    this.name = cfg.name;
    this.spec = cfg.spec;
  }

  connect(session: SessionInfo, ep: EndpointInfo | null, signal: AbortSignal): Promise<Connection> {
    if (ep === null) return Promise.reject(new L7Error(ErrorCode.ClusterNoEndpoint, `No endpoint in cluster "${this.name}"`));
    return this.open(session, ep, signal);
  }

  /** Open a connection for `session` to `ep`, as {@link ClusterInstance.connect} says. */
  protected abstract open(session: SessionInfo, ep: EndpointInfo, signal: AbortSignal): Promise<Connection>;

  close(): void {}
}
