/**
 * The main thread: starts N worker threads, wires a MessagePort between every pair (datagram
 * hand-offs), keeps the ring of live workers in sync, and supervises: a worker that dies is
 * removed from the ring at once (its peers' new sessions go to the others), replaced in the same
 * slot, and put back on the ring when its listeners are up. Restart intensity is bounded (OTP
 * style): past `maxRestarts` within `restartPeriodMs` the runtime gives up and reports it.
 *
 * Its UDP sessions survive it (runtime/session-table.ts): on `'exit'` the main thread reads the
 * dead worker's session table and hands each session to the live worker that owns its peer on
 * the ring without the dead slot (before it tells anyone of the new ring), which rebuilds it with
 * the same downstream and upstream addresses and ports; the replacement starts once that is done.
 * ```
 *  worker W dies ─► 'exit' ─► read W's table ─► adopt(records) to each new ring owner ─► setRing
 *                                                 │  peer-map entry (+ connected socket) at once
 *                                                 └─ upstream socket binds W's old local port
 *                  ─► replacement in W's slot (≤ RESPAWN_DEFER_MS later) ─► back on the ring
 * ```
 * Rebuilt sessions stay on their adopter: a connected session socket gets its peer's datagrams
 * wherever it is; a session served through listening sockets is pinned to its adopter on every
 * worker until it ends. Other sessions of W (streams, chains) are gone: counted as lost.
 */
import { EventEmitter } from 'node:events';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { UnixDgramHost } from '../protocols/uds/dgram-host.ts';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { ConfigSnapshot } from '../cluster-config/snapshot.ts';
import type { ActorNode } from '../actors/tree.ts';
import { L7Error, ErrorCode, type L7ErrorData } from './common/errors.ts';
import type { LogLevel, Logger } from './common/log.ts';
import type { HostApi, ListenerGauges, StartResult, WorkerApi, WorkerInit, WorkerStats } from './worker-main.ts';
import { fdLimit, openFds, sessionCap, type FdLimit } from './common/fd-limit.ts';
import type { AdminAnswer, AdminCall } from '../protocols/types.ts';
import { l7mpErrorAnswer } from '../protocols/core/l7mp-error.ts';
import type { WorkerMetrics } from './stats.ts';
import type { OffloadMode } from '../native-offload/provider.ts';
import { WorkerRing } from './ring.ts';
import { Steering, type SteerStats } from './steering.ts';
import { HealthChecker, type HealthCheckStats } from './health-check.ts';
import { Drain, type DrainOutcome, type DrainRequest, type DrainStatus } from './drain.ts';
import { newSessionTable, readSessionTable, type TableRecord } from './session-table.ts';

/** What {@link Runtime.metrics} returns: one entry per worker slot the runtime has. */
export interface RuntimeMetrics {
  /** Configured worker slots. */
  workers: number;
  /** Per slot: the worker's metrics, or null if it is not live or did not answer in time. */
  slots: Array<{ slot: number; metrics: WorkerMetrics | null }>;
  /** Worker restarts by slot since start. */
  restarts: Record<number, number>;
  /** Sessions of dead workers rebuilt elsewhere, and lost by reason, since start. */
  recovery?: { recovered: number; lost: Record<string, number> };
  /**
   * Process-wide: sessions and their cap, open fds and the soft open-file limit (-1: unknown), and
   * whether the process drains (1 from the start of a drain on, else 0).
   */
  process?: { sessions: number; sessionLimit: number; openFds: number; maxFds: number; draining?: number };
  /** Active health checks per endpoint (run once per process, on the main thread). */
  healthChecks?: HealthCheckStats[];
}

/** Options of a {@link Runtime}. */
export interface RuntimeOptions {
  snapshot: ConfigSnapshot;
  /** Number of worker threads (>= 1). */
  workers: number;
  logLevel: LogLevel;
  log: Logger;
  /** Worker restarts allowed within {@link RuntimeOptions.restartPeriodMs} (default 10). */
  maxRestarts?: number;
  /** ms (default 60000). */
  restartPeriodMs?: number;
  /** How long shutdown waits for a worker to close its sockets, ms (default 1500). */
  shutdownTimeoutMs?: number;
  /**
   * Kernel offload mode (`-o`; default: the snapshot's `admin.offload`). `init`/`no_init` splice
   * established UDP sessions in the kernel and steer UDP listeners' datagrams to their ring owner
   * (native-offload/), where BPF is available; `disable` keeps everything in userspace.
   */
  offload?: OffloadMode;
}

interface Slot {
  readonly slot: number;
  thread: Worker;
  api: Comlink.Remote<WorkerApi>;
  /** Our end of the worker's {@link HostApi} channel. */
  host: MessagePort;
  live: boolean;
  /** This incarnation's session table (runtime/session-table.ts), read when it dies. */
  table: SharedArrayBuffer;
}

/** What {@link Runtime} did with the sessions of a worker that died (event `sessionsRecovered`, logs). */
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

/** The handler behind {@link HostApi.adminRequest}. */
export type AdminHandler = (call: AdminCall) => Promise<AdminAnswer>;

function unavailable(): AdminAnswer {
  return l7mpErrorAnswer(503, 'Service Unavailable', 'The admin API is not up yet');
}

// From a checkout Node runs the .ts sources; an installed package runs the build in dist/ (.js).
const workerUrl = new URL(import.meta.url.endsWith('.js') ? './worker-main.js' : './worker-main.ts', import.meta.url);

/** How long the main thread waits for a worker to rebuild a dead worker's sessions before it counts them as lost. Unit: ms. */
const ADOPT_TIMEOUT_MS = 10_000;
/** The longest a dead worker's replacement waits for its sessions to be rebuilt before it starts. Unit: ms. */
const RESPAWN_DEFER_MS = 250;

function withTimeout<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
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

/**
 * Events: `workerExit` (slot, exit code), `workerReady` (slot), `gaveUp` (L7Error): restart
 * intensity exceeded or a replacement failed to start; `drained` ({@link DrainOutcome}): a drain
 * is over (the CLI exits when it asked to).
 */
export class Runtime extends EventEmitter {
  private readonly opts: RuntimeOptions;
  private readonly slots = new Map<number, Slot>();
  /** Unix datagram sockets of every worker (owned by this thread). */
  private readonly unixDgram = new UnixDgramHost();
  private stopping = false;
  private restartTimes: number[] = [];
  /** Applies run one at a time, in order. */
  private applying: Promise<unknown> = Promise.resolve();
  /** Worker restarts since start. */
  restarts = 0;
  /** Worker restarts since start, by slot. */
  private readonly restartsBySlot = new Map<number, number>();
  /** SO_REUSEPORT steering of UDP listeners (offload on and CAP_BPF), else null. */
  private readonly steering: Steering | null;
  /** Steering refreshes run one at a time, in order. */
  private steeringRun: Promise<void> = Promise.resolve();
  private adminHandler: AdminHandler | null = null;
  /** The open-file limit the session cap derives from (null: unknown, no fd-derived cap). */
  readonly fdLimit: FdLimit | null = fdLimit();
  /** Sessions of the process, an Int32 per worker slot (admission control). */
  private readonly sessionGauge: SharedArrayBuffer;
  /** Sessions per listener name, an Int32 per worker slot each; kept while the name is configured. */
  private readonly listenerGauges = new Map<string, SharedArrayBuffer>();
  /** Active health checks of the clusters that configure one (main thread; null before start). */
  private health: HealthChecker | null = null;
  /**
   * Peers of rebuilt sessions served through listening sockets (`session_sockets: listener`), by
   * `listener\0address:port` → the slot that serves them. The ring would give them back to a
   * replacement worker that knows nothing of them: every worker hands their datagrams to the
   * pinned slot instead, until the session ends (the worker says so: {@link HostApi.unpinned}).
   */
  private readonly pins = new Map<string, { listener: string; key: string; slot: number }>();
  /** Sessions of dead workers waiting for a live worker to rebuild them (no worker was live). */
  private pendingAdopt: { records: TableRecord[]; from: number; report: RecoveryReport; exitAt: number } | null = null;
  /** Sessions rebuilt since start. */
  private recovered = 0;
  /** Sessions lost to worker deaths since start, by reason. */
  private readonly lost = new Map<string, number>();

  /** The graceful drain of this process (runtime/drain.ts). */
  private readonly drainer: Drain;

  constructor(opts: RuntimeOptions) {
    super();
    this.opts = opts;
    this.drainer = new Drain(
      {
        sessions: () => this.sessionCount(),
        drainWorkers: () => this.drainWorkers(),
        cutSessions: () => this.cutSessions(),
      },
      { log: opts.log, onDone: (o: DrainOutcome) => this.emit('drained', o) },
    );
    this.sessionGauge = new SharedArrayBuffer(4 * opts.workers);
    this.steering = this.offloadMode === 'disable' ? null : Steering.create(opts.log);
  }

  /** The effective offload mode. */
  get offloadMode(): OffloadMode {
    return this.opts.offload ?? this.opts.snapshot.admin.offload;
  }

  /** Steering counters of a UDP listener (null when steering is off or the listener has none). */
  steeringStats(listener: string): SteerStats | null {
    return this.steering?.stats(listener) ?? null;
  }

  /**
   * Rewrite the steering programs from the live workers' listening sockets and the ring. Resolves
   * when done (tests wait on it); a no-op without steering.
   */
  refreshSteering(): Promise<void> {
    const st = this.steering;
    if (st === null) return Promise.resolve();
    const run = this.steeringRun.then(async () => {
      const live = [...this.slots.values()].filter((s) => s.live);
      const fds = await Promise.all(live.map(async (s) => ({ slot: s.slot, fds: await withTimeout(s.api.steerFds(), 1000, []) })));
      if (this.stopping) return;
      st.refresh(fds, new WorkerRing(this.liveSlots()));
    });
    this.steeringRun = run.catch((e: unknown) => this.opts.log.warn({ err: (e as Error).message }, 'reuseport steering refresh failed'));
    return this.steeringRun;
  }

  get workers(): number {
    return this.opts.workers;
  }

  /** Live worker slots (on the ring). */
  liveSlots(): number[] {
    return [...this.slots.values()].filter((s) => s.live).map((s) => s.slot).sort((a, b) => a - b);
  }

  /**
   * Start every worker and wait until all listeners are bound.
   * @throws L7Error (`L7_ERR_WORKER_START`) listing each listener that failed; nothing is left running.
   */
  async start(): Promise<void> {
    const all = Array.from({ length: this.opts.workers }, (_, i) => i);
    for (const i of all) this.spawn(i);
    const results = await Promise.all(all.map((i) => this.boot(i, all)));
    const errors = results.flatMap((r) => (r.ok ? [] : r.errors));
    if (errors.length > 0) {
      await this.shutdown();
      const unique = [...new Set(errors.map((e) => e.message))];
      throw new L7Error(ErrorCode.WorkerStart, unique.join('; '), { cause: errors[0] });
    }
    for (const i of all) (this.slots.get(i) as Slot).live = true;
    this.health = new HealthChecker({ log: this.opts.log, onChange: (c, e, h) => this.pushHealth(c, e, h) });
    this.health.update(this.opts.snapshot);
    await this.refreshSteering();
  }

  /** Tell every live worker an active health check verdict. */
  private pushHealth(cluster: string, endpoint: string, healthy: boolean): void {
    for (const s of this.slots.values()) if (s.live) void s.api.setEndpointHealth(cluster, endpoint, healthy).catch(() => {});
  }

  /** The config every worker runs (and a replacement worker starts with). */
  get snapshot(): ConfigSnapshot {
    return this.opts.snapshot;
  }

  /**
   * Apply a validated snapshot on every worker, all or nothing: if a worker fails (a new listener
   * cannot bind), every worker goes back to the previous snapshot and the error is thrown.
   * Concurrent calls are applied one after the other.
   * @throws L7Error `L7_ERR_LISTENER_BIND` (or the worker's error) naming what failed.
   */
  apply(next: ConfigSnapshot): Promise<void> {
    const run = this.applying.then(() => this.applyNow(next));
    this.applying = run.catch(() => {});
    return run;
  }

  private async applyNow(next: ConfigSnapshot): Promise<void> {
    const prev = this.opts.snapshot;
    const live = [...this.slots.values()].filter((s) => s.live);
    const results = await Promise.all(live.map((s) => s.api.apply(next, this.gauges(next))));
    const errors = results.flatMap((r) => (r.ok ? [] : r.errors));
    if (errors.length === 0) {
      this.opts.snapshot = next;
      const names = new Set(next.listeners.map((l) => l.name));
      for (const n of this.listenerGauges.keys()) if (!names.has(n)) this.listenerGauges.delete(n);
      // A log level changed through the API (POST /api/v1/admin); `-l` set the one at start.
      if (next.admin.log_level !== prev.admin.log_level) this.opts.log.level = next.admin.log_level;
      this.health?.update(next);
      await this.refreshSteering();
      return;
    }
    await Promise.all(live.map((s) => s.api.apply(prev, this.gauges(prev))));
    await this.refreshSteering();
    const first = errors[0] as L7ErrorData;
    throw new L7Error(first.code, [...new Set(errors.map((e) => e.message))].join('; '), { cause: first });
  }

  /**
   * Drain (runtime/drain.ts): stop taking new sessions on every worker and let the live ones
   * finish within `req.timeoutS`; the `drained` event tells when it is over. A second request
   * keeps the first one's deadline. Returns the status after the request.
   */
  drain(req: DrainRequest): DrainStatus {
    return this.drainer.start(req);
  }

  /** Where the drain is (`serving` before any). */
  drainStatus(): DrainStatus {
    return this.drainer.status();
  }

  /** True from the start of a drain on. */
  get draining(): boolean {
    return this.drainer.active;
  }

  private async drainWorkers(): Promise<void> {
    await Promise.all([...this.slots.values()].filter((s) => s.live).map((s) => withTimeout(s.api.drain(), 1000, undefined)));
  }

  private async cutSessions(): Promise<number> {
    const counts = await Promise.all([...this.slots.values()].filter((s) => s.live).map((s) => withTimeout(s.api.cutSessions(), 1000, 0)));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Stop everything: sessions end, listeners close, Unix socket files are removed. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    this.drainer.close();
    this.health?.close();
    const timeout = this.opts.shutdownTimeoutMs ?? 1500;
    await Promise.all(
      [...this.slots.values()].map(async (s) => {
        await withTimeout(s.api.shutdown(), timeout, undefined);
        s.api[Comlink.releaseProxy]();
        s.host.close();
        await s.thread.terminate();
      }),
    );
    this.slots.clear();
    this.steering?.close();
  }

  /**
   * Set the admin API that workers reach through {@link HostApi.adminRequest} (the L7mpController
   * and Prometheus clusters). Until it is set they get 503.
   */
  setAdminHandler(h: AdminHandler | null): void {
    this.adminHandler = h;
  }

  /** Counters of every live worker. */
  async stats(): Promise<WorkerStats[]> {
    const out = await Promise.all([...this.slots.values()].filter((s) => s.live).map((s) => withTimeout(s.api.stats(), 1000, null)));
    return out.filter((x): x is WorkerStats => x !== null);
  }

  /**
   * Metrics of every worker slot, asked of each live worker at once (a worker that does not
   * answer within `timeoutMs` reports null). For the admin `/metrics` endpoint.
   */
  async metrics(timeoutMs = 2000): Promise<RuntimeMetrics> {
    const slots = await Promise.all(
      [...this.slots.values()].map(async (s) => ({ slot: s.slot, metrics: s.live ? await withTimeout(s.api.metrics(), timeoutMs, null) : null })),
    );
    slots.sort((a, b) => a.slot - b.slot);
    const process = { sessions: this.sessionCount(), sessionLimit: this.sessionCap(), openFds: openFds(), maxFds: this.fdLimit?.soft ?? -1, draining: this.draining ? 1 : 0 };
    return {
      workers: this.opts.workers,
      slots,
      restarts: Object.fromEntries(this.restartsBySlot),
      recovery: { recovered: this.recovered, lost: Object.fromEntries(this.lost) },
      process,
      healthChecks: this.health?.stats() ?? [],
    };
  }

  /** The actor tree: the process, its workers, their listeners, clusters and sessions. */
  async tree(): Promise<ActorNode> {
    const workers = await Promise.all([...this.slots.values()].map((s) => withTimeout(s.api.tree(), 1000, null)));
    return {
      id: 'process',
      kind: 'process',
      name: 'l7mp-ts',
      worker: null,
      state: this.stopping ? 'stopping' : this.draining ? this.drainer.current : 'running',
      mailbox: 0,
      processed: 0,
      restarts: this.restarts,
      pid: process.pid,
      children: workers.filter((w): w is ActorNode => w !== null),
    };
  }

  /** Stop a session actor by its id (`w<slot>.<n>`): 'ok', 'not-found' or 'not-session'. */
  async stopActor(id: string): Promise<'ok' | 'not-found' | 'not-session'> {
    const m = /^w(\d+)\./.exec(id);
    const s = m === null ? undefined : this.slots.get(Number(m[1]));
    if (s === undefined || !s.live) return 'not-found';
    return withTimeout(s.api.stopActor(id), 1000, 'not-found' as const);
  }

  /**
   * Disconnect every session stage connected to `endpoint` of `cluster`, on every worker (a
   * recursive endpoint delete: retries move them to the remaining endpoints). Resolves with the
   * number of sessions told.
   */
  async dropEndpoint(cluster: string, endpoint: string): Promise<number> {
    const live = [...this.slots.values()].filter((s) => s.live);
    const counts = await Promise.all(live.map((s) => withTimeout(s.api.dropEndpoint(cluster, endpoint), 1000, 0)));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Peers of rebuilt sessions pinned to the worker that serves them (`session_sockets: listener`; tests). */
  get pinnedPeers(): number {
    return this.pins.size;
  }

  /** The thread of a slot (tests use it to kill a worker). */
  thread(slot: number): Worker | undefined {
    return this.slots.get(slot)?.thread;
  }

  private spawn(slot: number): Slot {
    const hostCh = new MessageChannel();
    const hostApi: HostApi = {
      adminRequest: (call) => (this.adminHandler === null ? Promise.resolve(unavailable()) : this.adminHandler(call)),
      unpinned: (listener, key) => this.unpinned(slot, listener, key),
    };
    Comlink.expose(hostApi, nodeEndpoint(hostCh.port1));
    const table = newSessionTable();
    // The worker's Unix datagram sockets live on this thread (protocols/uds/dgram-host.ts says why).
    const dgram = new MessageChannel();
    this.unixDgram.attach(dgram.port1);
    const init: WorkerInit = {
      slot,
      workers: this.opts.workers,
      logLevel: this.opts.logLevel,
      host: hostCh.port2,
      unixDgramPort: dgram.port2,
      offload: this.offloadMode,
      sessionGauge: this.sessionGauge,
      fdSoftLimit: this.fdLimit?.soft ?? Infinity,
      sessionTable: table,
    };
    const thread = new Worker(workerUrl, { workerData: init, transferList: [hostCh.port2, dgram.port2], name: `l7mp-ts worker ${slot}` });
    thread.once('exit', () => this.unixDgram.detach(dgram.port1));
    const s: Slot = { slot, thread, api: Comlink.wrap<WorkerApi>(nodeEndpoint(thread)), host: hostCh.port1, live: false, table };
    // Rebuilt sessions pinned elsewhere: its listening sockets hand their peers' datagrams there.
    if (this.pins.size > 0) void s.api.pin([...this.pins.values()].map((p) => [p.listener, p.key, p.slot]));
    // Without an 'error' listener a throwing worker would take the process down.
    thread.on('error', (err) => this.opts.log.error({ worker: slot, err: err.message }, 'worker thread error'));
    thread.on('exit', (code) => this.onExit(s, code));
    this.slots.set(slot, s);
    // A port to every other worker, for datagram hand-offs.
    for (const other of this.slots.values()) {
      if (other.slot === slot) continue;
      const ch = new MessageChannel();
      void s.api.addPeer(other.slot, Comlink.transfer(ch.port1, [ch.port1]));
      void other.api.addPeer(slot, Comlink.transfer(ch.port2, [ch.port2]));
    }
    return s;
  }

  private async boot(slot: number, live: number[]): Promise<StartResult> {
    const s = this.slots.get(slot) as Slot;
    const exited = new Promise<StartResult>((resolve) =>
      s.thread.once('exit', (code) =>
        resolve({ ok: false, errors: [new L7Error(ErrorCode.WorkerStart, `worker ${slot} exited with code ${code} while starting`).toData()] }),
      ),
    );
    return Promise.race([s.api.start(this.opts.snapshot, live, this.gauges(this.opts.snapshot)), exited]);
  }

  /** The session gauge of every listener of `snap` (created for new names). */
  private gauges(snap: ConfigSnapshot): ListenerGauges {
    const out: ListenerGauges = {};
    for (const l of snap.listeners) {
      let g = this.listenerGauges.get(l.name);
      if (g === undefined) {
        g = new SharedArrayBuffer(4 * this.opts.workers);
        this.listenerGauges.set(l.name, g);
      }
      out[l.name] = g;
    }
    return out;
  }

  /** The process-wide session cap in force (admin.max_sessions bounded by the open-file limit). */
  sessionCap(): number {
    return sessionCap(this.opts.snapshot.admin, this.fdLimit?.soft ?? Infinity);
  }

  /** Sessions of the process now, over every worker (admission control's count). */
  sessionCount(): number {
    const a = new Int32Array(this.sessionGauge);
    let n = 0;
    for (let i = 0; i < a.length; i++) n += Atomics.load(a, i);
    return n;
  }

  private broadcastRing(): void {
    const live = this.liveSlots();
    for (const s of this.slots.values()) if (s.live) void s.api.setRing(live);
    void this.refreshSteering();
  }

  /** A rebuilt session served through listening sockets ended on `slot`: unpin its peer everywhere. */
  private unpinned(slot: number, listener: string, key: string): void {
    const k = `${listener}\0${key}`;
    if (this.pins.get(k)?.slot !== slot) return; // pinned to another slot since
    this.pins.delete(k);
    for (const o of this.slots.values()) if (o.live && o.slot !== slot) void o.api.unpin([[listener, key]]).catch(() => {});
  }

  /**
   * Rebuild a dead worker's UDP sessions (issue 15): its session table is read now (the thread is
   * gone, so are its sockets: their ports are free), each session goes to the live worker that
   * owns its peer on the ring without the dead slot, which recreates the downstream at once and
   * binds the upstream's old local port. The adopt calls are sent before the ring change, so each
   * adopter knows its new peers before it sees their datagrams as new. With no live worker the
   * replacement rebuilds them when it is up (slower: it has to boot first).
   */
  private recover(s: Slot, exitAt: number): Promise<void> {
    const had = Atomics.load(new Int32Array(this.sessionGauge), s.slot);
    const { records } = readSessionTable(s.table, this.opts.snapshot);
    const report: RecoveryReport = { slot: s.slot, sessions: had, recovered: 0, lost: {}, ms: 0 };
    if (had > records.length) report.lost.worker_exit = had - records.length;
    // Pins to the dead slot go: their sessions are in its table, and are pinned again below.
    const unpins: Array<[string, string]> = [];
    for (const [k, p] of this.pins) {
      if (p.slot !== s.slot) continue;
      this.pins.delete(k);
      unpins.push([p.listener, p.key]);
    }
    const live = this.liveSlots();
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
      const o = this.slots.get(slot) as Slot;
      return withTimeout(o.api.adopt(list, from), ADOPT_TIMEOUT_MS, { recovered: 0, failed: { timeout: list.length } });
    });
    // The pins after the adoptions (an adopter that saw its pin first would take the peer's next
    // datagram for a new session), before the ring change (the caller's).
    const liveSlots = [...this.slots.values()].filter((o) => o.live || live.includes(o.slot));
    for (const o of liveSlots) {
      if (unpins.length > 0) void o.api.unpin(unpins).catch(() => {});
      if (pins.length > 0) void o.api.pin(pins).catch(() => {});
    }
    return Promise.all(adoptions).then((results) => {
      for (const r of results) {
        report.recovered += r.recovered;
        const failed = Object.values(r.failed).reduce((a, b) => a + b, 0);
        if (failed > 0) report.lost.rebuild_failed = (report.lost.rebuild_failed ?? 0) + failed;
        if (failed > 0) this.opts.log.warn({ worker: from, failed: r.failed }, 'sessions of a dead worker could not be rebuilt');
      }
      report.ms = Math.round((performance.now() - exitAt) * 10) / 10;
      this.recovered += report.recovered;
      for (const [why, n] of Object.entries(report.lost)) this.lost.set(why, (this.lost.get(why) ?? 0) + n);
      this.opts.log.warn({ worker: from, sessions: report.sessions, recovered: report.recovered, lost: report.lost, ms: report.ms }, 'sessions of the dead worker: UDP sessions rebuilt, others ended (worker_exit)');
      this.emit('sessionsRecovered', report);
    });
  }

  private onExit(s: Slot, code: number): void {
    if (this.stopping || this.slots.get(s.slot) !== s) return;
    const exitAt = performance.now();
    s.live = false;
    this.slots.delete(s.slot);
    // First (every ms loses datagrams), and before its gauge cell is zeroed: it counts what it had.
    const rebuilt = this.recover(s, exitAt);
    this.opts.log.error({ worker: s.slot, code }, 'worker died; replacing it');
    s.api[Comlink.releaseProxy]();
    s.host.close();
    // Its sessions are gone (or rebuilt, and counted, elsewhere): its share of every session count goes back to 0 for the replacement.
    Atomics.store(new Int32Array(this.sessionGauge), s.slot, 0);
    for (const g of this.listenerGauges.values()) Atomics.store(new Int32Array(g), s.slot, 0);
    this.emit('workerExit', s.slot, code);
    this.broadcastRing();
    for (const o of this.slots.values()) void o.api.removePeer(s.slot);
    const now = Date.now();
    const period = this.opts.restartPeriodMs ?? 60_000;
    this.restartTimes = this.restartTimes.filter((t) => now - t < period);
    if (this.restartTimes.length >= (this.opts.maxRestarts ?? 10)) {
      this.giveUp(new L7Error(ErrorCode.ActorRestartLimit, `worker ${s.slot}: ${this.restartTimes.length} restarts within ${period} ms; not replacing it`));
      return;
    }
    this.restartTimes.push(now);
    this.restarts++;
    this.restartsBySlot.set(s.slot, (this.restartsBySlot.get(s.slot) ?? 0) + 1);
    // The replacement starts once the dead worker's sessions are rebuilt (or RESPAWN_DEFER_MS
    // later): its module loading would take the CPU from the workers rebuilding them.
    void withTimeout(rebuilt, RESPAWN_DEFER_MS, undefined).then(() => {
      if (!this.stopping && !this.slots.has(s.slot)) this.replace(s.slot);
    });
  }

  /** Start a replacement worker in `slot` and put it on the ring once its listeners are up. */
  private replace(slot: number): void {
    const fresh = this.spawn(slot);
    const pending = this.pendingAdopt;
    this.pendingAdopt = null;
    // No worker was live when the sessions' worker died: this one rebuilds them as it starts (its
    // listeners take them before they bind; sent before `start`, comlink keeps the order).
    if (pending !== null) void this.adoptOn([slot], pending.records, pending.from, pending.report, pending.exitAt);
    void this.boot(slot, this.liveSlots()).then((r) => {
      if (this.stopping || this.slots.get(slot) !== fresh) return;
      if (!r.ok) {
        // A replacement that cannot start is not retried in a loop.
        this.slots.delete(slot);
        void fresh.thread.terminate();
        this.giveUp(new L7Error(ErrorCode.WorkerStart, `replacement worker ${slot} failed to start: ${r.errors.map((e) => e.message).join('; ')}`));
        return;
      }
      fresh.live = true;
      // A replacement during a drain drains too (its listeners bound before it was told).
      if (this.draining) void fresh.api.drain().catch(() => {});
      // The verdicts it missed while it was not there.
      for (const u of this.health?.unhealthy() ?? []) void fresh.api.setEndpointHealth(u.cluster, u.endpoint, false).catch(() => {});
      this.broadcastRing();
      this.opts.log.info({ worker: slot }, 'worker replaced');
      this.emit('workerReady', slot);
    });
  }

  private giveUp(err: L7Error): void {
    this.opts.log.error({ err: err.message }, 'worker supervision gave up');
    if (this.listenerCount('gaveUp') > 0) this.emit('gaveUp', err);
  }
}
