/**
 * The overload guard of one worker thread: new datagram sessions are refused while the worker's
 * event loop is late, so that the sessions it already carries keep their latency under a flood of
 * new peers (docs/threat-model.md; Envoy's overload manager, which stops accepting new
 * connections under pressure).
 *
 * A timer fires every `tickMs` (10 ms). The lag is how late it fired. The worker is overloaded
 * from the `LATE_TICKS`-th tick in a row whose lag exceeded `maxLagMs` until a tick whose lag is
 * below half of it: a sustained lag, as a flood of new peers makes, not a one-off stall (a GC, a
 * module loading, a thread pool starting), after which the peers that waited meanwhile must still
 * get in. While overloaded, the guard admits one new session per tick and refuses the others.
 * Creating a session costs far more than dropping a datagram, so refusing sheds load at once; the
 * one per tick keeps new peers coming in (slowly) when the machine is merely busy with other work,
 * and how many sessions per second get in adapts to what the machine can do.
 *
 * Stream listeners are not guarded here: their peers wait in the kernel's accept queue.
 */

/** What the guard reads of time: ms, monotonic. */
export type MonoClock = () => number;

/** Default `admin.overload_lag_ms`. */
export const DEFAULT_OVERLOAD_LAG_MS = 50;
/** Late ticks in a row that make a worker overloaded. */
export const LATE_TICKS = 3;

export class OverloadGuard {
  /** Lag of the last tick, ms. */
  lastLagMs = 0;
  /** Sessions refused since start. */
  refused = 0;
  /** Ticks that found the loop late by more than the threshold. */
  lateTicks = 0;
  private maxLagMs: number;
  private readonly tickMs: number;
  private readonly now: MonoClock;
  private lastTick: number;
  private overloaded = false;
  /** Late ticks in a row. */
  private lateStreak = 0;
  /** Sessions admitted since the last tick while late. */
  private lateAdmits = 0;
  private timer: NodeJS.Timeout | null = null;

  /**
   * @param maxLagMs refuse when the event loop is this late (ms); 0 turns the guard off
   * @param tickMs period of the lag probe (ms)
   */
  constructor(maxLagMs = DEFAULT_OVERLOAD_LAG_MS, tickMs = 10, now: MonoClock = () => performance.now()) {
    this.maxLagMs = maxLagMs;
    this.tickMs = tickMs;
    this.now = now;
    this.lastTick = now();
  }

  /** Start probing (unref'd: it never keeps a thread alive). Idempotent. */
  start(): void {
    if (this.timer !== null) return;
    this.lastTick = this.now();
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** A new lag threshold (ms; 0: off), from a config change. */
  setMaxLag(ms: number): void {
    this.maxLagMs = ms;
    if (ms === 0) this.overloaded = false;
  }

  /** @internal One probe: how late this tick is. Tests call it with a fake clock. */
  tick(): void {
    const t = this.now();
    const lag = Math.max(0, t - this.lastTick - this.tickMs);
    this.lastTick = t;
    this.lastLagMs = lag;
    this.lateAdmits = 0;
    if (this.maxLagMs === 0) return;
    if (lag > this.maxLagMs) {
      this.lateTicks++;
      if (++this.lateStreak >= LATE_TICKS) this.overloaded = true;
    } else {
      this.lateStreak = 0;
      if (lag < this.maxLagMs / 2) this.overloaded = false;
    }
  }

  /** May a new session be created now? A refusal is counted in {@link refused}. */
  admit(): boolean {
    if (this.maxLagMs === 0 || !this.overloaded) return true;
    if (this.lateAdmits === 0) {
      this.lateAdmits++;
      return true;
    }
    this.refused++;
    return false;
  }

  /** True while the guard refuses new sessions. */
  get active(): boolean {
    return this.maxLagMs !== 0 && this.overloaded;
  }
}
