/**
 * A FIFO queue of ring buffers: fixed-size circular arrays chained in a linked list, so push and
 * shift are O(1) with no array re-indexing and little garbage. The same shape as undici's
 * `lib/dispatcher/fixed-queue.js` (itself from Node's internal fixed_queue).
 *
 * ```
 *   tail ──► [ring 0: 16 slots] ──next──► [ring 1: 32] ──next──► ... [ring k: up to 2048] ◄── head
 *            ▲ shift() reads here                                     ▲ push() writes here
 * ```
 * A ring is full when `(top + 1) & mask === bottom` (one slot is left empty to tell full from
 * empty); then push starts a new ring, twice as large up to 2048 slots, and links it. Rings start
 * small because every actor has two queues (its mailbox and its system queue) and most hold a
 * message or two: 2048 slots each made 32 KiB of every session (issue 12, bench:flood). An empty
 * queue holds no ring at all (an idle session's queues are empty).
 */

/** Slots of a queue's first ring, and of the largest. */
const kFirst = 16;
const kMax = 2048;

class Ring<T> {
  bottom = 0;
  top = 0;
  readonly mask: number;
  readonly list: Array<T | undefined>;
  next: Ring<T> | null = null;

  /** @param size a power of two */
  constructor(size: number) {
    this.mask = size - 1;
    this.list = new Array(size);
  }

  isEmpty(): boolean {
    return this.top === this.bottom;
  }

  isFull(): boolean {
    return ((this.top + 1) & this.mask) === this.bottom;
  }

  push(v: T): void {
    this.list[this.top] = v;
    this.top = (this.top + 1) & this.mask;
  }

  shift(): T | undefined {
    const v = this.list[this.bottom];
    if (v === undefined) return undefined;
    this.list[this.bottom] = undefined;
    this.bottom = (this.bottom + 1) & this.mask;
    return v;
  }
}

/**
 * Unbounded FIFO of non-undefined values; bound it in the caller (see Mailbox). An empty queue
 * holds no ring: the first push makes one, the shift that empties the queue lets it go (an idle
 * session's two queues are a few bytes each, not two 16-slot arrays).
 */
export class FixedQueue<T> {
  private head: Ring<T> | null = null;
  private tail: Ring<T> | null = null;
  /** Number of queued values. */
  length = 0;

  isEmpty(): boolean {
    return this.length === 0;
  }

  push(v: T): void {
    let h = this.head;
    if (h === null) h = this.head = this.tail = new Ring<T>(kFirst);
    else if (h.isFull()) {
      // The head ring is the one we write to; a full one gets a successor.
      h = this.head = h.next = new Ring<T>(Math.min(kMax, 2 * h.list.length));
    }
    h.push(v);
    this.length++;
  }

  /** Remove and return the oldest value, or undefined when empty. */
  shift(): T | undefined {
    const tail = this.tail;
    if (tail === null) return undefined;
    const next = tail.shift();
    if (next === undefined) return undefined;
    this.length--;
    if (tail.isEmpty()) {
      if (tail.next !== null) this.tail = tail.next;
      else this.head = this.tail = null;
    }
    return next;
  }

  /** Drop everything. */
  clear(): void {
    this.head = this.tail = null;
    this.length = 0;
  }
}
