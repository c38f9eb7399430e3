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

/** Something the coarse timers call periodically. */
export interface Tickable {
  /**
   * Called when due, with the clock's current time (ms). Returns in how many periods it wants its
   * next call (default 1: every period; at most {@link MAX_EVERY}): a member that needs no finer
   * resolution (a session whose idle timeout is minutes) costs the sweep that much less.
   */
  onTick(nowMs: number): number | void;
}

/** Slots per period: with more than SLICE_ABOVE members a tick visits one slot, a fifth of a period's members. */
const SLICES = 5;
/** More members than this: the sweep is sliced (fewer: one tick per period visits them all). */
const SLICE_ABOVE = 1000;
/** The longest a member waits between calls, in periods (15 s at the default 250 ms). */
export const MAX_EVERY = 60;
/** Slots of the wheel: a member due in up to {@link MAX_EVERY} periods has its own. */
const WHEEL = (MAX_EVERY + 1) * SLICES;

/**
 * One periodic sweep for a whole worker: a timing wheel of {@link SLICES} slots per `periodMs`
 * (default 250 ms, what idle timeouts of seconds need). A member is called within one period of
 * its `add`, then again after as many periods as its {@link Tickable.onTick} returns, while it is
 * registered; new members are spread over the next period's slots. Up to 1000 members, one tick
 * per period visits that period's slots; above, a tick every `periodMs / 5` visits one, so 10 000
 * sessions cost five short stops of the event loop per period instead of one five times as long (a
 * datagram that arrives during a sweep waits for it), and a few sessions do not wake the loop more
 * than 4 times a second. A sweep touches only the members due, not every member (100 000 idle
 * sessions with minutes of idle timeout: a few thousand calls a second, not 400 000). The
 * interval runs only while there is at least one member.
 */
export class CoarseTimers {
  /** The members due in each slot (null: none). */
  private readonly wheel: Array<Set<Tickable> | null> = new Array<Set<Tickable> | null>(WHEEL).fill(null);
  /** Each member's slot. */
  private readonly slotOf = new Map<Tickable, number>();
  /** The slot the next tick visits first. */
  private cursor = 0;
  /** Round robin over the next period's slots for new members. */
  private spread = 0;
  private stop: (() => void) | null = null;
  /** The interval ticks `periodMs / SLICES` (more than SLICE_ABOVE members) rather than `periodMs`. */
  private sliced = false;
  readonly clock: Clock;
  /** Sweep period in ms: the resolution of every coarse timer. */
  readonly periodMs: number;

  constructor(clock: Clock, periodMs = 250) {
    this.clock = clock;
    this.periodMs = periodMs;
  }

  /** Register `t`, or move it up if it is registered: its next call comes within one period. */
  add(t: Tickable): void {
    const at = this.slotOf.get(t);
    if (at !== undefined) {
      if ((at - this.cursor + WHEEL) % WHEEL < SLICES) return;
      this.wheel[at]?.delete(t);
    }
    this.place(t, (this.cursor + (this.spread++ % SLICES)) % WHEEL);
    if (this.stop === null) this.arm(false);
    else if (!this.sliced && this.slotOf.size > SLICE_ABOVE) this.arm(true);
  }

  delete(t: Tickable): void {
    const slot = this.slotOf.get(t);
    if (slot === undefined) return;
    this.slotOf.delete(t);
    this.wheel[slot]?.delete(t);
    if (this.slotOf.size === 0) this.disarm();
    else if (this.sliced && this.slotOf.size <= SLICE_ABOVE / 2) this.arm(false);
  }

  get size(): number {
    return this.slotOf.size;
  }

  private place(t: Tickable, slot: number): void {
    this.slotOf.set(t, slot);
    (this.wheel[slot] ??= new Set()).add(t);
  }

  private arm(sliced: boolean): void {
    this.disarm();
    this.sliced = sliced;
    this.stop = this.clock.every(sliced ? this.periodMs / SLICES : this.periodMs, () => this.sweep());
  }

  private disarm(): void {
    if (this.stop !== null) this.stop();
    this.stop = null;
  }

  private sweep(): void {
    const now = this.clock.now();
    for (let n = this.sliced ? 1 : SLICES; n > 0 && this.stop !== null; n--) {
      const slot = this.cursor;
      this.cursor = (slot + 1) % WHEEL;
      const due = this.wheel[slot];
      if (due === null || due === undefined) continue;
      this.wheel[slot] = null;
      for (const t of due) {
        // Deleted by an earlier member's tick (this slot's set is detached: delete did not see it).
        if (this.slotOf.get(t) !== slot) continue;
        let every: number | void = 1;
        try {
          every = t.onTick(now);
        } catch {
          // A member's tick must not stop the sweep for the others; members report their own faults.
        }
        // Still registered (its tick may have deleted it): due again in `every` periods.
        if (this.slotOf.get(t) !== slot) continue;
        const periods = typeof every === 'number' && every > 1 ? Math.min(Math.floor(every), MAX_EVERY) : 1;
        this.place(t, (slot + periods * SLICES) % WHEEL);
      }
    }
  }
}
