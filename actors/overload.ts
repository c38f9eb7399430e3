/**
 * The overload guard of one worker thread: new datagram sessions are refused while the worker's
 * event loop is late, so that the sessions it already carries keep their latency under a flood of
 * new peers (docs/threat-model.md; Envoy's overload manager, which stops accepting new
 * connections under pressure).
 *
 * A timer fires every `tickMs` (10 ms) while new sessions are being admitted, and stops after
 * `IDLE_TICKS` ticks (200 ms) in which none was: a worker that carries its sessions and sees no new
 * peer has no timer waking it 100 times a second (each wake-up delays the datagrams that arrive
 * meanwhile: the p99.9 of a relayed round trip). The lag is how late it fired. The worker is overloaded
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
/** Ticks in a row with no admission after which the timer stops (the next admission starts it): 200 ms. */
export const IDLE_TICKS = 20;

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
  /** {@link start}ed: admissions run the timer. */
  private enabled = false;
  /** Admissions since the last tick. */
  private admits = 0;
  /** Ticks in a row with no admission. */
  private idleTicks = 0;

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

  /**
   * Measure from now on, while sessions are being admitted: the next admission starts the probe
   * (unref'd: it never keeps a thread alive). Idempotent.
   */
  start(): void {
    this.enabled = true;
  }

  stop(): void {
    this.enabled = false;
    this.stopTimer();
  }

  private startTimer(): void {
    this.lastTick = this.now();
    this.idleTicks = 0;
    this.timer = setInterval(() => this.onTimer(), this.tickMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private onTimer(): void {
    this.tick();
    if (this.admits > 0) this.idleTicks = 0;
    else if (++this.idleTicks >= IDLE_TICKS) {
      // No new peer for 200 ms: no flood to measure. The next admission starts afresh.
      this.stopTimer();
      this.lateStreak = 0;
      this.overloaded = false;
      this.lastLagMs = 0;
    }
    this.admits = 0;
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
    this.admits++;
    if (this.timer === null && this.enabled && this.maxLagMs !== 0) this.startTimer();
    if (this.maxLagMs === 0 || !this.overloaded) return true;
    if (this.lateAdmits === 0) {
      this.lateAdmits++;
      return true;
    }
    this.refused++;
    return false;
  }

  /** True while the probe timer runs (sessions were admitted within the last 200 ms). */
  get probing(): boolean {
    return this.timer !== null;
  }

  /** True while the guard refuses new sessions. */
  get active(): boolean {
    return this.maxLagMs !== 0 && this.overloaded;
  }
}
