/**
 * Graceful drain (issue 15 item 1), on the main thread. Started by SIGTERM, `POST /api/v1/admin
 * {"drain": ...}` or the fleet's drain command; one way (there is no undrain):
 *
 * ```
 *  serving ──start()──► draining ──sessions = 0──────────► drained ──(exit) stop, exit 0
 *                          │  /readyz 503, listeners drained (runtime/worker/worker-main.ts `drain`)
 *                          │  a tick every 250 ms: log sessions left (on change, at most 1/s)
 *                          └──deadline (timeout_s)──► cut the rest (L7_ERR_SESSION_DRAINED) ──► drained
 * ```
 *
 * "Sessions left" is admission control's process-wide count (actors/admission.ts): every session
 * of every listener and worker, including those still being set up. Per protocol (README, Drain):
 * stream listeners (TCP, Unix stream, WebSocket, HTTP, JSONSocket over them) stop listening, so
 * the kernel refuses new connections while accepted ones carry on; HTTP answers with
 * `Connection: close` and closes idle keep-alive connections; datagram listeners (UDP, Unix
 * datagram) keep their sockets for the live sessions and refuse new peers, counted as drops with
 * reason `draining`; a datagram session ends once quiet for the drain grace (actors/session.ts,
 * `DRAIN_QUIET_MS`).
 */
import type { Logger } from '../../common/log.ts';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import { MAX_DRAIN_TIMEOUT_S } from '../../cluster-config/schema.ts';

/** Where a drain is. */
export const DrainState = {
  Serving: 'serving',
  Draining: 'draining',
  /** Over: no session left, or the rest was cut. The node still takes no new sessions. */
  Drained: 'drained',
} as const;
export type DrainState = (typeof DrainState)[keyof typeof DrainState];

/** What asked for a drain, and how. */
export interface DrainRequest {
  /** How long live sessions may finish; 0 cuts them at once. Unit: s. */
  readonly timeoutS: number;
  /** `SIGTERM`, `api`, `fleet` (logs and the status). */
  readonly source: string;
  /** Exit the process once drained (SIGTERM); the API and fleet default to staying up. */
  readonly exit: boolean;
}

/** The drain as `GET /api/v1/admin`, `/readyz` and the fleet show it. */
export interface DrainStatus {
  state: DrainState;
  /** Sessions of the process now. */
  sessions_left: number;
  /** What started it (absent while serving). */
  source?: string;
  /** ISO 8601 times; `deadline` is when the sessions left are cut. */
  started?: string;
  deadline?: string;
  /** s */
  timeout_s?: number;
  /** The process exits once drained. */
  exit?: boolean;
  /** Sessions cut at the deadline (once drained). */
  cut?: number;
}

/** How a drain ended ({@link DrainOptions.onDone}). */
export interface DrainOutcome {
  /** Sessions still live at the deadline, cut. */
  cut: number;
  exit: boolean;
  source: string;
  /** ms from start to end. */
  ms: number;
}

/** What the drain needs of the runtime. */
export interface DrainTarget {
  /** Sessions of the process now (cheap: a SharedArrayBuffer read). */
  sessions(): number;
  /** Tell every worker to drain (listeners stop taking sessions). */
  drainWorkers(): Promise<void>;
  /** Stop every live session (the deadline). Resolves with how many were told. */
  cutSessions(): Promise<number>;
}

/** Options of a {@link Drain}. */
export interface DrainOptions {
  log: Logger;
  /**
   * Called (on a later turn of the event loop) when the drain is over: sessions gone or cut; again
   * when a request with `exit` comes once drained.
   */
  onDone(outcome: DrainOutcome): void;
  /** Clock, ms (tests). */
  now?: () => number;
  /** Period of the progress check, ms (default 250; 0: no timer, tests call {@link Drain.tick}). */
  tickMs?: number;
}

/** A drain request's options (`timeout_s` in s, `exit`), as {@link parseDrain} checked them. */
export interface DrainBody {
  timeout_s?: number;
  exit?: boolean;
}

/**
 * The `drain` field of `POST /api/v1/admin`: `true`, or `{timeout_s?, exit?}` (timeout default
 * `admin.drain_timeout_s`; `exit` default false: the node stays up, drained, until a signal).
 * @throws L7Error (400) `Cannot drain: ...` for `false` (a drain cannot be undone) or a bad field.
 */
export function parseDrain(v: unknown): DrainBody {
  const bad = (m: string): L7Error => new L7Error(ErrorCode.InvalidArgument, `Cannot drain: ${m}`);
  if (v === true) return {};
  if (v === false) throw bad('a drain cannot be undone (restart the process)');
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(`drain: must be true or {"timeout_s": N, "exit": true|false}, got ${JSON.stringify(v)}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'timeout_s' && k !== 'exit') throw bad(`drain.${k}: unknown field (timeout_s, exit)`);
  const out: DrainBody = {};
  if (o.timeout_s !== undefined) {
    const t = o.timeout_s;
    if (typeof t !== 'number' || !(t >= 0 && t <= MAX_DRAIN_TIMEOUT_S)) throw bad(`drain.timeout_s: must be a number of seconds 0..${MAX_DRAIN_TIMEOUT_S}, got ${JSON.stringify(t)}`);
    out.timeout_s = t;
  }
  if (o.exit !== undefined) {
    if (typeof o.exit !== 'boolean') throw bad(`drain.exit: must be true or false, got ${JSON.stringify(o.exit)}`);
    out.exit = o.exit;
  }
  return out;
}

/** Progress is logged when the count changed, at most this often. Unit: ms. */
const LOG_EVERY_MS = 1000;

export class Drain {
  private readonly target: DrainTarget;
  private readonly opts: DrainOptions;
  private readonly now: () => number;
  private state: DrainState = DrainState.Serving;
  private req: DrainRequest | null = null;
  private startedAt = 0;
  private deadline = 0;
  private cut = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastLogged = -1;
  private lastLogAt = 0;
  /** The workers were told (ticks wait for it: a count before they were is not a drained count). */
  private told = false;

  constructor(target: DrainTarget, opts: DrainOptions) {
    this.target = target;
    this.opts = opts;
    this.now = opts.now ?? Date.now;
  }

  /** Not serving any more (draining or drained): new workers and listeners start drained. */
  get active(): boolean {
    return this.state !== DrainState.Serving;
  }

  get current(): DrainState {
    return this.state;
  }

  /**
   * Start draining. A drain already under way keeps its deadline; a request with `exit` makes it
   * exit at its end (SIGTERM during an API drain). A request once drained reports it again
   * (`onDone` with nothing cut), so SIGTERM after an API drain exits at once.
   * @returns the status after the request.
   */
  start(req: DrainRequest): DrainStatus {
    if (this.state !== DrainState.Serving) {
      const r = this.req as DrainRequest;
      if (req.exit && !r.exit) this.req = { ...r, exit: true };
      this.opts.log.info({ source: req.source, state: this.state, sessions_left: this.target.sessions() }, 'drain requested again; the drain under way goes on');
      if (this.state === DrainState.Drained && req.exit) this.done({ cut: 0, exit: true, source: req.source, ms: 0 });
      return this.status();
    }
    this.state = DrainState.Draining;
    this.req = req;
    this.startedAt = this.now();
    this.deadline = this.startedAt + Math.round(req.timeoutS * 1000);
    const left = this.target.sessions();
    this.lastLogged = left;
    this.lastLogAt = this.startedAt;
    this.opts.log.info(
      { source: req.source, timeout_s: req.timeoutS, sessions_left: left, exit: req.exit },
      `draining: no new sessions; live ones may finish within ${req.timeoutS} s`,
    );
    void this.target.drainWorkers().then(
      () => {
        this.told = true;
        this.tick();
      },
      (e: unknown) => {
        this.opts.log.error({ err: (e as Error).message }, 'drain: telling the workers failed');
        this.told = true;
      },
    );
    const every = this.opts.tickMs ?? 250;
    if (every > 0) {
      this.timer = setInterval(() => this.tick(), every);
      this.timer.unref();
    }
    // A timeout of 0 ends here.
    this.tick();
    return this.status();
  }

  /** Check progress: log the sessions left, finish at zero, cut the rest at the deadline. */
  tick(): void {
    if (this.state !== DrainState.Draining) return;
    const now = this.now();
    const left = this.target.sessions();
    if (now >= this.deadline) {
      this.finish(left, now);
      return;
    }
    if (left === 0 && this.told) {
      this.finish(0, now);
      return;
    }
    if (left !== this.lastLogged && now - this.lastLogAt >= LOG_EVERY_MS) {
      this.lastLogged = left;
      this.lastLogAt = now;
      this.opts.log.info({ sessions_left: left, deadline_in_s: Math.ceil((this.deadline - now) / 1000) }, `draining: ${left} sessions left`);
    }
  }

  private finish(left: number, now: number): void {
    this.state = DrainState.Drained;
    this.cut = left;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const r = this.req as DrainRequest;
    const ms = now - this.startedAt;
    if (left > 0) {
      this.opts.log.warn({ cut: left, ms, source: r.source }, `drain deadline: cutting the ${left} sessions left`);
      void this.target.cutSessions().catch((e: unknown) => this.opts.log.error({ err: (e as Error).message }, 'drain: cutting the sessions failed'));
    } else this.opts.log.info({ ms, source: r.source }, 'drained: no session left');
    this.done({ cut: left, exit: r.exit, source: r.source, ms });
  }

  /** `onDone` after the current request has answered (an exit must not beat the answer). */
  private done(o: DrainOutcome): void {
    setImmediate(() => this.opts.onDone(o));
  }

  status(): DrainStatus {
    const left = this.target.sessions();
    const r = this.req;
    if (r === null) return { state: this.state, sessions_left: left };
    return {
      state: this.state,
      sessions_left: left,
      source: r.source,
      started: new Date(this.startedAt).toISOString(),
      deadline: new Date(this.deadline).toISOString(),
      timeout_s: r.timeoutS,
      exit: r.exit,
      ...(this.state === DrainState.Drained ? { cut: this.cut } : {}),
    };
  }

  /** Stop the timer (shutdown). */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
