/**
 * protocols/stream/read-buffer.ts, driven the way Node drives `onread` (buffer() once when the
 * socket is set up and after every read, callback() per read): the memory is read into again only
 * when the consumer kept no reference, sizes follow the reads, and buffers go back to the pool.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { READ_HELD_BUDGET, READ_LARGE, READ_MEDIUM, READ_SMALL, ReadBuffer, readPoolSize } from '../../protocols/stream/read-buffer.ts';

/** One read of `n` bytes into the socket's current buffer, as Node does it; returns the next buffer. */
function read(rb: ReadBuffer, buf: Uint8Array, n: number): Uint8Array {
  (rb.onread.callback as (n: number, b: Uint8Array) => boolean)(n, buf);
  return (rb.onread.buffer as () => Uint8Array)();
}

test('ReadBuffer: reuse only after a released chunk; one size up after a full read, 64 KiB after a kept one, down after small ones; buffers go back to the pool', () => {
  const rb = new ReadBuffer();
  let released = true;
  const seen: Buffer[] = [];
  rb.deliver = (data) => {
    seen.push(data);
    return released;
  };
  let buf = (rb.onread.buffer as () => Uint8Array)();
  assert.equal(buf.length, READ_SMALL, 'an idle socket holds a small buffer');

  // A small read, released: the same memory next time.
  let next = read(rb, buf, 10);
  assert.equal(next, buf);
  assert.equal(seen[0]?.length, 10);
  assert.equal(seen[0]?.buffer, buf.buffer, 'the chunk is a view, not a copy');

  // Reads that fill the buffer: one size up, then the next.
  next = read(rb, buf, READ_SMALL);
  assert.equal(next.length, READ_MEDIUM);
  buf = next;
  next = read(rb, buf, READ_MEDIUM);
  assert.equal(next.length, READ_LARGE);
  buf = next;

  // A middling read, released: the size stays.
  next = read(rb, buf, 100_000);
  assert.equal(next, buf);

  // Kept by the consumer (a queued write): never read into again; the next one is Node's size.
  released = false;
  next = read(rb, buf, 100_000);
  assert.notEqual(next, buf);
  assert.equal(next.length, READ_MEDIUM);
  const kept = buf;
  buf = next;

  // Full and released: large again; the medium one goes to the pool.
  released = true;
  let before = readPoolSize();
  next = read(rb, buf, READ_MEDIUM);
  assert.equal(next.length, READ_LARGE);
  assert.equal(readPoolSize().medium, before.medium + 1);
  buf = next;

  // Smaller reads, released: 64 KiB after one of at most 16 KiB, 4 KiB after one of at most 4 KiB.
  before = readPoolSize();
  next = read(rb, buf, 10_000);
  assert.equal(next.length, READ_MEDIUM);
  assert.equal(readPoolSize().large, before.large + 1);
  buf = next;
  next = read(rb, buf, 100);
  assert.equal(next.length, READ_SMALL);
  assert.notEqual(next, kept);
  buf = next;

  // Closed: its buffer goes back to the pool (idempotent).
  const small = readPoolSize().small;
  rb.release();
  rb.release();
  assert.equal(readPoolSize().small, small + 1);
});

test('ReadBuffer: reads before a consumer is set are kept in order, their buffers not reused', () => {
  const rb = new ReadBuffer();
  const buf = (rb.onread.buffer as () => Uint8Array)();
  const next = read(rb, buf, 5);
  assert.notEqual(next, buf);
  assert.deepEqual(rb.early.map((b) => b.length), [5]);
  rb.release();
});

test('ReadBuffer: the large buffers sockets hold are bounded per thread; closing gives the budget back', () => {
  const start = readPoolSize().heldBig;
  const rbs: ReadBuffer[] = [];
  const sizes: number[] = [];
  for (let i = 0; i < READ_HELD_BUDGET / READ_LARGE + 8; i++) {
    const rb = new ReadBuffer();
    rb.deliver = () => true;
    let buf = (rb.onread.buffer as () => Uint8Array)();
    buf = read(rb, buf, buf.length);
    buf = read(rb, buf, buf.length);
    rbs.push(rb);
    sizes.push(buf.length);
  }
  assert.ok(readPoolSize().heldBig <= READ_HELD_BUDGET, `held ${readPoolSize().heldBig}`);
  assert.equal(sizes[0], READ_LARGE);
  assert.ok((sizes.at(-1) ?? READ_LARGE) < READ_LARGE, 'past the budget a socket gets a smaller buffer');
  for (const rb of rbs) rb.release();
  assert.equal(readPoolSize().heldBig, start);
});
