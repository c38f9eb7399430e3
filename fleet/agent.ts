/**
 * The node side of the fleet bus (main thread). It connects to NATS in the background (the data
 * plane never waits for it), watches the KV keys that target this node, applies their merge on
 * every worker through the process's config queue ({@link ConfigStore.update}: the one writer,
 * shared with the REST API and SIGHUP reloads; all or nothing), and reports:
 *
 * ```
 *   KV watch (node.<id>, compiled.<id>, selector.>) ──► entries ──► reconcile (one at a time)
 *        ▲  restarted on every reconnect (resync)                   │ desiredFor + mergeConfig
 *        │                                                          ▼
 *   nats.js reconnects forever                  ConfigStore.update (apply, commit) ──► state dir
 *                                                                   │
 *                                              ACK / NACK on l7mp.<fleet>.status.<node>
 * ```
 *
 * A REST change on a fleet node is local: it runs until the fleet's config for the node changes,
 * which then replaces the whole config.
 *
 * Core publishes made while disconnected are lost silently (nats.js 3.4: 100 of 100 lost when tried). Nothing here
 * depends on one: status is published again after every resync and carried by every heartbeat
 * and every `discover` answer; desired state is only ever read from KV. NATS callbacks only
 * enqueue work (no slow-consumer cut-off), and every NATS promise has a catch.
 */
import { connect, type ConnectionOptions, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { parseConfigText } from '../cluster-config/parse.ts';
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/nats-core';
import type { Runtime } from '../runtime/main/runtime.ts';
import type { Logger } from '../common/log.ts';
import { asL7Error, ErrorCode } from '../common/errors.ts';
import type { ConfigSnapshot } from '../cluster-config/snapshot.ts';
import type { ConfigStore } from '../cluster-config/store.ts';
import { fleetNames, type FleetNames } from './names.ts';
import { desiredFor, mergeConfig, type ConfigPart, type DesiredEntry } from './desired.ts';
import { saveState } from './state-dir.ts';
import { StatsSampler, type ApplyResult, type Heartbeat } from './telemetry.ts';
import type { Labels } from './labels.ts';
import { parseDrain } from '../runtime/main/drain.ts';
import { DEFAULT_DRAIN_TIMEOUT_S } from '../cluster-config/schema.ts';

/** KV options of a fleet bucket; the proxy and the CLI create it alike (NATS 2.9 features only). */
export const BUCKET_OPTIONS = { history: 10, description: 'l7mp-ts fleet desired state' } as const;

/** Open the fleet's bucket, creating it if missing. */
export async function openBucket(nc: NatsConnection, names: FleetNames): Promise<KV> {
  return new Kvm(nc).create(names.bucket, BUCKET_OPTIONS);
}

/** Options of a {@link FleetAgent}. */
export interface AgentOptions {
  connection: ConnectionOptions;
  fleet: string;
  nodeId: string;
  labels: Labels;
  /** Reported in heartbeats: where other nodes reach this one. */
  address: string;
  runtime: Runtime;
  /** The `-c` document (or `{}`), merged under everything from the fleet. */
  base: ConfigPart;
  strict: boolean;
  log: Logger;
  /** Where the last applied config is kept (`--state-dir`). */
  stateDir?: string;
  /**
   * The process's config store: the fleet's config is applied through its queue, as REST changes
   * and reloads are (the store applies on the runtime), so the API shows what runs.
   */
  store: ConfigStore;
  /** Revision and merged document the runtime started with (from the state dir). */
  initial?: { revision: number; doc: Record<string, unknown> };
  /** Heartbeat and stats period, ms (default 5000). */
  telemetryMs?: number;
}

/** Three watches, because NATS 2.9 consumers take one filter subject. */
function filters(n: FleetNames, nodeId: string): string[] {
  return [n.nodeKey(nodeId), n.compiledKey(nodeId), `${n.selectorPrefix}>`];
}

export class FleetAgent {
  private readonly o: AgentOptions;
  private readonly names: FleetNames;
  private nc: NatsConnection | null = null;
  private stopping = false;
  /** Bumped by every resync; a watch of an older generation stops feeding entries. */
  private generation = 0;
  private watches: Array<QueuedIterator<KvWatchEntry>> = [];
  private entries = new Map<string, DesiredEntry>();
  /** True once every watch of the current generation delivered the keys present when it started. */
  private synced = false;
  private running = false;
  private dirty = false;
  private appliedRevision: number;
  private appliedJson: string;
  private last: ApplyResult | null = null;
  /** Publish the status after the next reconcile even if the revision did not change (after a resync). */
  private announce = false;
  /** When the last resync finished (ISO 8601). */
  private syncedAt: string | null = null;
  private readonly sampler = new StatsSampler();
  private timer: NodeJS.Timeout | null = null;
  private subs: Subscription[] = [];
  /** Resolves when the current reconcile loop ends (tests, shutdown). */
  private loop: Promise<void> = Promise.resolve();

  constructor(o: AgentOptions) {
    this.o = o;
    this.names = fleetNames(o.fleet);
    this.appliedRevision = o.initial?.revision ?? 0;
    this.appliedJson = JSON.stringify(o.initial?.doc ?? mergeConfig(o.base, [], false).doc);
  }

  /** The KV revision of the config being served. */
  get revision(): number {
    return this.appliedRevision;
  }

  /** Connect in the background and keep going until {@link stop}. Never throws. */
  start(): void {
    void this.connectLoop();
    const every = this.o.telemetryMs ?? 5000;
    this.timer = setInterval(() => void this.telemetry(), every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.stopWatches();
    const nc = this.nc;
    this.nc = null;
    if (nc) await nc.close().catch(() => {});
  }

  private async connectLoop(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      let nc: NatsConnection;
      try {
        // Our own retry loop for the first connect (not nats.js waitOnFirstConnect), so that
        // refused connections and bad credentials are seen and logged.
        nc = await connect({ ...this.o.connection, waitOnFirstConnect: false });
      } catch (e) {
        // Server down, bad credentials...: keep serving, retry; log the first failure and then every ~30 s.
        if (failures++ % 60 === 0) this.o.log.error({ err: (e as Error).message, attempts: failures }, 'NATS connect failed; serving the current config, retrying every 500 ms');
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      failures = 0;
      if (this.stopping) {
        await nc.close().catch(() => {});
        return;
      }
      this.nc = nc;
      this.o.log.info({ server: nc.getServer(), fleet: this.o.fleet, node: this.o.nodeId }, 'NATS connected');
      this.subscribe(nc);
      void this.resync();
      void this.watchStatus(nc);
      const err = await nc.closed();
      this.stopWatches();
      this.subs = [];
      if (this.stopping) return;
      this.o.log.error({ err: err ? err.message : 'closed' }, 'NATS connection closed; reconnecting');
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') this.o.log.warn({ fleet: this.o.fleet }, 'NATS disconnected; the data plane keeps serving the current config');
      else if (s.type === 'reconnect') {
        this.o.log.info({ server: nc.getServer() }, 'NATS reconnected; resyncing from KV');
        void this.resync();
      }
    }
  }

  private subscribe(nc: NatsConnection): void {
    const reply = (f: () => Promise<unknown>) => (err: Error | null, msg: { respond(d: string): boolean }) => {
      if (err) return;
      void f().then(
        (v) => msg.respond(JSON.stringify(v)),
        (e) => msg.respond(JSON.stringify({ error: { code: ErrorCode.Internal, message: (e as Error).message } })),
      );
    };
    this.subs = [
      nc.subscribe(this.names.discover, { callback: reply(async () => this.heartbeat()) }),
      nc.subscribe(this.names.actors(this.o.nodeId), { callback: reply(() => this.o.runtime.tree()) }),
      nc.subscribe(this.names.drain(this.o.nodeId), { callback: (e, m) => reply(async () => this.drain(m.data))(e, m) }),
    ];
  }

  /**
   * The fleet's drain command (`l7mp-ts fleet drain NODE`): a JSON body `{timeout_s?, exit?}` as
   * `POST /api/v1/admin {"drain": ...}` takes (empty: the defaults). Answers the drain status, or
   * `{error}` for a bad body. The node stays up once drained unless `exit` is true.
   */
  private async drain(data: Uint8Array): Promise<unknown> {
    const text = Buffer.from(data).toString('utf8').trim();
    let body: unknown = true;
    try {
      if (text !== '') body = JSON.parse(text);
    } catch (e) {
      return { error: { code: ErrorCode.InvalidArgument, message: `Cannot drain: not JSON: ${(e as Error).message}` } };
    }
    let d;
    try {
      d = parseDrain(body);
    } catch (e) {
      return { error: { code: ErrorCode.InvalidArgument, message: (e as Error).message } };
    }
    const rt = this.o.runtime;
    this.o.log.info({ fleet: this.o.fleet, ...d }, 'drain command from the fleet');
    const status = rt.drain({ timeoutS: d.timeout_s ?? rt.snapshot.admin.drain_timeout_s ?? DEFAULT_DRAIN_TIMEOUT_S, exit: d.exit ?? false, source: 'fleet' });
    // The heartbeat says so at once (fleet status), not only at the next period.
    this.publish(this.names.heartbeat(this.o.nodeId), this.heartbeat());
    return status;
  }

  private stopWatches(): void {
    this.generation++;
    this.synced = false;
    for (const w of this.watches) w.stop();
    this.watches = [];
  }

  /**
   * Start the watches again from scratch (after a connect or reconnect): the fresh watches deliver
   * the last value of every key, so changes made while this node was away are not missed. The
   * served config stays until the new state is complete.
   */
  private async resync(): Promise<void> {
    this.stopWatches();
    const gen = this.generation;
    const nc = this.nc;
    for (let attempt = 0; nc !== null && gen === this.generation && !this.stopping; attempt++) {
      try {
        const kv = await openBucket(nc, this.names);
        const entries = new Map<string, DesiredEntry>();
        const pending: Array<Promise<boolean>> = [];
        for (const f of filters(this.names, this.o.nodeId)) {
          const w = await kv.watch({ key: f });
          if (gen !== this.generation) {
            w.stop();
            return;
          }
          this.watches.push(w);
          // The keys present now: the watch has delivered its initial state once it saw them all.
          const want = new Set<string>();
          for await (const k of await kv.keys(f)) want.add(k);
          pending.push(this.feed(w, gen, entries, want));
        }
        // Bounded: a watch that stalls makes this resync fail and start over.
        let timer: NodeJS.Timeout | undefined;
        const complete = await Promise.race([
          Promise.all(pending),
          new Promise<boolean[]>((resolve) => {
            timer = setTimeout(() => resolve([false]), 10_000);
          }),
        ]).finally(() => clearTimeout(timer));
        if (gen !== this.generation) return;
        if (complete.includes(false)) throw new Error('a KV watch did not deliver the current state (ended, or not within 10 s)');
        this.entries = entries;
        this.synced = true;
        this.syncedAt = new Date().toISOString();
        this.o.log.debug({ keys: entries.size }, 'fleet state synced from KV');
        // Re-announce even if nothing changed: a status published during an outage was lost.
        this.announce = true;
        this.schedule();
        return;
      } catch (e) {
        if (gen !== this.generation) return;
        // JetStream may still be recovering right after a server restart.
        this.o.log.warn({ err: (e as Error).message, attempt }, 'KV watch failed; retrying');
        this.stopWatchesOnly();
        await new Promise((r) => setTimeout(r, Math.min(250 * (attempt + 1), 2000)));
      }
    }
  }

  private stopWatchesOnly(): void {
    for (const w of this.watches) w.stop();
    this.watches = [];
  }

  /**
   * Copy watch entries into `entries`; resolve true once every key of `want` was seen, false if
   * the watch ended before.
   */
  private feed(w: QueuedIterator<KvWatchEntry>, gen: number, entries: Map<string, DesiredEntry>, want: Set<string>): Promise<boolean> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (want.size === 0) resolve(true);
      };
      check();
      void (async () => {
        try {
          for await (const e of w) {
            if (gen !== this.generation) return;
            let value: unknown = null;
            let parseError: string | undefined;
            if (e.operation === 'PUT') {
              try {
                // Bounded like every config input: size, nesting depth (cluster-config/parse.ts).
                value = parseConfigText(e.string(), 'json');
              } catch (err) {
                value = undefined;
                parseError = (err as Error).message;
              }
            }
            entries.set(e.key, { revision: e.revision, value, ...(parseError !== undefined ? { parseError } : {}) });
            want.delete(e.key);
            check();
            if (this.synced) this.schedule();
          }
        } catch (err) {
          if (gen === this.generation) this.o.log.warn({ err: (err as Error).message }, 'KV watch failed');
        }
        if (want.size > 0) {
          resolve(false);
          return;
        }
        // A watch that ends on its own after the sync (not by a resync or stop): start over.
        if (gen === this.generation && this.synced && !this.stopping) {
          this.o.log.warn({ fleet: this.o.fleet }, 'KV watch ended; resyncing');
          setTimeout(() => void this.resync(), 500).unref();
        }
      })();
    });
  }

  /** Run {@link reconcile} now, or once more after the running one. */
  private schedule(): void {
    if (!this.synced) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    this.running = true;
    this.loop = (async () => {
      do {
        this.dirty = false;
        try {
          await this.reconcile();
        } catch (e) {
          this.o.log.error({ err: (e as Error).message }, 'fleet reconcile failed');
        }
      } while (this.dirty && !this.stopping);
      this.running = false;
    })();
  }

  private async reconcile(): Promise<void> {
    const d = desiredFor(this.entries, this.names, this.o.nodeId, this.o.labels);
    // Applies are idempotent by revision: an older revision is never applied. Within one watch
    // generation deliveries are in order; a fresh read after a resync is authoritative even if
    // lower (the state dir holds a revision of a bucket that was since recreated).
    if (d.revision < this.appliedRevision) {
      if (!this.announce) return;
      this.o.log.warn({ kv: d.revision, applied: this.appliedRevision }, 'KV revision is older than the applied one (bucket recreated?); following KV');
    }
    if (!this.announce && this.last !== null && this.last.revision === d.revision) return;
    this.announce = false;
    let next: { doc: Record<string, unknown>; snapshot: ConfigSnapshot };
    try {
      if (d.error) throw d.error;
      next = mergeConfig(this.o.base, d.parts, this.o.strict, (m) => this.o.log.debug(m));
    } catch (e) {
      this.nack(d.revision, e);
      return;
    }
    const json = JSON.stringify(next.doc);
    if (json !== this.appliedJson) {
      const snapshot = next.snapshot;
      try {
        await this.o.store.update(() => snapshot);
      } catch (e) {
        this.nack(d.revision, e);
        return;
      }
      this.appliedJson = json;
      this.o.log.info({ revision: d.revision, sources: d.parts.map((p) => p.source) }, 'fleet config applied');
    }
    this.appliedRevision = d.revision;
    this.last = { revision: d.revision, ok: true };
    this.persist(next.doc);
    this.publishStatus();
  }

  private nack(revision: number, e: unknown): void {
    const err = asL7Error(e, ErrorCode.ConfigInvalid);
    this.last = { revision, ok: false, error: { code: err.code, message: err.message } };
    this.o.log.warn({ revision, code: err.code, err: err.message }, 'fleet config rejected (NACK); the previous config keeps serving');
    this.publishStatus();
  }

  private persist(doc: Record<string, unknown>): void {
    if (this.o.stateDir === undefined) return;
    try {
      saveState(this.o.stateDir, { version: 1, fleet: this.o.fleet, nodeId: this.o.nodeId, revision: this.appliedRevision, config: doc, time: new Date().toISOString() });
    } catch (e) {
      this.o.log.error({ err: (e as Error).message, dir: this.o.stateDir }, 'cannot write the state dir');
    }
  }

  /** The status message (ACK or NACK). */
  private statusMessage(): Record<string, unknown> {
    const l = this.last;
    return {
      type: l === null || l.ok ? 'ack' : 'nack',
      nodeId: this.o.nodeId,
      revision: l?.revision ?? this.appliedRevision,
      applied: this.appliedRevision,
      ...(l?.error ? { error: l.error } : {}),
      time: new Date().toISOString(),
    };
  }

  private publishStatus(): void {
    this.publish(this.names.status(this.o.nodeId), this.statusMessage());
  }

  /** A core publish; lost if disconnected, which every reader tolerates (see the module comment). */
  private publish(subject: string, msg: unknown): void {
    const nc = this.nc;
    if (nc === null || nc.isClosed()) return;
    try {
      nc.publish(subject, JSON.stringify(msg));
    } catch (e) {
      this.o.log.debug({ err: (e as Error).message, subject }, 'publish failed');
    }
  }

  /** This node's heartbeat (also the `discover` answer). */
  heartbeat(): Heartbeat {
    const live = this.o.runtime.liveSlots().length;
    const total = this.o.runtime.workers;
    return {
      nodeId: this.o.nodeId,
      fleet: this.o.fleet,
      labels: this.o.labels,
      address: this.o.address,
      revision: this.appliedRevision,
      health: this.o.runtime.draining ? 'draining' : live === total ? 'ok' : 'degraded',
      workers: { live, total },
      last: this.last,
      synced: this.syncedAt,
      stats: this.sampler.totals,
      pid: process.pid,
      time: new Date().toISOString(),
    };
  }

  private async telemetry(): Promise<void> {
    if (this.nc === null || this.stopping) return;
    try {
      const stats = this.sampler.sample(this.o.nodeId, await this.o.runtime.metrics(1000), Date.now());
      this.publish(this.names.stats(this.o.nodeId), stats);
    } catch (e) {
      this.o.log.debug({ err: (e as Error).message }, 'stats sample failed');
    }
    this.publish(this.names.heartbeat(this.o.nodeId), this.heartbeat());
  }
}
