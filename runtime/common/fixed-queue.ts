/**
 * A FIFO queue of ring buffers: fixed-size circular arrays chained in a linked list, so push and
 * shift are O(1) with no array re-indexing and little garbage. The same shape as undici's
 * `lib/dispatcher/fixed-queue.js` (itself from Node's internal fixed_queue).
 *
 * ```
 *   head ──► [ring 0: 2048 slots] ──next──► [ring 1] ──next──► null
 *            ▲ shift() reads here                ▲ push() writes into the tail ring
 * ```
 * A ring is full when `(top + 1) & mask === bottom` (one slot is left empty to tell full from
 * empty); then push starts a new ring and links it.
 */

const kSize = 2048;
const kMask = kSize - 1;

class Ring<T> {
  bottom = 0;
  top = 0;
  readonly list: Array<T | undefined> = new Array(kSize);
  next: Ring<T> | null = null;

  isEmpty(): boolean {
    return this.top === this.bottom;
  }

  isFull(): boolean {
    return ((this.top + 1) & kMask) === this.bottom;
  }

  push(v: T): void {
    this.list[this.top] = v;
    this.top = (this.top + 1) & kMask;
  }

  shift(): T | undefined {
    const v = this.list[this.bottom];
    if (v === undefined) return undefined;
    this.list[this.bottom] = undefined;
    this.bottom = (this.bottom + 1) & kMask;
    return v;
  }
}

/** Unbounded FIFO of non-undefined values; bound it in the caller (see Mailbox). */
export class FixedQueue<T> {
  private head: Ring<T>;
  private tail: Ring<T>;
  /** Number of queued values. */
  length = 0;

  constructor() {
    this.head = this.tail = new Ring<T>();
  }

  isEmpty(): boolean {
    return this.length === 0;
  }

  push(v: T): void {
    if (this.head.isFull()) {
      // The head ring is the one we write to; a full one gets a successor.
      this.head = this.head.next = new Ring<T>();
    }
    this.head.push(v);
    this.length++;
  }

  /** Remove and return the oldest value, or undefined when empty. */
  shift(): T | undefined {
    const tail = this.tail;
    const next = tail.shift();
    if (next === undefined) return undefined;
    this.length--;
    if (tail.isEmpty() && tail.next !== null) this.tail = tail.next;
    return next;
  }

  /** Drop everything. */
  clear(): void {
    this.head = this.tail = new Ring<T>();
    this.length = 0;
  }
}
