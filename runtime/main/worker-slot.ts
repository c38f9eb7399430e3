/**
 * A worker slot as the main thread keeps it (runtime/main/runtime.ts), and the helper its calls to the
 * worker go through: a worker that does not answer in time gets a fallback, never a hang.
 */
import type { Worker, MessagePort } from 'node:worker_threads';
import type * as Comlink from 'comlink';
import type { WorkerApi } from '../worker/worker-main.ts';

/** One worker slot: its current thread (a replacement reuses the slot) and the channels to it. */
export interface Slot {
  readonly slot: number;
  thread: Worker;
  api: Comlink.Remote<WorkerApi>;
  /** Our end of the worker's `HostApi` channel. */
  host: MessagePort;
  live: boolean;
  /** This incarnation's session table (runtime/session-table.ts), read when it dies. */
  table: SharedArrayBuffer;
}

/** `p`, or `fallback` if `p` rejects or has not settled within `ms`. Unit: ms. */
export function withTimeout<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(fallback), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      () => {
        clearTimeout(t);
        resolve(fallback);
      },
    );
  });
}
