/**
 * What changed between two snapshots: the names added, removed and changed per kind (the reload
 * log, {@link configDiff}), and the endpoints whose sessions must leave them ({@link goneEndpoints}:
 * the config store ends them after every applied change, whichever writer made it).
 */
import { isDeepStrictEqual } from 'node:util';
import type { ConfigSnapshot } from './snapshot.ts';

/** The kinds of top-level objects a snapshot lists. */
const KINDS = ['listeners', 'clusters', 'rulelists', 'rules', 'routes'] as const;

/** Names of one kind added, removed and changed (another value under the same name). */
export interface KindDiff {
  added: string[];
  removed: string[];
  changed: string[];
}

/** Per kind, the names added, removed and changed from `a` to `b`; a kind without a change is left out. */
export function configDiff(a: ConfigSnapshot, b: ConfigSnapshot): Partial<Record<(typeof KINDS)[number], KindDiff>> {
  const out: Partial<Record<(typeof KINDS)[number], KindDiff>> = {};
  for (const kind of KINDS) {
    const old = new Map<string, unknown>(a[kind].map((x) => [x.name, x]));
    const now = new Map<string, unknown>(b[kind].map((x) => [x.name, x]));
    const d = {
      added: [...now.keys()].filter((n) => !old.has(n)),
      removed: [...old.keys()].filter((n) => !now.has(n)),
      changed: [...now.keys()].filter((n) => old.has(n) && !isDeepStrictEqual(old.get(n), now.get(n))),
    };
    if (d.added.length + d.removed.length + d.changed.length > 0) out[kind] = d;
  }
  return out;
}

/** An endpoint of a cluster, by name. */
export interface EndpointRef {
  readonly cluster: string;
  readonly endpoint: string;
}

/**
 * The endpoints of `prev` that are gone in `next` while their cluster stays: no longer listed, or
 * listed with another spec (another address: a session stage on the old one talks to something
 * the config no longer names). Endpoints of a removed cluster are left out: removing the cluster
 * ends its sessions already (actors/worker.ts).
 *
 * Sessions know their endpoint by name, so with generated names (`<cluster>-EndPoint-<N>`, by
 * position) removing one inline endpoint shifts the names of those after it, and their sessions
 * are told to leave too (they reconnect under `retry_on: disconnect|always`, else end).
 */
export function goneEndpoints(prev: ConfigSnapshot, next: ConfigSnapshot): EndpointRef[] {
  const out: EndpointRef[] = [];
  const now = new Map(next.clusters.map((c) => [c.name, c]));
  for (const c of prev.clusters) {
    const n = now.get(c.name);
    if (n === undefined || n.endpoints === c.endpoints) continue;
    const eps = new Map(n.endpoints.map((e) => [e.name, e]));
    for (const e of c.endpoints) {
      const m = eps.get(e.name);
      if (m === undefined || !isDeepStrictEqual(m.spec, e.spec)) out.push({ cluster: c.name, endpoint: e.name });
    }
  }
  return out;
}
