/**
 * SO_REUSEPORT steering (main thread): every UDP server listener's reuseport group gets an
 * SK_REUSEPORT program (native-offload/bpf/reuseport.bpf.c) that sends a new peer's datagrams
 * straight to the worker that owns the peer on the ring, so no worker hands datagrams to another.
 *
 * Per listener: one loaded program with its socket array (slot → that worker's listening socket)
 * and bucket table (bucket → slot, {@link WorkerRing.buckets}). {@link Steering.refresh} rewrites
 * both from the live workers and the ring, and (re)attaches the program through one member socket;
 * the runtime calls it after start, after a config apply, and whenever the ring changes (a dead
 * worker's buckets go to the others at once; its sockets left the array when they closed).
 * The runtime loads it with offload asked (`-o init|no_init`) or more than one worker (steered
 * workers answer their peers from the listening sockets: protocols/udp/modes.ts sessionSockets).
 * Needs CAP_BPF. Without it (or without the addon), the listeners keep the kernel's own hash and
 * the hand-off between workers.
 */
import { errnoName, loadAddon, type OffloadAddon } from '../../native-offload/provider.ts';
import type { Logger } from '../../common/log.ts';
import type { WorkerRing } from '../ring.ts';

/** A worker's listening sockets as it reports them. */
export interface SteerFds {
  slot: number;
  fds: Array<{ listener: string; fd: number }>;
}

/** Steering counters of one listener, summed over CPUs. */
export interface SteerStats {
  /** Datagrams sent to the bucket's owner. */
  steered: number;
  /** The owner's slot was empty (dead worker): the kernel's own hash picked a socket. */
  selectFailed: number;
  /** Not an IPv4/IPv6 datagram the program could read. */
  unparsed: number;
}

export class Steering {
  private readonly addon: OffloadAddon;
  private readonly log: Logger;
  /** Listener name → program handle and the slots it holds. */
  private readonly groups = new Map<string, { h: number; slots: Map<number, bigint> }>();
  private warned = false;

  private constructor(addon: OffloadAddon, log: Logger) {
    this.addon = addon;
    this.log = log;
  }

  /**
   * Steering for this process, or null (logged once with the reason) if the addon cannot be
   * loaded or a steering program cannot be loaded (no CAP_BPF). `asked`: kernel offload was asked
   * for (a warning then; else, several workers without offload, an info line: connected session
   * sockets are the usual fallback).
   */
  static create(log: Logger, asked = true): Steering | null {
    const say = (reason: string): null => {
      const msg = 'reuseport steering unavailable; workers hand datagrams to each other';
      if (asked) log.warn({ reason }, msg);
      else log.info({ reason }, msg);
      return null;
    };
    const { addon, why } = loadAddon();
    if (addon === null) return say(why);
    const h = addon.steerOpen();
    if (h < 0) return say(`${errnoName(h)}: cannot load the SK_REUSEPORT program (needs CAP_BPF)`);
    addon.steerClose(h);
    return new Steering(addon, log);
  }

  /** Rewrite every group from the workers' listening sockets and the ring. */
  refresh(workers: readonly SteerFds[], ring: WorkerRing): void {
    const table = ring.buckets();
    const byListener = new Map<string, Map<number, number>>();
    for (const w of workers) {
      for (const { listener, fd } of w.fds) {
        let m = byListener.get(listener);
        if (m === undefined) byListener.set(listener, (m = new Map()));
        m.set(w.slot, fd);
      }
    }
    for (const [name, g] of this.groups) {
      if (!byListener.has(name)) {
        this.addon.steerClose(g.h);
        this.groups.delete(name);
      }
    }
    for (const [name, slots] of byListener) {
      let g = this.groups.get(name);
      if (g === undefined) {
        const h = this.addon.steerOpen();
        if (h < 0) {
          this.warnOnce(name, `steerOpen: ${errnoName(h)}`);
          continue;
        }
        g = { h, slots: new Map() };
        this.groups.set(name, g);
      }
      const errs: string[] = [];
      for (const s of g.slots.keys()) {
        if (!slots.has(s)) {
          this.addon.steerSlot(g.h, s, -1);
          g.slots.delete(s);
        }
      }
      // The table first: a slot is only ever named once its socket is in the array (or empty:
      // then the kernel's hash decides, never a wrong worker's socket).
      const rb = this.addon.steerBuckets(g.h, table);
      if (rb < 0) errs.push(`buckets: ${errnoName(rb)}`);
      for (const [slot, fd] of slots) {
        // A socket already in the array cannot be added again (EBUSY): sockets are told apart by
        // cookie, since a closed worker's fd number may come back for its replacement's socket.
        const cookie = this.addon.cookie(fd);
        if (typeof cookie !== 'bigint') {
          errs.push(`slot ${slot}: ${errnoName(cookie)}`);
          continue;
        }
        if (g.slots.get(slot) === cookie) continue;
        const r = this.addon.steerSlot(g.h, slot, fd);
        if (r < 0) errs.push(`slot ${slot}: ${errnoName(r)}`);
        else g.slots.set(slot, cookie);
      }
      const first = slots.values().next().value as number;
      const ra = this.addon.steerAttach(g.h, first);
      if (ra < 0) errs.push(`attach: ${errnoName(ra)}`);
      if (errs.length > 0) this.warnOnce(name, errs.join(', '));
    }
  }

  /** Counters of a listener's program, or null if it has none. */
  stats(listener: string): SteerStats | null {
    const g = this.groups.get(listener);
    if (g === undefined) return null;
    const [steered = 0, selectFailed = 0, unparsed = 0] = this.addon.steerStats(g.h);
    return { steered, selectFailed, unparsed };
  }

  /** Unload every program (they stay attached to their groups until the sockets close). */
  close(): void {
    for (const g of this.groups.values()) this.addon.steerClose(g.h);
    this.groups.clear();
  }

  private warnOnce(listener: string, what: string): void {
    if (this.warned) return;
    this.warned = true;
    this.log.warn({ listener, err: what }, 'reuseport steering failed for a listener');
  }
}
