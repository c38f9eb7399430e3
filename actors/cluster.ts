/**
 * The cluster actor: owns one protocol cluster instance on one worker, through which session
 * stages open upstream connections. Permanent: restarted by its worker if it fails.
 */
import { Actor } from './actor.ts';
import { L7Error, ErrorCode } from '../common/errors.ts';
import type { ClusterContext, ClusterInstance, ProtocolModule } from '../protocols/types.ts';
import type { ClusterConfig } from '../cluster-config/snapshot.ts';
import type { WorkerServices } from './services.ts';
import type { ClusterHealth } from '../routing/health.ts';

/**
 * Per-cluster connect counters of one worker, counted by sessions on the control path (connect
 * results, never per packet) and read by metrics at scrape time. They outlive the cluster actor
 * (restarts, re-applies) and count every session stage that goes through the cluster.
 */
export class ClusterCounters {
  /** The cluster's `spec.protocol` (a metrics label). */
  protocol: string;
  /** Successful connects while the session was being set up (l7mp's `cluster_requests_total`). */
  requests = 0;
  /** Successful connects, reconnects included. */
  connections = 0;
  /** Connect attempts. */
  attempts = 0;
  /** Attempts beyond the first of a setup connect phase, plus every reconnect attempt. */
  retries = 0;
  /** Attempts that failed (refused, timed out, no endpoint). */
  failures = 0;
  /** Protocol events and drops by name (`sync_forwarded`, `transform_error`...), from {@link ClusterContext.count}. */
  readonly named = new Map<string, number>();
  count(name: string, n = 1): void {
    this.named.set(name, (this.named.get(name) ?? 0) + n);
  }

  constructor(protocol: string) {
    this.protocol = protocol;
  }
}

export class ClusterActor extends Actor<never> {
  readonly kind = 'cluster' as const;
  private readonly cfg: ClusterConfig;
  private readonly proto: ProtocolModule;
  private readonly services: WorkerServices;
  private readonly registry: Map<string, ClusterInstance>;
  private readonly counters: ClusterCounters;
  private instance: ClusterInstance | null = null;
  private readonly health: () => ClusterHealth | undefined;

  constructor(cfg: ClusterConfig, proto: ProtocolModule, services: WorkerServices, registry: Map<string, ClusterInstance>, counters: ClusterCounters, health: () => ClusterHealth | undefined = () => undefined) {
    super();
    this.health = health;
    this.cfg = cfg;
    this.proto = proto;
    this.services = services;
    this.registry = registry;
    this.counters = counters;
  }

  override preStart(): void {
    const side = this.proto.cluster;
    if (side === undefined) throw new L7Error(ErrorCode.Internal, `protocol ${this.proto.name} has no cluster`);
    const s = this.services;
    const name = this.cfg.name;
    const counters = this.counters;
    const ctx: ClusterContext = {
      slot: s.slot,
      log: s.log,
      rateLog: s.rateLog,
      ownerOf: (key) => s.ownerOf(key),
      sendPeer: (slot, msg) => s.sendCluster(slot, name, msg),
      count: (counter, n = 1) => counters.count(counter, n),
      admin: (c) => s.admin(c),
    };
    this.instance = side.create({ name, spec: this.cfg.spec }, ctx);
    this.registry.set(this.cfg.name, this.instance);
  }

  receive(): void {}

  override postStop(): void {
    if (this.registry.get(this.cfg.name) === this.instance) this.registry.delete(this.cfg.name);
    this.instance?.close();
    this.instance = null;
  }

  override describe(): Record<string, unknown> {
    return {
      protocol: this.cfg.spec.protocol,
      endpoints: this.cfg.endpoints.map((e) => e.spec.address),
      loadbalancer: this.cfg.loadbalancer.policy,
      ...(this.cfg.endpoints.length > 0 ? { health: this.health()?.describe() ?? {} } : {}),
    };
  }
}
