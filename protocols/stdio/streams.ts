/**
 * The process's stdin and stdout as seen from a worker thread. stdin is read straight from fd 0
 * (a pipe or socket through a libuv pipe handle, a terminal through a tty handle, a file or
 * /dev/null through fs), once per thread, and every chunk goes to every subscriber; stdout is the
 * worker's `process.stdout`, which Node forwards to the process's stdout in order.
 */
import fs from 'node:fs';
import net from 'node:net';
import tty from 'node:tty';
import type { Readable } from 'node:stream';

/** Receives stdin. */
export interface StdinSubscriber {
  onStdin(chunk: Buffer): void;
  /** EOF on stdin: nothing more will come. */
  onStdinEnd(): void;
}

let stdin: Readable | null = null;
let ended = false;
const subscribers = new Set<StdinSubscriber>();

function open(): Readable {
  let r: Readable;
  if (tty.isatty(0)) r = new tty.ReadStream(0);
  else {
    const st = fs.fstatSync(0);
    r = st.isFIFO() || st.isSocket() ? new net.Socket({ fd: 0, readable: true, writable: false }) : fs.createReadStream('', { fd: 0, autoClose: false });
  }
  r.on('data', (chunk: Buffer | string) => {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    for (const s of subscribers) s.onStdin(b);
  });
  r.on('end', () => {
    ended = true;
    for (const s of subscribers) s.onStdinEnd();
  });
  r.on('error', () => {
    ended = true;
    for (const s of subscribers) s.onStdinEnd();
  });
  return r;
}

/** Start receiving stdin (opened on first use). A subscriber that comes after EOF gets `end` at once. */
export function subscribeStdin(s: StdinSubscriber): void {
  subscribers.add(s);
  if (ended) {
    queueMicrotask(() => s.onStdinEnd());
    return;
  }
  stdin ??= open();
  stdin.resume();
}

/** Stop receiving; stdin is paused when nobody listens (and kept open for a later subscriber). */
export function unsubscribeStdin(s: StdinSubscriber): void {
  subscribers.delete(s);
  if (subscribers.size === 0) stdin?.pause();
}

/** Pause or resume stdin for everyone (backpressure from a subscriber). */
export function pauseStdin(paused: boolean): void {
  if (paused) stdin?.pause();
  else if (subscribers.size > 0) stdin?.resume();
}
