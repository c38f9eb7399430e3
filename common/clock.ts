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

/** Ticks per period while sliced: each tick visits a fifth of the members. */
const SLICES = 5;
/** More members than this: the sweep is sliced (fewer: one tick per period visits them all). */
const SLICE_ABOVE = 1000;

/**
 * One periodic sweep for a whole worker. Every member is called about once per `periodMs`
 * (default 250 ms, what idle timeouts of seconds need) while registered. Up to 1000 members, one
 * tick per period calls them all; above, the sweep is sliced: a tick every `periodMs / 5` visits
 * the next fifth, so 10 000 idle sessions cost five short stops of the event loop per period
 * instead of one five times as long (a datagram that arrives during a sweep waits for it), and a
 * few sessions do not wake the loop more than 4 times a second. The interval runs only while there
 * is at least one member.
 */
export class CoarseTimers {
  private readonly members = new Set<Tickable>();
  private stop: (() => void) | null = null;
  /** The interval ticks `periodMs / SLICES` (more than SLICE_ABOVE members) rather than `periodMs`. */
  private sliced = false;
  /** Where the sweep goes on at the next tick (a Set iterator sees members added and removed meanwhile). */
  private cursor: Iterator<Tickable> | null = null;
  readonly clock: Clock;
  /** Sweep period in ms: the resolution of every coarse timer. */
  readonly periodMs: number;

  constructor(clock: Clock, periodMs = 250) {
    this.clock = clock;
    this.periodMs = periodMs;
  }

  add(t: Tickable): void {
    this.members.add(t);
    if (this.stop === null) this.arm(false);
    else if (!this.sliced && this.members.size > SLICE_ABOVE) this.arm(true);
  }

  delete(t: Tickable): void {
    this.members.delete(t);
    if (this.members.size === 0) this.disarm();
    else if (this.sliced && this.members.size <= SLICE_ABOVE / 2) this.arm(false);
  }

  get size(): number {
    return this.members.size;
  }

  private arm(sliced: boolean): void {
    this.disarm();
    this.sliced = sliced;
    this.stop = this.clock.every(sliced ? this.periodMs / SLICES : this.periodMs, () => this.sweep());
  }

  private disarm(): void {
    if (this.stop !== null) this.stop();
    this.stop = null;
    this.cursor = null;
  }

  private sweep(): void {
    const now = this.clock.now();
    let cursor = (this.cursor ??= this.members.values());
    let visited = 0;
    for (let budget = this.sliced ? Math.ceil(this.members.size / SLICES) : this.members.size; budget > 0; budget--) {
      let r = cursor.next();
      if (r.done === true) {
        // The end of a round: the next one starts now if this tick has done nothing yet.
        this.cursor = null;
        if (visited > 0) return;
        cursor = this.cursor = this.members.values();
        r = cursor.next();
        if (r.done === true) return;
      }
      visited++;
      try {
        r.value.onTick(now);
      } catch {
        // A member's tick must not stop the sweep for the others; members report their own faults.
      }
    }
    // A full sweep ends its round here.
    if (!this.sliced) this.cursor = null;
  }
}
