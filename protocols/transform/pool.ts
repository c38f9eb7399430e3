/**
 * The piscina pool that runs transforms: one per worker thread, created when the first Transform
 * cluster of the worker starts and destroyed when the last one closes (reference counted).
 *
 * Why per worker and not one in the main thread: piscina can only be driven from the thread that
 * created it, so a process-wide pool means a relay through the main thread (worker → main → pool
 * thread → main → worker) for every message; bench/transform.ts measures both (see bench/README).
 * A per-worker pool keeps the main thread (admin API, supervision) off the data path. Its size is
 * small: `L7MP_TRANSFORM_THREADS` threads per worker (default 2).
 *
 * The watchdog: a busy-looping user function cannot be interrupted cooperatively, so a message
 * that runs past its cluster's `timeout` is aborted through piscina, which terminates the thread
 * running it and starts a new one. To measure run time rather than queue time, the pool threads
 * mark each task's start in a shared array ({@link WatchdogFlags}); the connections with messages
 * in flight are swept every {@link WATCHDOG_PERIOD_MS} by one interval per worker.
 * ```
 *   main (worker thread)                           pool thread
 *   run({seq: 17, ...}) ──────── queue ──────────► (module loaded) Atomics.store(flags, 17 & MASK, 17); fn(...)
 *   sweep: flags[17 & MASK] === 17 → started = now
 *   sweep: now - started >= timeout → abort → piscina terminates that thread, starts another
 * ```
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type { Piscina } from 'piscina';
import { WATCHDOG_SLOTS, type TransformTask, type WatchdogFlags } from './task.ts';

/** How often the connections with messages in flight are checked for overdue ones. Unit: ms. */
export const WATCHDOG_PERIOD_MS = 50;

/** A connection the watchdog sweeps while it has messages in flight. */
export interface Watched {
  /** Abort the messages overdue at `now` (performance.now() ms), given the start flags. */
  sweep(now: number, started: Int32Array): void;
}

let started: Int32Array | null = null;
let seq = 0;
const watched = new Set<Watched>();
let sweeper: NodeJS.Timeout | null = null;

/** The next task sequence number (a positive int32; 0 means "not started" in the flags). */
export function nextSeq(): number {
  seq = seq >= 0x7fffffff ? 1 : seq + 1;
  return seq;
}

function sweepAll(): void {
  // Stopped lazily: a session that sends one message at a time does not restart it per message.
  if (watched.size === 0 || started === null) {
    if (sweeper !== null) clearInterval(sweeper);
    sweeper = null;
    return;
  }
  const now = performance.now();
  for (const w of watched) w.sweep(now, started);
}

/** Sweep `w` until {@link unwatch}. */
export function watch(w: Watched): void {
  watched.add(w);
  if (sweeper === null) {
    sweeper = setInterval(sweepAll, WATCHDOG_PERIOD_MS);
    sweeper.unref();
  }
}

/** Stop sweeping `w` (nothing of it in flight). */
export function unwatch(w: Watched): void {
  watched.delete(w);
}

// From a checkout the pool threads run the .ts runner; an installed package runs the build (.js).
const runner = path.join(path.dirname(fileURLToPath(import.meta.url)), import.meta.url.endsWith('.js') ? 'runner.js' : 'runner.ts');

/** Pool threads per worker: `L7MP_TRANSFORM_THREADS` (1..64), default 2. */
export function poolThreads(): number {
  const n = Number(process.env.L7MP_TRANSFORM_THREADS ?? 2);
  return Number.isInteger(n) && n >= 1 && n <= 64 ? n : 2;
}

// Loaded on first use: a process without Transform clusters never loads piscina (faster worker start).
const require = createRequire(import.meta.url);

let pool: Piscina<TransformTask, Uint8Array | null> | null = null;
let users = 0;

/** The worker's pool (started if needed); pair with {@link releasePool}. */
export function acquirePool(): Piscina<TransformTask, Uint8Array | null> {
  if (pool === null) {
    const n = poolThreads();
    // Pool threads may block (Atomics) between tasks: they own no sockets. Idle ones linger 30 s.
    const { Piscina: Pool } = require('piscina') as typeof import('piscina');
    started = new Int32Array(new SharedArrayBuffer(4 * WATCHDOG_SLOTS));
    const workerData: WatchdogFlags = { started };
    pool = new Pool({ filename: runner, minThreads: 1, maxThreads: n, idleTimeout: 30_000, name: 'default', workerData });
  }
  users++;
  return pool;
}

/** One user of the pool is done; the last one destroys it (pending tasks reject). */
export function releasePool(): void {
  if (users === 0) return;
  users--;
  if (users === 0 && pool !== null) {
    const p = pool;
    pool = null;
    void p.destroy().catch(() => {});
  }
}
