/**
 * Time, injected. Everything that measures or waits takes a {@link Clock}, so tests drive a
 * {@link FakeClock} instead of sleeping. A {@link CoarseTimers} per worker replaces per-session
 * `setTimeout`s (a periodic sweep, like undici's `lib/util/timers.js`): one interval for all idle
 * timeouts, no timer allocation per session or per packet.
 */

/** A source of time in milliseconds, plus the one periodic tick the coarse timers need. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Call `fn` every `periodMs` ms until the returned function is called. The tick does not keep the process alive. */
  every(periodMs: number, fn: () => void): () => void;
}

/** The real clock: `Date.now()` and an unref'd `setInterval`. */
export const systemClock: Clock = {
  now: () => Date.now(),
  every(periodMs, fn) {
    const t = setInterval(fn, periodMs);
    t.unref();
    return () => clearInterval(t);
  },
};

/** A clock tests move by hand with {@link FakeClock.advance}; ticks fire synchronously. */
export class FakeClock implements Clock {
  private t: number;
  private readonly ticks = new Set<{ periodMs: number; next: number; fn: () => void }>();

  constructor(startMs = 1_700_000_000_000) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  every(periodMs: number, fn: () => void): () => void {
    const entry = { periodMs, next: this.t + periodMs, fn };
    this.ticks.add(entry);
    return () => this.ticks.delete(entry);
  }

  /** Move time forward by `ms`, firing every tick that falls due, in time order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let due: { periodMs: number; next: number; fn: () => void } | undefined;
      for (const e of this.ticks) if (e.next <= end && (due === undefined || e.next < due.next)) due = e;
      if (due === undefined) break;
      this.t = due.next;
      due.next += due.periodMs;
      due.fn();
    }
    this.t = end;
  }
}

/** Something the coarse timers call on every sweep. */
export interface Tickable {
  /** Called once per sweep with the clock's current time (ms). */
  onTick(nowMs: number): void;
}

/**
 * One periodic sweep for a whole worker. Members are called on each tick while registered; the
 * interval runs only while there is at least one member. Resolution is `periodMs` (default 250 ms),
 * which is what idle timeouts of seconds need.
 */
export class CoarseTimers {
  private readonly members = new Set<Tickable>();
  private stop: (() => void) | null = null;
  readonly clock: Clock;
  /** Sweep period in ms: the resolution of every coarse timer. */
  readonly periodMs: number;

  constructor(clock: Clock, periodMs = 250) {
    this.clock = clock;
    this.periodMs = periodMs;
  }

  add(t: Tickable): void {
    this.members.add(t);
    if (this.stop === null) this.stop = this.clock.every(this.periodMs, () => this.sweep());
  }

  delete(t: Tickable): void {
    this.members.delete(t);
    if (this.members.size === 0 && this.stop !== null) {
      this.stop();
      this.stop = null;
    }
  }

  get size(): number {
    return this.members.size;
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const m of this.members) {
      try {
        m.onTick(now);
      } catch {
        // A member's tick must not stop the sweep for the others; members report their own faults.
      }
    }
  }
}
