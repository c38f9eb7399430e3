/**
 * The session gauges of the process (admission control, actors/admission.ts): an Int32 cell per
 * worker slot that only that worker writes and every worker sums, for the process and for each
 * listener. Made and kept by the main thread, shared with every worker (and its replacements).
 */
import type { ConfigSnapshot } from '../../cluster-config/snapshot.ts';
import type { ListenerGauges } from '../worker/worker-host.ts';

export class SessionGauges {
  private readonly workers: number;
  /**
   * Sessions of the process, an Int32 per worker slot (admission control), then the file
   * descriptors those sessions hold, an Int32 per worker slot (admission's fd budget).
   */
  readonly process: SharedArrayBuffer;
  /** Sessions per listener name, an Int32 per worker slot each; kept while the name is configured. */
  private readonly listenerGauges = new Map<string, SharedArrayBuffer>();

  constructor(workers: number) {
    this.workers = workers;
    this.process = new SharedArrayBuffer(8 * workers);
  }

  /** The session gauge of every listener of `snap` (created for new names). */
  listeners(snap: ConfigSnapshot): ListenerGauges {
    const out: ListenerGauges = {};
    for (const l of snap.listeners) {
      let g = this.listenerGauges.get(l.name);
      if (g === undefined) {
        g = new SharedArrayBuffer(4 * this.workers);
        this.listenerGauges.set(l.name, g);
      }
      out[l.name] = g;
    }
    return out;
  }

  /** `snap` is in force: the gauges of listeners it no longer has go. */
  keep(snap: ConfigSnapshot): void {
    const names = new Set(snap.listeners.map((l) => l.name));
    for (const n of this.listenerGauges.keys()) if (!names.has(n)) this.listenerGauges.delete(n);
  }

  /** Sessions of the process now, over every worker (admission control's count). */
  count(): number {
    return this.sum(0);
  }

  /** File descriptors the sessions of the process hold now, over every worker (admission's fd budget). */
  fds(): number {
    return this.sum(this.workers);
  }

  /** The sum of the `workers` cells of the process gauge from cell `first`. */
  private sum(first: number): number {
    const a = new Int32Array(this.process, 4 * first, this.workers);
    let n = 0;
    for (let i = 0; i < a.length; i++) n += Atomics.load(a, i);
    return n;
  }

  /** Sessions of worker `slot` now. */
  of(slot: number): number {
    return Atomics.load(new Int32Array(this.process), slot);
  }

  /** Worker `slot` died: its share of every session count goes back to 0 for its replacement. */
  clear(slot: number): void {
    Atomics.store(new Int32Array(this.process), slot, 0);
    Atomics.store(new Int32Array(this.process), this.workers + slot, 0);
    for (const g of this.listenerGauges.values()) Atomics.store(new Int32Array(g), slot, 0);
  }
}
