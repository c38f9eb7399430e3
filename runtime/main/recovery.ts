/**
 * A dead worker's UDP sessions, rebuilt on the live workers (issue 15; runtime/session-table.ts):
 * on `'exit'` the main thread (runtime/main/runtime.ts) reads the dead worker's session table and hands
 * each session to the live worker that owns its peer on the ring without the dead slot (before it
 * tells anyone of the new ring), which rebuilds it with the same downstream and upstream addresses
 * and ports; the replacement starts once that is done.
 * ```
 *  worker W dies ─► 'exit' ─► read W's table ─► adopt(records) to each new ring owner ─► setRing
 *                                                 │  peer-map entry (+ connected socket) at once
 *                                                 └─ upstream socket binds W's old local port
 *                  ─► replacement in W's slot (≤ RESPAWN_DEFER_MS later) ─► back on the ring
 * ```
 * Rebuilt sessions stay on their adopter: a connected session socket gets its peer's datagrams
 * wherever it is; a session served through listening sockets is pinned to its adopter on every
 * worker until it ends. Other sessions of W (streams, chains) are gone: counted as lost, by reason.
 */
import type { Logger } from '../../common/log.ts';
import type { ConfigSnapshot } from '../../cluster-config/snapshot.ts';
import { WorkerRing } from '../ring.ts';
import { readSessionTable, type TableRecord } from '../session-table.ts';
import { withTimeout, type Slot } from './worker-slot.ts';

/** What the runtime did with the sessions of a worker that died (event `sessionsRecovered`, logs). */
export interface RecoveryReport {
  /** The slot that died. */
  slot: number;
  /** Sessions the dead worker had (its share of the process session gauge). */
  sessions: number;
  /** UDP sessions rebuilt on live workers with their old 5-tuples. */
  recovered: number;
  /** Sessions lost, by reason: `worker_exit` (not rebuildable: streams, chains...), `rebuild_failed`. */
  lost: Record<string, number>;
  /** From the worker's `'exit'` to the last session connected again. Unit: ms. */
  ms: number;
}

/** How long the main thread waits for a worker to rebuild a dead worker's sessions before it counts them as lost. Unit: ms. */
const ADOPT_TIMEOUT_MS = 10_000;

/** What {@link SessionRecovery} needs of the runtime. */
export interface RecoveryHost {
  /** The worker slots, live or starting. */
  readonly slots: ReadonlyMap<number, Slot>;
  /** Live worker slots (on the ring). */
  liveSlots(): number[];
  readonly log: Logger;
  /** The config every worker runs. */
  snapshot(): ConfigSnapshot;
  /** Sessions `slot` has now (its cell of the process session gauge). */
  sessionsOf(slot: number): number;
  /** A recovery is over: the runtime emits `sessionsRecovered`. */
  onReport(report: RecoveryReport): void;
}

/** The sessions of dead workers: their rebuild, the pins of their peers, and the counts. */
export class SessionRecovery {
  private readonly host: RecoveryHost;
  /**
   * Peers of rebuilt sessions served through listening sockets (`session_sockets: listener`), by
   * `listener\0address:port` → the slot that serves them. The ring would give them back to a
   * replacement worker that knows nothing of them: every worker hands their datagrams to the
   * pinned slot instead, until the session ends (the worker says so: `HostApi.unpinned`, runtime/worker/worker-main.ts).
   */
  private readonly pins = new Map<string, { listener: string; key: string; slot: number }>();
  /** Sessions of dead workers waiting for a live worker to rebuild them (no worker was live). */
  private pendingAdopt: { records: TableRecord[]; from: number; report: RecoveryReport; exitAt: number } | null = null;
  /** Sessions rebuilt since start. */
  recovered = 0;
  /** Sessions lost to worker deaths since start, by reason. */
  readonly lost = new Map<string, number>();

  constructor(host: RecoveryHost) {
    this.host = host;
  }

  /** Peers of rebuilt sessions pinned to the worker that serves them (`session_sockets: listener`; tests). */
  get pinnedPeers(): number {
    return this.pins.size;
  }

  /** The pins a new worker starts with (`listener`, peer `address:port`, slot). */
  pinList(): Array<[string, string, number]> {
    return [...this.pins.values()].map((p) => [p.listener, p.key, p.slot]);
  }

  /** A rebuilt session served through listening sockets ended on `slot`: unpin its peer everywhere. */
  unpinned(slot: number, listener: string, key: string): void {
    const k = `${listener}\0${key}`;
    if (this.pins.get(k)?.slot !== slot) return; // pinned to another slot since
    this.pins.delete(k);
    for (const o of this.host.slots.values()) if (o.live && o.slot !== slot) void o.api.unpin([[listener, key]]).catch(() => {});
  }

  /**
   * Rebuild a dead worker's UDP sessions (issue 15): its session table is read now (the thread is
   * gone, so are its sockets: their ports are free), each session goes to the live worker that
   * owns its peer on the ring without the dead slot, which recreates the downstream at once and
   * binds the upstream's old local port. The adopt calls are sent before the ring change, so each
   * adopter knows its new peers before it sees their datagrams as new. With no live worker the
   * replacement rebuilds them when it is up (slower: it has to boot first).
   */
  recover(s: Slot, exitAt: number): Promise<void> {
    const had = this.host.sessionsOf(s.slot);
    const { records } = readSessionTable(s.table, this.host.snapshot());
    const report: RecoveryReport = { slot: s.slot, sessions: had, recovered: 0, lost: {}, ms: 0 };
    if (had > records.length) report.lost.worker_exit = had - records.length;
    // Pins to the dead slot go: their sessions are in its table, and are pinned again below.
    const unpins: Array<[string, string]> = [];
    for (const [k, p] of this.pins) {
      if (p.slot !== s.slot) continue;
      this.pins.delete(k);
      unpins.push([p.listener, p.key]);
    }
    const live = this.host.liveSlots();
    if (live.length === 0) {
      if (this.pendingAdopt === null) this.pendingAdopt = { records, from: s.slot, report, exitAt };
      else this.pendingAdopt.records.push(...records);
      return Promise.resolve();
    }
    return this.adoptOn(live, records, s.slot, report, exitAt, unpins);
  }

  /** Hand `records` to their ring owners among `live`, pin the shared ones, and account for the result. */
  private adoptOn(live: number[], records: TableRecord[], from: number, report: RecoveryReport, exitAt: number, unpins: Array<[string, string]> = []): Promise<void> {
    const ring = new WorkerRing(live);
    const byOwner = new Map<number, TableRecord[]>();
    const pins: Array<[string, string, number]> = [];
    for (const r of records) {
      const key = `${r.peerAddress}:${r.peerPort}`;
      const owner = ring.owner(key);
      let list = byOwner.get(owner);
      if (list === undefined) byOwner.set(owner, (list = []));
      list.push(r);
      if (r.shared) {
        this.pins.set(`${r.listener}\0${key}`, { listener: r.listener, key, slot: owner });
        pins.push([r.listener, key, owner]);
      }
    }
    const adoptions = [...byOwner].map(([slot, list]) => {
      const o = this.host.slots.get(slot) as Slot;
      return withTimeout(o.api.adopt(list, from), ADOPT_TIMEOUT_MS, { recovered: 0, failed: { timeout: list.length } });
    });
    // The pins after the adoptions (an adopter that saw its pin first would take the peer's next
    // datagram for a new session), before the ring change (the caller's).
    const liveSlots = [...this.host.slots.values()].filter((o) => o.live || live.includes(o.slot));
    for (const o of liveSlots) {
      if (unpins.length > 0) void o.api.unpin(unpins).catch(() => {});
      if (pins.length > 0) void o.api.pin(pins).catch(() => {});
    }
    return Promise.all(adoptions).then((results) => {
      for (const r of results) {
        report.recovered += r.recovered;
        const failed = Object.values(r.failed).reduce((a, b) => a + b, 0);
        if (failed > 0) report.lost.rebuild_failed = (report.lost.rebuild_failed ?? 0) + failed;
        if (failed > 0) this.host.log.warn({ worker: from, failed: r.failed }, 'sessions of a dead worker could not be rebuilt');
      }
      report.ms = Math.round((performance.now() - exitAt) * 10) / 10;
      this.recovered += report.recovered;
      for (const [why, n] of Object.entries(report.lost)) this.lost.set(why, (this.lost.get(why) ?? 0) + n);
      this.host.log.warn({ worker: from, sessions: report.sessions, recovered: report.recovered, lost: report.lost, ms: report.ms }, 'sessions of the dead worker: UDP sessions rebuilt, others ended (worker_exit)');
      this.host.onReport(report);
    });
  }

  /**
   * A replacement worker started in `slot`: it rebuilds the sessions that waited for a live worker
   * (no worker was live when theirs died) as it starts.
   */
  adoptPending(slot: number): void {
    const pending = this.pendingAdopt;
    this.pendingAdopt = null;
    if (pending !== null) void this.adoptOn([slot], pending.records, pending.from, pending.report, pending.exitAt);
  }
}
