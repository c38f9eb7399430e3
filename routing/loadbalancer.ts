/**
 * Load balancers (docs/l7mp-compat.md §4.5).
 * - `Trivial`: always the first endpoint.
 * - `ConsistentHash` (alias `HashRing`): npm `hashring` (ketama md5) over the endpoints, weighted
 *   by `weight`, keyed by endpoint address as l7mp was; the hashed value is the metadata at `key`.
 *   The same key picks the same endpoint on every worker and every proxy with the same endpoints.
 *   Deviation from l7mp: with no `key`, or no value at it, the key is the downstream's
 *   `/IP/src_addr` and port (then the session name), not a random number, so a client sticks to an
 *   endpoint across sessions too.
 *
 * Health and retries (Envoy's load balancer with outlier detection, retry_host_predicate
 * previous_hosts and panic mode): `pick` skips endpoints that are ejected or unhealthy
 * ({@link HealthView}) and the ones in `avoid` (those that failed earlier in the same connect
 * phase). Trivial then takes the next endpoint in order, ConsistentHash the next endpoint on the
 * ring from the key's point. Preference: usable and not avoided > not avoided > usable > any, so a
 * cluster whose endpoints are all down still gets a pick (Envoy's panic threshold, at 100 %).
 */
import HashRing from 'hashring';
import type { ClusterConfig, EndpointConfig } from '../cluster-config/snapshot.ts';
import { getAtPath } from './paths.ts';
import type { HealthView } from './health.ts';

/** Picks an endpoint for a session stage; null when the cluster has none. */
export interface LoadBalancer {
  /**
   * @param avoid endpoint names to pass over if another one is available (failed in this connect phase)
   * @param health which endpoints are usable now (ejected or unhealthy ones are passed over); null: all
   */
  pick(metadata: Record<string, unknown>, sessionName: string, avoid?: readonly string[] | null, health?: HealthView | null): EndpointConfig | null;
}

/**
 * The first endpoint of `order` by preference: usable and not avoided, then not avoided, then
 * usable, then the first (panic: every endpoint is down or was tried).
 */
export function choose(order: Iterable<EndpointConfig>, avoid: readonly string[] | null | undefined, health: HealthView | null | undefined): EndpointConfig | null {
  let notAvoided: EndpointConfig | null = null;
  let usableAvoided: EndpointConfig | null = null;
  let first: EndpointConfig | null = null;
  for (const e of order) {
    first ??= e;
    const ok = health === null || health === undefined || health.usable(e.name);
    const av = avoid !== null && avoid !== undefined && avoid.includes(e.name);
    if (ok && !av) return e;
    if (!av) notAvoided ??= e;
    else if (ok) usableAvoided ??= e;
  }
  return notAvoided ?? usableAvoided ?? first;
}

/** Nothing to pass over: the plain pick applies. */
function plain(avoid: readonly string[] | null | undefined, health: HealthView | null | undefined): boolean {
  return (avoid === null || avoid === undefined || avoid.length === 0) && (health === null || health === undefined || !health.anyDown());
}

class Trivial implements LoadBalancer {
  private readonly eps: readonly EndpointConfig[];
  constructor(eps: readonly EndpointConfig[]) {
    this.eps = eps;
  }
  pick(_m: Record<string, unknown>, _s: string, avoid?: readonly string[] | null, health?: HealthView | null): EndpointConfig | null {
    if (plain(avoid, health)) return this.eps[0] ?? null;
    return choose(this.eps, avoid, health);
  }
}

/** The default hash input: the downstream address and port, else the session name. */
export function defaultKey(metadata: Record<string, unknown>, sessionName: string): string {
  const ip = metadata.IP as { src_addr?: unknown } | undefined;
  if (ip?.src_addr !== undefined) {
    const port = (metadata.UDP as { src_port?: unknown } | undefined)?.src_port ?? (metadata.TCP as { src_port?: unknown } | undefined)?.src_port ?? '';
    return `${String(ip.src_addr)}:${String(port)}`;
  }
  return sessionName;
}

class ConsistentHash implements LoadBalancer {
  private readonly ring: HashRing;
  private readonly byAddress = new Map<string, EndpointConfig>();
  private readonly key: string | undefined;

  constructor(eps: readonly EndpointConfig[], key: string | undefined) {
    this.key = key;
    const weights: Record<string, number> = {};
    for (const e of eps) {
      // Two endpoints with one address collapse into one, as in l7mp.
      if (!this.byAddress.has(e.spec.address)) this.byAddress.set(e.spec.address, e);
      weights[e.spec.address] = e.weight;
    }
    this.ring = new HashRing(weights);
  }

  pick(metadata: Record<string, unknown>, sessionName: string, avoid?: readonly string[] | null, health?: HealthView | null): EndpointConfig | null {
    if (this.byAddress.size === 0) return null;
    const v = this.key === undefined ? undefined : getAtPath(metadata, this.key);
    const k = v === undefined || v === null ? defaultKey(metadata, sessionName) : typeof v === 'string' ? v : JSON.stringify(v);
    if (plain(avoid, health)) return this.byAddress.get(this.ring.get(k)) ?? null;
    // The endpoints in ring order from the key's point: the next one on the ring comes first.
    const order: EndpointConfig[] = [];
    for (const a of this.ring.range(k, this.byAddress.size, true)) {
      const e = this.byAddress.get(a);
      if (e !== undefined) order.push(e);
    }
    return choose(order, avoid, health);
  }
}

export function makeLoadBalancer(c: ClusterConfig): LoadBalancer {
  switch (c.loadbalancer.policy) {
    case 'ConsistentHash':
    case 'HashRing':
      return new ConsistentHash(c.endpoints, c.loadbalancer.key);
    default:
      return new Trivial(c.endpoints);
  }
}
