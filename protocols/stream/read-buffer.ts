/**
 * Reads of one stream socket into buffers this module recycles (Node's `onread` option), instead of
 * a fresh 64 KiB ArrayBuffer per read.
 *
 * Why: V8 counts every ArrayBuffer backing store as external memory, and each 64 MiB of it starts a
 * full mark-compact of the heap. A relay at 10 Gbit/s allocated about 20 of them a second; on one
 * CPU the marking (concurrent marking threads included) took about a third of the proxy's time, and
 * more the larger the worker's heap. A buffer that goes back into the read is no allocation at all.
 *
 * Ownership: a read chunk is a view of the socket's buffer. The consumer returns true from
 * `deliver` only if it kept no reference to it (the session's hop towards a socket whose write went
 * to the kernel at once: `Connection.sendReleased`); then the next read reuses the memory. Any
 * other answer (a queued write, a handler that holds chunks during setup) leaves the buffer to the
 * consumer, and the next read gets another one: never worse than Node's own allocation per read.
 *
 * Size: a socket starts with a 4 KiB buffer (what an idle connection keeps), moves to 64 KiB after
 * a read that filled its buffer, and back to 4 KiB after a read of at most 4 KiB. Buffers a socket
 * gives up go to a per-thread free list (bounded; modules are per worker, so no sharing between
 * threads).
 */
import type net from 'node:net';

/** Read buffer sizes. Unit: bytes. */
export const READ_SMALL = 4096;
export const READ_LARGE = 65536;
/** Free buffers kept per thread, per size (at most 4 MiB of large and 1 MiB of small ones). */
const KEEP_LARGE = 64;
const KEEP_SMALL = 256;

const freeLarge: Buffer[] = [];
const freeSmall: Buffer[] = [];

function take(size: number): Buffer {
  const b = (size === READ_LARGE ? freeLarge : freeSmall).pop();
  return b ?? Buffer.allocUnsafeSlow(size);
}

function give(b: Buffer): void {
  if (b.length === READ_LARGE) {
    if (freeLarge.length < KEEP_LARGE) freeLarge.push(b);
  } else if (b.length === READ_SMALL && freeSmall.length < KEEP_SMALL) freeSmall.push(b);
}

/** Free buffers held by this thread's pool (tests, metrics). */
export function readPoolSize(): { large: number; small: number } {
  return { large: freeLarge.length, small: freeSmall.length };
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
    const want = this.last === cur.length ? READ_LARGE : this.last <= READ_SMALL ? READ_SMALL : cur.length;
    if (this.released) {
      // The socket closed inside the last callback: no more reads; nothing is taken from the pool.
      return cur;
    }
    if (this.reusable && want === cur.length) return cur;
    if (this.reusable) give(cur);
    this.buf = take(want);
    this.reusable = true;
    return this.buf;
  }

  /** The socket closed: its buffer goes back to the pool unless a consumer still holds it. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.reusable) give(this.buf);
    this.reusable = false;
  }
}
