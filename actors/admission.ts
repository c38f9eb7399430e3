/**
 * Admission control: whether a listener takes a new session (a UDP peer's first datagram, an
 * accepted connection), before anything is allocated for it where the protocol allows.
 *
 * Limits, checked in this order (README, Limits; docs/threat-model.md):
 * ```
 *  process_sessions   all sessions of the process  ≤ cap   (admin.max_sessions, from the fd limit)
 *  listener_sessions  sessions of this listener    ≤ listeners[].options.max_sessions
 *  listener_rate      new sessions of the listener ≤ session_rate/s (a bucket per worker, rate/N)
 *  source_sessions    sessions of one source IP    ≤ max_sessions_per_source      (per worker)
 *  source_rate        new sessions of a source IP  ≤ source_session_rate/s, burst (per worker)
 *  source_table_full  distinct sources tracked     ≤ SOURCE_TABLE_MAX              (per worker)
 * ```
 * The first two are process-wide: each worker counts its own sessions in its cell of a
 * SharedArrayBuffer ({@link SharedGauge}) and reads the sum, so N workers may overshoot a cap by
 * at most N-1 at the same instant. The per-source state is per worker thread (nginx `limit_conn`
 * per worker zone; a Map, no cross-thread traffic on the data path).
 *
 * A refusal is counted by the caller under its reason (`l7mp_listener_dropped_packets_total{reason}`)
 * and logged once per period; it never throws.
 */
import type { ListenerOptions } from '../cluster-config/snapshot.ts';
import { DEFAULT_MAX_SESSIONS_PER_SOURCE, DEFAULT_SESSION_RATE, DEFAULT_SOURCE_SESSION_RATE } from '../cluster-config/schema.ts';

/** Why a session was refused: the `reason` label of `l7mp_listener_dropped_packets_total`. */
export const AdmissionReason = {
  ProcessSessions: 'process_sessions',
  ListenerSessions: 'listener_sessions',
  ListenerRate: 'listener_rate',
  SourceSessions: 'source_sessions',
  SourceRate: 'source_rate',
  SourceTable: 'source_table_full',
  /** The worker's event loop is late (actors/overload.ts): new datagram sessions wait. */
  Overload: 'overload',
  /**
   * The process is draining (SIGTERM, a drain request): a new datagram peer (UDP, Unix datagram)
   * is refused while the live sessions finish. Stream listeners stop listening instead.
   */
  Draining: 'draining',
} as const;
export type AdmissionReason = (typeof AdmissionReason)[keyof typeof AdmissionReason];

/** Every admission reason (metrics export these listener counters as drops). */
export const ADMISSION_REASONS: readonly string[] = Object.values(AdmissionReason);

/** Distinct source addresses one listener tracks per worker; a new source past it is refused. */
export const SOURCE_TABLE_MAX = 262_144;
/** The source table is pruned (idle sources forgotten) when it grows past this, at most once a second. */
const SOURCE_PRUNE_AT = 4096;

/**
 * A count shared by every worker of the process: cell `i` of `cells` (an Int32Array over a
 * SharedArrayBuffer) is worker slot i's share, written only by that worker; the main thread zeroes
 * the cell of a worker that died. {@link total} is the process-wide value.
 */
export class SharedGauge {
  readonly cells: Int32Array;
  readonly slot: number;

  constructor(cells: Int32Array, slot: number) {
    this.cells = cells;
    this.slot = slot;
  }

  /** A gauge private to this thread (tests, a worker built without shared memory). */
  static local(): SharedGauge {
    return new SharedGauge(new Int32Array(1), 0);
  }

  total(): number {
    let n = 0;
    for (let i = 0; i < this.cells.length; i++) n += Atomics.load(this.cells, i);
    return n;
  }

  /** This worker's share. */
  own(): number {
    return Atomics.load(this.cells, this.slot);
  }

  add(delta: number): void {
    Atomics.add(this.cells, this.slot, delta);
  }
}

/** Token bucket and session count of one source address. */
interface SourceState {
  sessions: number;
  tokens: number;
  /** ms of the last refill. */
  last: number;
}

/** The limits in force for one listener (options with their defaults filled in). */
export interface AdmissionLimits {
  /** Process-wide cap of this listener's sessions (Infinity: only the process cap). */
  readonly maxSessions: number;
  readonly maxPerSource: number;
  /** New sessions per second of the whole listener (all workers). */
  readonly sessionRate: number;
  /** sessions/s */
  readonly ratePerSource: number;
  /** sessions */
  readonly burstPerSource: number;
}

/** The limits of `options`, defaults filled in. */
export function admissionLimits(o: ListenerOptions): AdmissionLimits {
  const rate = o.source_session_rate ?? DEFAULT_SOURCE_SESSION_RATE;
  return {
    maxSessions: o.max_sessions ?? Infinity,
    sessionRate: o.session_rate ?? DEFAULT_SESSION_RATE,
    maxPerSource: o.max_sessions_per_source ?? DEFAULT_MAX_SESSIONS_PER_SOURCE,
    ratePerSource: rate,
    burstPerSource: o.source_session_burst ?? Math.max(1, Math.ceil(2 * rate)),
  };
}

/**
 * What a listener's sessions cost in file descriptors, charged against the process's budget:
 * a session is refused (`process_sessions`) when its fds would take the process past it.
 */
export interface FdCharge {
  /** fds the sessions of the process hold: a cell per worker, like the session gauge */
  readonly gauge: SharedGauge;
  /** fds one session of this listener holds (runtime/session-fds.ts), fixed for the listener's life */
  readonly perSession: number;
  /** fds sessions may hold in all (open-file soft limit - admin.fd_reserve; common/fd-limit.ts) */
  readonly budget: () => number;
}

/** Admission state of one listener on one worker. */
export class Admission {
  limits: AdmissionLimits;
  private readonly listener: SharedGauge;
  private readonly process: SharedGauge;
  private readonly processCap: () => number;
  private readonly now: () => number;
  private readonly sources = new Map<string, SourceState>();
  private lastPrune = 0;
  /** This worker's share of the listener's new-session bucket (session_rate / workers). */
  private readonly rate: SourceState;
  private readonly workers: number;
  private readonly fds: FdCharge | null;

  /**
   * @param listener this listener's sessions, process-wide
   * @param process every session of the process
   * @param processCap the process-wide cap in force (admin.max_sessions bounded by the fd limit)
   * @param now clock in ms
   * @param fds the fds each session is charged against the process's budget (null: not counted)
   */
  constructor(limits: AdmissionLimits, listener: SharedGauge, process: SharedGauge, processCap: () => number, now: () => number = Date.now, workers = 1, fds: FdCharge | null = null) {
    this.limits = limits;
    this.fds = fds;
    this.workers = workers;
    this.rate = { sessions: 0, tokens: this.rateBurst(), last: now() };
    this.listener = listener;
    this.process = process;
    this.processCap = processCap;
    this.now = now;
  }

  /** Sources tracked now (tests, the actor tree). */
  get trackedSources(): number {
    return this.sources.size;
  }

  /**
   * Would a new session from `source` (an IP address; undefined for Unix sockets and other
   * address-less peers, which only the process and listener caps apply to) be admitted now?
   * Counts nothing: a datagram listener asks before it allocates a socket for the session.
   */
  check(source: string | undefined): AdmissionReason | null {
    if (this.process.total() >= this.processCap()) return AdmissionReason.ProcessSessions;
    const fds = this.fds;
    if (fds !== null && fds.gauge.total() + fds.perSession > fds.budget()) return AdmissionReason.ProcessSessions;
    if (this.limits.maxSessions !== Infinity && this.listener.total() >= this.limits.maxSessions) return AdmissionReason.ListenerSessions;
    this.refillRate(this.now());
    if (this.rate.tokens < 1) return AdmissionReason.ListenerRate;
    if (source === undefined) return null;
    const st = this.sources.get(source);
    if (st === undefined) return this.sources.size >= SOURCE_TABLE_MAX && !this.prune(true) ? AdmissionReason.SourceTable : null;
    if (st.sessions >= this.limits.maxPerSource) return AdmissionReason.SourceSessions;
    this.refill(st, this.now());
    return st.tokens < 1 ? AdmissionReason.SourceRate : null;
  }

  /** Check, and if admitted count the session (release it with {@link release}). */
  admit(source: string | undefined): AdmissionReason | null {
    const r = this.check(source);
    if (r !== null) return r;
    this.process.add(1);
    this.fds?.gauge.add(this.fds.perSession);
    this.listener.add(1);
    this.rate.tokens -= 1;
    if (source !== undefined) {
      let st = this.sources.get(source);
      const now = this.now();
      if (st === undefined) {
        if (this.sources.size >= SOURCE_PRUNE_AT) this.prune(false);
        st = { sessions: 0, tokens: this.limits.burstPerSource, last: now };
        this.sources.set(source, st);
      }
      st.sessions++;
      st.tokens -= 1;
    }
    return null;
  }

  /**
   * Count a session without checking any limit: one rebuilt after its worker died (it was admitted
   * there; the dead worker's share of the gauges went back to 0). Release it with {@link release}.
   */
  adopt(source: string | undefined): void {
    this.process.add(1);
    this.fds?.gauge.add(this.fds.perSession);
    this.listener.add(1);
    if (source === undefined) return;
    let st = this.sources.get(source);
    if (st === undefined) {
      st = { sessions: 0, tokens: this.limits.burstPerSource, last: this.now() };
      this.sources.set(source, st);
    }
    st.sessions++;
  }

  /** A session admitted with {@link admit} ended. */
  release(source: string | undefined): void {
    this.process.add(-1);
    this.fds?.gauge.add(-this.fds.perSession);
    this.listener.add(-1);
    if (source === undefined) return;
    const st = this.sources.get(source);
    if (st !== undefined && st.sessions > 0) st.sessions--;
  }

  /** For the actor tree: the limits in force and the counts they apply to. */
  describe(): Record<string, unknown> {
    const l = this.limits;
    return {
      sessions: this.listener.total(),
      max_sessions: l.maxSessions === Infinity ? null : l.maxSessions,
      session_rate: l.sessionRate,
      process_sessions: this.process.total(),
      process_max_sessions: this.processCap(),
      ...(this.fds === null ? {} : { session_fds: this.fds.perSession, process_session_fds: this.fds.gauge.total(), process_fd_budget: this.fds.budget() }),
      max_sessions_per_source: l.maxPerSource,
      source_session_rate: l.ratePerSource,
      source_session_burst: l.burstPerSource,
      sources: this.sources.size,
    };
  }

  /** One second of this worker's share of `session_rate`, at least one session. */
  private rateBurst(): number {
    return Math.max(1, this.limits.sessionRate / this.workers);
  }

  private refillRate(now: number): void {
    const dt = now - this.rate.last;
    if (dt <= 0) return;
    this.rate.tokens = Math.min(this.rateBurst(), this.rate.tokens + (dt * this.limits.sessionRate) / this.workers / 1000);
    this.rate.last = now;
  }

  private refill(st: SourceState, now: number): void {
    const dt = now - st.last;
    if (dt <= 0) return;
    st.tokens = Math.min(this.limits.burstPerSource, st.tokens + (dt * this.limits.ratePerSource) / 1000);
    st.last = now;
  }

  /**
   * Forget sources with no session and a full bucket (they are indistinguishable from new ones).
   * At most once a second, or every 100 ms when `force`d by a full table. Returns true if
   * anything was forgotten.
   */
  private prune(force: boolean): boolean {
    const now = this.now();
    if (now - this.lastPrune < (force ? 100 : 1000)) return false;
    this.lastPrune = now;
    const before = this.sources.size;
    // forEach, not for-of: this cold loop runs unoptimized, where for-of allocates an entry per source.
    this.sources.forEach((st, k) => {
      if (st.sessions > 0) return;
      this.refill(st, now);
      if (st.tokens >= this.limits.burstPerSource) this.sources.delete(k);
    });
    return this.sources.size < before;
  }
}
