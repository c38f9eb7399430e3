/**
 * The routing state of one worker, built from a frozen {@link ConfigSnapshot}: objects by name,
 * the rule lookup (docs/l7mp-compat.md §4.3), and a load balancer per cluster (§4.5).
 */
import jsonPredicate from 'json-predicate';
import { L7Error, ErrorCode } from '../common/errors.ts';
import type { ClusterConfig, ConfigSnapshot, ListenerConfig, RouteConfig, RuleConfig, RuleListConfig } from '../cluster-config/snapshot.ts';
import { setAtPath } from './paths.ts';
import { makeLoadBalancer, type LoadBalancer } from './loadbalancer.ts';

/** How deep `apply` jumps may nest before lookup gives up (l7mp recursed without bound). */
const MAX_APPLY_DEPTH = 16;

/**
 * A rule's JSON predicate on a session's metadata. json-predicate throws on some values it did not
 * expect (`contains`, `starts` and `ends` call `indexOf` on whatever is at the path: a number or an
 * object from a peer's JSONSocket header throws TypeError). A predicate that throws does not match,
 * so the rulelist goes on to its next rule, as for any other value that is not a string.
 */
function matches(metadata: Record<string, unknown>, match: unknown): boolean {
  try {
    return jsonPredicate.test(metadata, match as Parameters<typeof jsonPredicate.test>[1]) === true;
  } catch {
    return false;
  }
}

/** The outcome of routing a session. */
export interface RouteMatch {
  /** `<rulelist>/<rule>` that matched, for the session's event log. */
  readonly via: string;
  readonly route: RouteConfig;
}

export class RoutingTable {
  readonly snapshot: ConfigSnapshot;
  readonly listeners: ReadonlyMap<string, ListenerConfig>;
  readonly clusters: ReadonlyMap<string, ClusterConfig>;
  readonly rulelists: ReadonlyMap<string, RuleListConfig>;
  readonly rules: ReadonlyMap<string, RuleConfig>;
  readonly routes: ReadonlyMap<string, RouteConfig>;
  private readonly balancers = new Map<string, LoadBalancer>();
  /** Each matched rule's result, with the rulelist it was reached through: one object (and one `via` string) for all its sessions. Bounded by the snapshot's rules. */
  private readonly matchOf = new Map<RuleConfig, { list: string; match: RouteMatch }>();

  constructor(snapshot: ConfigSnapshot) {
    this.snapshot = snapshot;
    this.listeners = new Map(snapshot.listeners.map((x) => [x.name, x]));
    this.clusters = new Map(snapshot.clusters.map((x) => [x.name, x]));
    this.rulelists = new Map(snapshot.rulelists.map((x) => [x.name, x]));
    this.rules = new Map(snapshot.rules.map((x) => [x.name, x]));
    this.routes = new Map(snapshot.routes.map((x) => [x.name, x]));
    for (const c of snapshot.clusters) this.balancers.set(c.name, makeLoadBalancer(c));
  }

  /** The load balancer of a cluster. */
  balancer(cluster: string): LoadBalancer | undefined {
    return this.balancers.get(cluster);
  }

  /**
   * Route a session: walk the listener's rulelist, first match wins, follow `apply` jumps, apply
   * the matched rule's rewrites to `metadata` (in place, before the route is resolved, so later
   * stages see them), and return the route.
   * @throws L7Error `L7_ERR_ROUTE_NOT_FOUND` (`No route for session "<name>"`), or
   *   `L7_ERR_CONFIG_UNKNOWN_REF` for a rulelist, rule or route that names nothing.
   */
  lookup(listener: string, sessionName: string, metadata: Record<string, unknown>): RouteMatch {
    const l = this.listeners.get(listener);
    if (l === undefined) throw new L7Error(ErrorCode.ConfigUnknownRef, `Cannot find Listener "${listener}"`);
    let listName = l.rules;
    for (let depth = 0; depth < MAX_APPLY_DEPTH; depth++) {
      const list = this.rulelists.get(listName);
      if (list === undefined) throw new L7Error(ErrorCode.ConfigUnknownRef, `Cannot find RuleList "${listName}"`);
      let matched: RuleConfig | undefined;
      for (const rn of list.rules) {
        const rule = this.rules.get(rn);
        if (rule === undefined) throw new L7Error(ErrorCode.ConfigUnknownRef, `Cannot find named rule "${rn}" in RuleList "${listName}"`);
        if (rule.match === null || matches(metadata, rule.match)) {
          matched = rule;
          break;
        }
      }
      if (matched === undefined) break;
      if (matched.action.apply !== undefined) {
        listName = matched.action.apply;
        continue;
      }
      for (const w of matched.action.rewrite) setAtPath(metadata, w.path, w.value);
      const known = this.matchOf.get(matched);
      if (known !== undefined && known.list === listName) return known.match;
      const rn = matched.action.route;
      if (rn === undefined) throw new L7Error(ErrorCode.RouteNotFound, `Invalid route for session "${sessionName}"`);
      const route = this.routes.get(rn);
      if (route === undefined) throw new L7Error(ErrorCode.ConfigUnknownRef, `Cannot find Route "${rn}"`);
      const match: RouteMatch = { via: `rulelist:${listName}/rule:${matched.name}`, route };
      this.matchOf.set(matched, { list: listName, match });
      return match;
    }
    throw new L7Error(ErrorCode.RouteNotFound, `No route for session "${sessionName}"`);
  }
}
