/**
 * Load balancers (compat reference §4.5).
 * - `Trivial`: always the first endpoint.
 * - `ConsistentHash` (alias `HashRing`): npm `hashring` (ketama md5) over the endpoints, weighted
 *   by `weight`, keyed by endpoint address as l7mp was; the hashed value is the metadata at `key`.
 *   The same key picks the same endpoint on every worker and every proxy with the same endpoints.
 *   Deviation from l7mp: with no `key`, or no value at it, the key is the downstream's
 *   `/IP/src_addr` and port (then the session name), not a random number, so a client sticks to an
 *   endpoint across sessions too.
 */
import HashRing from 'hashring';
import type { ClusterConfig, EndpointConfig } from '../cluster-config/snapshot.ts';
import { getAtPath } from './paths.ts';

/** Picks an endpoint for a session stage; null when the cluster has none. */
export interface LoadBalancer {
  pick(metadata: Record<string, unknown>, sessionName: string): EndpointConfig | null;
}

class Trivial implements LoadBalancer {
  private readonly first: EndpointConfig | null;
  constructor(eps: readonly EndpointConfig[]) {
    this.first = eps[0] ?? null;
  }
  pick(): EndpointConfig | null {
    return this.first;
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

  pick(metadata: Record<string, unknown>, sessionName: string): EndpointConfig | null {
    if (this.byAddress.size === 0) return null;
    const v = this.key === undefined ? undefined : getAtPath(metadata, this.key);
    const k = v === undefined || v === null ? defaultKey(metadata, sessionName) : typeof v === 'string' ? v : JSON.stringify(v);
    return this.byAddress.get(this.ring.get(k)) ?? null;
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
