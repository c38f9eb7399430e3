/**
 * The piscina pool that runs transforms: one per worker thread, created when the first Transform
 * cluster of the worker starts and destroyed when the last one closes (reference counted).
 *
 * Why per worker and not one in the main thread: piscina can only be driven from the thread that
 * created it, so a process-wide pool means a relay through the main thread (worker → main → pool
 * thread → main → worker) for every message; bench/transform.ts measures both (see bench/README).
 * A per-worker pool keeps the main thread (admin API, supervision) off the data path. Its size is
 * small: `L7MP_TRANSFORM_THREADS` threads per worker (default 2).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type { Piscina } from 'piscina';
import type { TransformTask } from './runner.ts';

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
    pool = new Pool({ filename: runner, minThreads: 1, maxThreads: n, idleTimeout: 30_000, name: 'default' });
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
