/**
 * The piscina task of the Transform cluster: runs in a pool thread, never in a worker that owns
 * sockets. Loads the user's module once per thread (cached by path and export name), calls
 * `fn(payload, metadata)`, and returns its result if it is a Uint8Array (a Buffer is one) or null.
 * Anything else, and anything the function throws, rejects the task: the caller drops the message
 * and counts it.
 */
import { pathToFileURL } from 'node:url';
import { move, workerData } from 'piscina';
import { pickExport } from './exports.ts';
import { WATCHDOG_SLOTS, type TransformTask, type WatchdogFlags } from './task.ts';

const started = (workerData as WatchdogFlags | undefined)?.started;

/** The user's function: a new payload, or null to drop the message. May be async. */
export type TransformFn = (payload: Uint8Array, metadata: Record<string, unknown>) => Uint8Array | null | Promise<Uint8Array | null>;

const loaded = new Map<string, Promise<TransformFn>>();

function load(module: string, name: string): Promise<TransformFn> {
  const key = `${module}\0${name}`;
  let p = loaded.get(key);
  if (p === undefined) {
    p = import(pathToFileURL(module).href).then((ns: Record<string, unknown>) => {
      const fn = pickExport(ns, name);
      if (typeof fn !== 'function') throw new TypeError(`${module}: export "${name}" is not a function`);
      return fn as TransformFn;
    });
    // A module that failed to load is tried again on the next message.
    p.catch(() => loaded.delete(key));
    loaded.set(key, p);
  }
  return p;
}

export default async function run(task: TransformTask): Promise<Uint8Array | null> {
  const fn = await load(task.module, task.export);
  // From now on the watchdog counts this task's time against its deadline. Loading the module (the
  // first task of a thread) is not counted: a slow import must not get every new thread killed.
  if (started !== undefined) Atomics.store(started, task.seq & (WATCHDOG_SLOTS - 1), task.seq);
  const out = await fn(task.payload, task.metadata);
  if (out === null) return null;
  if (out instanceof Uint8Array) {
    // Transfer the result instead of cloning it; a view of a larger buffer (Buffer's 8 KiB pool) is copied first.
    const own = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength && out.buffer instanceof ArrayBuffer ? out : new Uint8Array(out);
    return move(own) as unknown as Uint8Array;
  }
  throw new TypeError(`transform returned ${out === undefined ? 'undefined' : typeof out}, not a Uint8Array or null`);
}
