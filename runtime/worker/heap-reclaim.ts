/**
 * Gives a worker's memory back after a burst of sessions ended (issue 12: RSS back near its
 * baseline after a flood). Every session leaves garbage in the worker's V8 heap, and V8 grows the
 * heap it has committed to hold it; once the burst is over nothing allocates, so no collection
 * runs and the committed heap (and the process RSS) stays at its peak. Once a second this checks:
 * when the committed heap is over twice what the last collection left (and over `floorBytes`), the
 * worker holds at most half the sessions it had at the peak since then, and the event loop is not
 * late, and the session count held still since the last check (the burst is over), it runs one
 * memory-reducing full collection, at most every `minIntervalMs`; V8 then unmaps the pages it
 * freed.
 *
 * The collector is reached through V8's `--expose-gc` flag, set for this thread's new contexts
 * only (node:v8 setFlagsFromString, node:vm); the proxy's own code never calls it elsewhere.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** A full, synchronous collection of this isolate, or null where it cannot be had. */
function collector(): ((opts?: Record<string, string>) => void) | null {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as (opts?: Record<string, string>) => void) : null;
  } catch {
    return null;
  }
}

/** What the reclaimer reads and does; the defaults are this isolate's. Tests pass their own. */
export interface HeapAccess {
  /** Committed and used heap, bytes. */
  stats(): { total: number; used: number };
  /** A memory-reducing full collection, or null where none can be had. */
  readonly collect: (() => void) | null;
}

function isolateHeap(): HeapAccess {
  const gc = collector();
  return {
    stats: () => {
      const h = getHeapStatistics();
      return { total: h.total_heap_size, used: h.used_heap_size };
    },
    // 'last-resort': V8's memory-reducing full collection, which also gives the freed pages back.
    collect: gc === null ? null : () => gc({ type: 'major', execution: 'sync', flavor: 'last-resort' }),
  };
}

export class HeapReclaimer {
  /** Collections run (a metric). */
  reclaims = 0;
  /** ms the last collection took. */
  lastMs = 0;
  private readonly sessions: () => number;
  private readonly busy: () => boolean;
  private readonly floorBytes: number;
  private readonly minIntervalMs: number;
  private readonly heap: HeapAccess;
  private heapAfterGc: number;
  private peakSessions = 0;
  /** Sessions at the previous check: a collection waits until the count holds still for a check. */
  private lastSessions = -1;
  private lastGcAt = 0;
  private timer: NodeJS.Timeout | null = null;

  /**
   * @param sessions this worker's live sessions now
   * @param busy true while the worker is overloaded (no collection then)
   */
  constructor(sessions: () => number, busy: () => boolean, floorBytes = 64 * 1024 * 1024, minIntervalMs = 5_000, heap: HeapAccess = isolateHeap()) {
    this.heap = heap;
    this.heapAfterGc = heap.stats().used;
    this.sessions = sessions;
    this.busy = busy;
    this.floorBytes = floorBytes;
    this.minIntervalMs = minIntervalMs;
  }

  start(): void {
    if (this.timer !== null || this.heap.collect === null) return;
    this.timer = setInterval(() => this.check(Date.now()), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** @internal One check; returns true if it collected. */
  check(now: number): boolean {
    const n = this.sessions();
    if (n > this.peakSessions) this.peakSessions = n;
    const settled = n === this.lastSessions;
    this.lastSessions = n;
    const collect = this.heap.collect;
    if (collect === null || !settled || now - this.lastGcAt < this.minIntervalMs || this.busy()) return false;
    const committed = this.heap.stats().total;
    if (committed < this.floorBytes || committed < 2 * this.heapAfterGc || n > this.peakSessions / 2) return false;
    const t = performance.now();
    collect();
    this.lastMs = performance.now() - t;
    this.lastGcAt = now;
    this.reclaims++;
    this.heapAfterGc = this.heap.stats().used;
    this.peakSessions = n;
    return true;
  }
}
