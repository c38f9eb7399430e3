/**
 * The main thread: starts N worker threads, wires a MessagePort between every pair (datagram
 * hand-offs), keeps the ring of live workers in sync, and supervises: a worker that dies is
 * removed from the ring at once (its peers' new sessions go to the others), replaced in the same
 * slot, and put back on the ring when its listeners are up. Restart intensity is bounded (OTP
 * style): past `maxRestarts` within `restartPeriodMs` the runtime gives up and reports it.
 *
 * Its UDP sessions survive it: on `'exit'` they are rebuilt on the live workers before the ring
 * changes (runtime/main/recovery.ts has the sequence); the replacement starts once that is done.
 */
import { EventEmitter } from 'node:events';
import { MessageChannel, Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { ConfigSnapshot } from '../../cluster-config/snapshot.ts';
import type { ActorNode } from '../../actors/tree.ts';
import { L7Error, ErrorCode, type L7ErrorData } from '../../common/errors.ts';
import type { LogLevel, Logger } from '../../common/log.ts';
import type { StartResult, WorkerApi, WorkerStats } from '../worker/worker-main.ts';
import type { HostApi, WorkerInit } from '../worker/worker-host.ts';
import { fdLimit, openFds, sessionCap, type FdLimit } from '../../common/fd-limit.ts';
import type { AdminAnswer, AdminCall } from '../../protocols/types.ts';
import { l7mpErrorAnswer } from '../../protocols/core/l7mp-error.ts';
import type { RuntimeMetrics } from '../worker/stats.ts';
import type { OffloadMode } from '../../native-offload/provider.ts';
import { WorkerRing } from '../ring.ts';
import { Steering, type SteerStats } from './steering.ts';
import { HealthChecker } from './health-check.ts';
import { Drain, type DrainOutcome, type DrainRequest, type DrainStatus } from './drain.ts';
import { newSessionTable } from '../session-table.ts';
import { sessionFds } from '../session-fds.ts';
import { SessionRecovery, type RecoveryReport } from './recovery.ts';
import { SessionGauges } from './gauges.ts';
import { withTimeout, type Slot } from './worker-slot.ts';
import { ProtocolServices } from './services.ts';

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

/** The handler behind {@link HostApi.adminRequest}. */
export type AdminHandler = (call: AdminCall) => Promise<AdminAnswer>;

function unavailable(): AdminAnswer {
  return l7mpErrorAnswer(503, 'Service Unavailable', 'The admin API is not up yet');
}

// From a checkout Node runs the .ts sources; an installed package runs the build in dist/ (.js).
const workerUrl = new URL(import.meta.url.endsWith('.js') ? '../worker/worker-main.js' : '../worker/worker-main.ts', import.meta.url);

/**
 * The young generation of each worker's V8 heap (`resourceLimits.maxYoungGenerationSizeMb`). V8's
 * own choice on this machine costs more: 10.5 vs 5.9 KiB of PSS per idle UDP session and 7.8k vs
 * 9.2k new sessions/s (10000 sessions, one worker, 3 runs each); a larger nursery is mostly pages
 * the scavenger touches and the kernel has to fault in. 8 MiB saved a little more memory but put
 * the scavenges close enough together to show in the p99.9 of a round trip. Unit: MiB.
 */
const WORKER_YOUNG_GEN_MB = 16;

/** The longest a dead worker's replacement waits for its sessions to be rebuilt before it starts. Unit: ms. */
const RESPAWN_DEFER_MS = 250;

/**
 * Events: `workerExit` (slot, exit code), `workerReady` (slot: on the ring, steered), `gaveUp` (L7Error): restart
 * intensity exceeded or a replacement failed to start; `drained` ({@link DrainOutcome}): a drain
 * is over (the CLI exits when it asked to).
 */
export class Runtime extends EventEmitter {
  private readonly opts: RuntimeOptions;
  private readonly slots = new Map<number, Slot>();
  /** Protocol services of every worker, hosted on this thread (Unix datagram sockets). */
  private readonly services = new ProtocolServices();
  private stopping = false;
  private restartTimes: number[] = [];
  /** Applies run one at a time, in order. */
  private applying: Promise<unknown> = Promise.resolve();
  /** Worker restarts since start. */
  restarts = 0;
  /** Worker restarts since start, by slot. */
  private readonly restartsBySlot = new Map<number, number>();
  /** SO_REUSEPORT steering of UDP listeners (offload on or 2+ workers, and CAP_BPF), else null. */
  private readonly steering: Steering | null;
  /** Steering refreshes run one at a time, in order. */
  private steeringRun: Promise<void> = Promise.resolve();
  private adminHandler: AdminHandler | null = null;
  /** The open-file limit the session cap derives from (null: unknown, no fd-derived cap). */
  readonly fdLimit: FdLimit | null = fdLimit();
  /** Active health checks of the clusters that configure one (main thread; null before start). */
  private health: HealthChecker | null = null;
  /** Session gauges of the process and of each listener (admission control). */
  private readonly gauges: SessionGauges;
  /** Sessions of dead workers: their rebuild on live workers, pins of their peers, counts. */
  private readonly recovery: SessionRecovery;

  /** The graceful drain of this process (runtime/main/drain.ts). */
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
    this.gauges = new SessionGauges(opts.workers);
    this.recovery = new SessionRecovery({
      slots: this.slots,
      liveSlots: () => this.liveSlots(),
      log: opts.log,
      snapshot: () => this.opts.snapshot,
      sessionsOf: (slot) => this.gauges.of(slot),
      onReport: (report: RecoveryReport) => this.emit('sessionsRecovered', report),
    });
    // No offload: it only picks the worker's socket (with several, they answer from the listening sockets).
    this.steering = opts.snapshot.admin.steering !== false && (this.offloadMode !== 'disable' || opts.workers > 1) ? Steering.create(opts.log, this.offloadMode !== 'disable') : null;
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
    const results = await Promise.all(live.map((s) => s.api.apply(next, this.gauges.listeners(next))));
    const errors = results.flatMap((r) => (r.ok ? [] : r.errors));
    if (errors.length === 0) {
      this.opts.snapshot = next;
      this.gauges.keep(next);
      // A log level changed through the API (POST /api/v1/admin); `-l` set the one at start.
      if (next.admin.log_level !== prev.admin.log_level) this.opts.log.level = next.admin.log_level;
      this.health?.update(next);
      await this.refreshSteering();
      return;
    }
    await Promise.all(live.map((s) => s.api.apply(prev, this.gauges.listeners(prev))));
    await this.refreshSteering();
    const first = errors[0] as L7ErrorData;
    throw new L7Error(first.code, [...new Set(errors.map((e) => e.message))].join('; '), { cause: first });
  }

  /**
   * Drain (runtime/main/drain.ts): stop taking new sessions on every worker and let the live ones
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
    const process = { sessions: this.sessionCount(), sessionLimit: this.sessionCap(), sessionFds: this.gauges.fds(), openFds: openFds(), maxFds: this.fdLimit?.soft ?? -1, draining: this.draining ? 1 : 0 };
    return {
      workers: this.opts.workers,
      slots,
      restarts: Object.fromEntries(this.restartsBySlot),
      recovery: { recovered: this.recovery.recovered, lost: Object.fromEntries(this.recovery.lost) },
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
    return this.recovery.pinnedPeers;
  }

  /** The thread of a slot (tests use it to kill a worker). */
  thread(slot: number): Worker | undefined {
    return this.slots.get(slot)?.thread;
  }

  private spawn(slot: number): Slot {
    const hostCh = new MessageChannel();
    const hostApi: HostApi = {
      adminRequest: (call) => (this.adminHandler === null ? Promise.resolve(unavailable()) : this.adminHandler(call)),
      unpinned: (listener, key) => this.recovery.unpinned(slot, listener, key),
    };
    Comlink.expose(hostApi, nodeEndpoint(hostCh.port1));
    const table = newSessionTable();
    // What protocols keep on this thread for the worker (its Unix datagram sockets): a port per service.
    const services = this.services.connect();
    const init: WorkerInit = {
      slot,
      workers: this.opts.workers,
      logLevel: this.opts.logLevel,
      host: hostCh.port2,
      services: services.ports,
      offload: this.offloadMode,
      steered: this.steering !== null,
      sessionGauge: this.gauges.process,
      fdSoftLimit: this.fdLimit?.soft ?? Infinity,
      sessionTable: table,
    };
    const thread = new Worker(workerUrl, {
      workerData: init,
      transferList: [hostCh.port2, ...services.transfer],
      name: `l7mp-ts worker ${slot}`,
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GEN_MB },
    });
    thread.once('exit', () => services.detach());
    const s: Slot = { slot, thread, api: Comlink.wrap<WorkerApi>(nodeEndpoint(thread)), host: hostCh.port1, live: false, table };
    // Rebuilt sessions pinned elsewhere: its listening sockets hand their peers' datagrams there.
    if (this.recovery.pinnedPeers > 0) void s.api.pin(this.recovery.pinList());
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
    return Promise.race([s.api.start(this.opts.snapshot, live, this.gauges.listeners(this.opts.snapshot)), exited]);
  }

  /** The process-wide session cap in force (admin.max_sessions bounded by the open-file limit). */
  sessionCap(): number {
    const snap = this.opts.snapshot;
    return sessionCap(snap.admin, this.fdLimit?.soft ?? Infinity, sessionFds(snap, { workers: this.opts.workers, offload: this.offloadMode !== 'disable', steered: this.steering !== null }));
  }

  /** Sessions of the process now, over every worker (admission control's count). */
  sessionCount(): number {
    return this.gauges.count();
  }

  /** Tell every live worker the ring and steer by it; resolves when both are done (a replacement is ready then). */
  private broadcastRing(): Promise<void> {
    const live = this.liveSlots();
    const told = [...this.slots.values()].filter((s) => s.live).map((s) => s.api.setRing(live).catch(() => {}));
    return Promise.all([...told, this.refreshSteering()]).then(() => {});
  }

  private onExit(s: Slot, code: number): void {
    if (this.stopping || this.slots.get(s.slot) !== s) return;
    const exitAt = performance.now();
    s.live = false;
    this.slots.delete(s.slot);
    // First (every ms loses datagrams), and before its gauge cell is zeroed: it counts what it had.
    const rebuilt = this.recovery.recover(s, exitAt);
    this.opts.log.error({ worker: s.slot, code }, 'worker died; replacing it');
    s.api[Comlink.releaseProxy]();
    s.host.close();
    // Its sessions are gone (or rebuilt, and counted, elsewhere): its share of every session count goes back to 0 for the replacement.
    this.gauges.clear(s.slot);
    this.emit('workerExit', s.slot, code);
    void this.broadcastRing();
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
    // No worker was live when the sessions' worker died: this one rebuilds them as it starts (its
    // listeners take them before they bind; sent before `start`, comlink keeps the order).
    this.recovery.adoptPending(slot);
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
      // A replacement during a drain drains too (bound before it was told); the health verdicts it missed.
      if (this.draining) void fresh.api.drain().catch(() => {});
      for (const u of this.health?.unhealthy() ?? []) void fresh.api.setEndpointHealth(u.cluster, u.endpoint, false).catch(() => {});
      void this.broadcastRing().then(() => {
        if (this.stopping || this.slots.get(slot) !== fresh) return;
        this.opts.log.info({ worker: slot }, 'worker replaced');
        this.emit('workerReady', slot);
      });
    });
  }

  private giveUp(err: L7Error): void {
    this.opts.log.error({ err: err.message }, 'worker supervision gave up');
    if (this.listenerCount('gaveUp') > 0) this.emit('gaveUp', err);
  }
}
