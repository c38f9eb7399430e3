/**
 * The document form of a config, as the REST API ({@link ConfigStore}, cluster-config/store.ts)
 * edits it: a snapshot turned back into an l7mp document ({@link toDocument}), what the dumps write
 * read back as the same config ({@link prep}), the name counters of a snapshot built elsewhere
 * ({@link seededNamer}), and validation errors put in terms of the object a client posted
 * ({@link relabel}).
 */
import { L7Error, ErrorCode, asL7Error } from '../common/errors.ts';
import { Namer } from './normalize.ts';
import type { ConfigSnapshot } from './snapshot.ts';

/** A plain object of a document. */
export type Obj = Record<string, unknown>;

/** An l7mp document, mutable, every object by name (what {@link toDocument} returns). */
export interface ConfigDoc {
  admin: Obj;
  clusters: Obj[];
  listeners: Obj[];
  rulelists: Obj[];
  rules: Obj[];
  routes: Obj[];
}

/**
 * The snapshot as a plain document in which every object is top-level and named, references are
 * names, and defaults are filled in. Normalizing it gives back an equal snapshot.
 * A wildcard match (null in the snapshot) is left out.
 */
export function toDocument(s: ConfigSnapshot): ConfigDoc {
  return structuredClone({
    admin: { ...s.admin },
    clusters: s.clusters.map((c) => ({
      name: c.name,
      spec: c.spec,
      endpoints: c.endpoints,
      loadbalancer: c.loadbalancer,
      ...(c.outlier_detection !== undefined ? { outlier_detection: c.outlier_detection } : {}),
      ...(c.health_check !== undefined ? { health_check: c.health_check } : {}),
    })),
    listeners: s.listeners.map((l) => ({ name: l.name, spec: l.spec, rules: l.rules, options: l.options })),
    rulelists: s.rulelists.map((rl) => ({ name: rl.name, rules: rl.rules })),
    rules: s.rules.map((r) => ({ name: r.name, ...(r.match !== null ? { match: r.match } : {}), action: r.action })),
    routes: s.routes.map((r) => ({ name: r.name, destination: r.destination, ingress: r.ingress, egress: r.egress, retry: r.retry })),
  }) as ConfigDoc;
}

/**
 * A fresh {@link Namer} whose counters continue after the highest `<Kind>-<N>` found in `names`
 * (the generated names of a snapshot built with another namer).
 */
export function seededNamer(names: readonly string[]): Namer {
  const namer = new Namer();
  const next = new Map<string, number>();
  for (const n of names) {
    const m = /-(RuleList|Rule|Route|Cluster|EndPoint)-(\d+)(?:_\d+)?$/.exec(n);
    if (m === null) continue;
    const kind = m[1] as string;
    next.set(kind, Math.max(next.get(kind) ?? 0, Number(m[2]) + 1));
  }
  type Kind = Parameters<Namer['next']>[0];
  for (const [kind, n] of next) for (let i = 0; i < n; i++) namer.next(kind as Kind, '', () => false);
  return namer;
}

export function isObject(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Read back what the dumps write (docs/l7mp-compat.md §1.3, §1.6), so a dump posted back means the
 * same: a rule `match` of `{"match": "*"}` is a wildcard, and the `<VIRTUAL>` endpoint a virtual
 * cluster dumps is not a real endpoint. Mutates `v` (a fresh copy of a request body).
 */
export const prep = {
  rule(r: unknown): void {
    if (!isObject(r)) return;
    const m = r.match;
    if (isObject(m) && Object.keys(m).length === 1 && m.match === '*') delete r.match;
    const a = r.action;
    if (isObject(a)) prep.route(a.route);
  },
  route(r: unknown): void {
    if (!isObject(r)) return;
    prep.cluster(r.destination);
    prep.cluster(r.cluster);
    for (const k of ['ingress', 'egress']) if (Array.isArray(r[k])) (r[k] as unknown[]).forEach(prep.cluster);
  },
  cluster(c: unknown): void {
    if (!isObject(c) || !Array.isArray(c.endpoints)) return;
    c.endpoints = c.endpoints.filter((e: unknown) => !(isObject(e) && isObject(e.spec) && e.spec.address === '<VIRTUAL>'));
  },
  rules(rs: unknown): void {
    if (Array.isArray(rs)) rs.forEach(prep.rule);
  },
  listener(l: unknown): void {
    if (isObject(l)) prep.rules(l.rules);
  },
  rulelist(rl: unknown): void {
    if (isObject(rl)) prep.rules(rl.rules);
  },
  endpoint(_e: unknown): void {},
  doc(d: Obj): void {
    for (const [k, f] of [
      ['listeners', prep.listener],
      ['clusters', prep.cluster],
      ['rulelists', prep.rulelist],
      ['rules', prep.rule],
      ['routes', prep.route],
    ] as const) {
      if (Array.isArray(d[k])) (d[k] as unknown[]).forEach(f);
    }
  },
};

/**
 * Put the object path of an error in terms of what the client posted: `listeners[3].spec.port`
 * becomes `listener.spec.port`; a missing top-level property becomes l7mp's `Property rules is
 * required`; a duplicate name loses its path (`Cluster "x" already defined`, as l7mp said it).
 */
export function relabel(err: unknown, prefix: string, from: readonly string[], to: string): L7Error {
  const e = asL7Error(err, ErrorCode.ConfigInvalid);
  let msg = e.message;
  for (const f of from) {
    if (f !== '' && msg.startsWith(f) && /^(?:$|[.[:])/.test(msg.slice(f.length))) {
      msg = to + msg.slice(f.length);
      break;
    }
  }
  const req = to === '' ? null : /^(\w+)\.(\w+): is required$/.exec(msg);
  if (req !== null && req[1] === to) msg = `Property ${req[2]} is required`;
  const dup = /(\w+ ".*" already defined)$/.exec(msg);
  if (e.code === ErrorCode.ConfigDuplicate && dup !== null) msg = dup[1] as string;
  return new L7Error(e.code, `${prefix}${msg}`, { cause: e, status: 400 });
}
