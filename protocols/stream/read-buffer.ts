/**
 * Reads of one stream socket into buffers this module recycles (Node's `onread` option), instead of
 * a fresh 64 KiB ArrayBuffer per read.
 *
 * Why: V8 counts every ArrayBuffer backing store as external memory, and each 64 MiB of it starts a
 * full mark-compact of the heap: at 10 Gbit/s about 20 a second. On one CPU the marking (its
 * concurrent threads included) took about a third of the proxy's time, more the larger the
 * worker's heap. A buffer that goes back into the read is no allocation at all.
 *
 * Ownership: a read chunk is a view of the socket's buffer. The consumer returns true from
 * `deliver` only if it kept no reference to it (the session's hop towards a socket whose write went
 * to the kernel at once: `Connection.sendReleased`); then the next read reuses the memory. Any
 * other answer (a queued write, a handler that holds chunks during setup) leaves the buffer to the
 * consumer, and the next read gets another one, of 64 KiB like Node's own: never worse than the
 * stream reads.
 *
 * Size: a socket starts with a 4 KiB buffer (what an idle connection keeps); a read that filled
 * its buffer (and was released) moves it one size up (64 KiB, then 256 KiB), a read of at most
 * 16 KiB back to 64 KiB, one of at most 4 KiB back to 4 KiB. The buffers above 4 KiB that sockets
 * of a thread hold at once are bounded ({@link READ_HELD_BUDGET}): past it a socket gets the next
 * smaller size, so idle connections that once moved bulk data cannot pin much memory. Buffers a
 * socket gives up go to a per-thread free list (bounded; modules are per worker, so nothing is
 * shared between threads).
 */
import type net from 'node:net';

/**
 * Read buffer sizes. Unit: bytes. LARGE is four times Node's own read size because each read costs
 * about the same fixed time (event loop, syscalls) whatever its size: one TCP flow through the
 * proxy took 22 % less CPU per byte than with 64 KiB (bench/tcp-one-flow.ts; 512 KiB was no
 * better). MEDIUM (Node's size) follows a chunk the consumer kept, whose memory is not reused.
 */
export const READ_SMALL = 4096;
export const READ_MEDIUM = 65536;
export const READ_LARGE = 262144;

/** Free buffers kept per thread, by size: at most 1 + 2 + 4 MiB. */
const pools = new Map<number, { free: Buffer[]; keep: number }>([
  [READ_SMALL, { free: [], keep: 256 }],
  [READ_MEDIUM, { free: [], keep: 32 }],
  [READ_LARGE, { free: [], keep: 16 }],
]);

function take(size: number): Buffer {
  return pools.get(size)?.free.pop() ?? Buffer.allocUnsafeSlow(size);
}

function give(b: Buffer): void {
  const p = pools.get(b.length);
  if (p !== undefined && p.free.length < p.keep) p.free.push(b);
}

/**
 * Bytes of buffers above 4 KiB that the sockets of this thread hold (not counting chunks their
 * consumers kept, nor the free lists): at most 32 MiB, e.g. 128 bulk flows at 256 KiB.
 */
export const READ_HELD_BUDGET = 32 * 1024 * 1024;
let heldBig = 0;

/** The size of the next read buffer after a read of `n` bytes into `size` (before the budget). */
function nextSize(n: number, size: number, kept: boolean): number {
  if (kept) return n <= READ_SMALL ? READ_SMALL : READ_MEDIUM;
  if (n === size) return size === READ_SMALL ? READ_MEDIUM : READ_LARGE;
  if (n <= READ_SMALL) return READ_SMALL;
  if (n <= READ_MEDIUM / 4) return READ_MEDIUM;
  return size;
}

/** Take a buffer of `want` bytes, or of the next smaller size the budget allows; counts it as held. */
function takeHeld(want: number): Buffer {
  let size = want;
  if (size === READ_LARGE && heldBig + size > READ_HELD_BUDGET) size = READ_MEDIUM;
  if (size === READ_MEDIUM && heldBig + size > READ_HELD_BUDGET) size = READ_SMALL;
  if (size !== READ_SMALL) heldBig += size;
  return take(size);
}

/** A socket no longer holds `b` (given back, kept by a consumer, or the socket closed). */
function dropHeld(b: Buffer): void {
  if (b.length !== READ_SMALL) heldBig -= b.length;
}

/** Free buffers held by this thread's pool (tests, metrics). */
export function readPoolSize(): { large: number; medium: number; small: number; heldBig: number } {
  const n = (size: number): number => pools.get(size)?.free.length ?? 0;
  return { large: n(READ_LARGE), medium: n(READ_MEDIUM), small: n(READ_SMALL), heldBig };
}

/**
 * The read side of one socket. Pass {@link ReadBuffer.onread} when the socket is created, then set
 * {@link ReadBuffer.deliver}. Reads that arrive before `deliver` is set are kept in `early`
 * (their buffers are not reused).
 */
export class ReadBuffer {
  /** Receives each chunk; returns true if it kept no reference to it. */
  deliver: (data: Buffer) => boolean | void = (data) => {
    this.early.push(data);
  };
  readonly early: Buffer[] = [];
  private buf: Buffer = take(READ_SMALL);
  /** The consumer kept no reference to the last chunk: `buf` may be read into again. */
  private reusable = true;
  /** Bytes of the last read. */
  private last = 0;
  private released = false;

  /** Node's `onread` option for this socket. */
  readonly onread: net.OnReadOpts = {
    buffer: () => this.next(),
    callback: (n: number, b: Uint8Array): boolean => {
      this.last = n;
      this.reusable = this.deliver((b as Buffer).subarray(0, n)) === true;
      return true; // pause and resume go through the socket
    },
  };

  /** The buffer for the next read (Node asks after each read). */
  private next(): Buffer {
    const cur = this.buf;
    const want = nextSize(this.last, cur.length, !this.reusable);
    if (this.released) {
      // The socket closed inside the last callback: no more reads; nothing is taken from the pool.
      return cur;
    }
    if (this.reusable && want === cur.length) return cur;
    dropHeld(cur);
    if (this.reusable) give(cur);
    this.buf = takeHeld(want);
    this.reusable = true;
    return this.buf;
  }

  /** The socket closed: its buffer goes back to the pool unless a consumer still holds it. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    dropHeld(this.buf);
    if (this.reusable) give(this.buf);
    this.reusable = false;
  }
}
