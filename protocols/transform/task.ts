/**
 * What crosses between a worker and its transform pool threads (pool.ts and runner.ts): the task
 * of one message and the watchdog's start flags. A leaf: the pool thread's runner loads it without
 * the pool's code, and the pool imports nothing of the runner.
 */

/** One message to transform. Plain data: it crosses threads by structured clone. */
export interface TransformTask {
  /** Absolute path of the user's module. */
  module: string;
  /** Name of the exported function. */
  export: string;
  payload: Uint8Array;
  metadata: Record<string, unknown>;
  /** The task's sequence number: marked in the watchdog's start flags when it starts here. */
  seq: number;
}

/** Slots of the start flags: a power of two; a task's slot is `seq & (WATCHDOG_SLOTS - 1)`. */
export const WATCHDOG_SLOTS = 8192;

/**
 * What the pool threads get as piscina `workerData`: `started[seq & (WATCHDOG_SLOTS - 1)]` is set
 * to a task's `seq` when a thread starts running it.
 */
export interface WatchdogFlags {
  started: Int32Array;
}
