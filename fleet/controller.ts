/**
 * `l7mp-ts fleet controller`: the operator role. It keeps the l7mp CRDs stored in KV
 * (`k8s.>`, written by `l7mp-ts apply`) compiled against the live inventory, the way l7mp's
 * operator re-ran its per-pod actions on every pod change (docs/l7mp-compat.md §8.3): a node that
 * joins, leaves, or changes labels or address changes the compiled configs of the nodes whose
 * endpoints select it.
 *
 * Inventory: nodes answering `discover` (asked every `intervalMs`) and nodes heard on heartbeat
 * subjects; a node not heard from for `expireMs` leaves the inventory. Its own `compiled.<id>` key
 * is left in place (a node cut off from the bus for a while must not come back to an empty config),
 * but other nodes stop pointing at it.
 *
 * It writes `compiled.<id>` only when the config differs from what KV holds, so a steady fleet
 * sees no writes. A compile error (a bad CRD) is logged and nothing is written until it is fixed.
 */
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import type { Logger } from '../common/log.ts';
import { fleetNames, type FleetNames } from './names.ts';
import { openBucket } from './agent.ts';
import { compile, type InventoryNode, type Resource } from './crd.ts';
import { formatLabels } from './labels.ts';
import type { Heartbeat } from './telemetry.ts';

export interface ControllerOptions {
  connection: ConnectionOptions;
  fleet: string;
  log: Logger;
  /** How often to ask `discover` and recompile, ms (default 2000). */
  intervalMs?: number;
  /** A node not heard from for this long leaves the inventory, ms (default 15000). */
  expireMs?: number;
}

export class FleetController {
  private readonly o: ControllerOptions;
  private readonly names: FleetNames;
  private nc: NatsConnection | null = null;
  private stopping = false;
  private readonly seen = new Map<string, { node: InventoryNode; at: number }>();
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  /** Fingerprint of the last compile's inputs: inventory and resources. */
  private lastInputs = '';
  /** Count of compiled keys written (tests, logs). */
  writes = 0;

  constructor(o: ControllerOptions) {
    this.o = o;
    this.names = fleetNames(o.fleet);
  }

  /** Connect (retrying) and run until {@link stop}. */
  async start(): Promise<void> {
    for (let failures = 0; !this.stopping; failures++) {
      try {
        this.nc = await connect({ ...this.o.connection, waitOnFirstConnect: false });
        break;
      } catch (e) {
        if (failures % 60 === 0) this.o.log.error({ err: (e as Error).message }, 'NATS connect failed; retrying every 500 ms');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const nc = this.nc;
    if (nc === null) return;
    this.o.log.info({ fleet: this.o.fleet, server: nc.getServer() }, 'fleet controller connected');
    nc.subscribe(this.names.allHeartbeats, {
      callback: (e, m) => {
        if (e) return;
        try {
          this.see(m.json<Heartbeat>());
        } catch {
          // not a heartbeat
        }
      },
    });
    const every = this.o.intervalMs ?? 2000;
    this.timer = setInterval(() => void this.tick(), every);
    void this.tick();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    await this.nc?.close().catch(() => {});
  }

  private see(h: Heartbeat): void {
    if (typeof h.nodeId !== 'string' || typeof h.address !== 'string') return;
    this.seen.set(h.nodeId, { node: { nodeId: h.nodeId, labels: h.labels ?? {}, address: h.address }, at: Date.now() });
  }

  /** Refresh the inventory, recompile if anything changed. One at a time. */
  private async tick(): Promise<void> {
    const nc = this.nc;
    if (this.busy || nc === null || nc.isClosed()) return;
    this.busy = true;
    try {
      const it = await nc.requestMany(this.names.discover, '', { strategy: 'timer', maxWait: 500 }).catch(() => null);
      try {
        if (it !== null) for await (const m of it) this.see(m.json<Heartbeat>());
      } catch {
        // no responders, or an answer that is not a heartbeat
      }
      const now = Date.now();
      for (const [id, s] of this.seen) if (now - s.at > (this.o.expireMs ?? 15_000)) this.seen.delete(id);
      const kv = await openBucket(nc, this.names);
      const resources = await this.resources(kv);
      const inventory = [...this.seen.values()].map((s) => s.node).sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
      const inputs = JSON.stringify([inventory.map((n) => [n.nodeId, formatLabels(n.labels), n.address]), resources]);
      if (inputs === this.lastInputs) return;
      if (resources.length === 0) {
        this.lastInputs = inputs;
        return;
      }
      let compiled;
      try {
        compiled = compile(resources, inventory);
      } catch (e) {
        this.o.log.error({ err: (e as Error).message }, 'the stored l7mp resources do not compile; nothing written');
        this.lastInputs = inputs;
        return;
      }
      for (const [node, c] of compiled) {
        const key = this.names.compiledKey(node);
        const cur = await kv.get(key);
        let same = false;
        try {
          same = cur !== null && cur.operation === 'PUT' && JSON.stringify(cur.json<{ config: unknown }>().config) === JSON.stringify(c.config);
        } catch {
          same = false;
        }
        if (same) continue;
        const rev = await kv.put(key, JSON.stringify({ config: c.config, resources: c.resources, time: new Date().toISOString(), by: 'controller' }));
        this.writes++;
        this.o.log.info({ node, revision: rev, resources: c.resources.length }, 'compiled config written');
      }
      this.lastInputs = inputs;
    } catch (e) {
      // Disconnected or JetStream not ready: the next tick tries again.
      this.o.log.debug({ err: (e as Error).message }, 'controller tick failed');
    } finally {
      this.busy = false;
    }
  }

  private async resources(kv: KV): Promise<Resource[]> {
    const out: Resource[] = [];
    for await (const k of await kv.keys(`${this.names.resourcePrefix}>`)) {
      const e = await kv.get(k);
      if (e !== null && e.operation === 'PUT') out.push(e.json<Resource>());
    }
    return out.sort((a, b) => (`${a.kind}/${a.metadata.namespace}/${a.metadata.name}` < `${b.kind}/${b.metadata.namespace}/${b.metadata.name}` ? -1 : 1));
  }
}
