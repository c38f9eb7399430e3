/**
 * l7mp's Kubernetes resources (docs/l7mp-compat.md §8: `VirtualService`, `Target`, `Rule`,
 * apiVersion `l7mp.io/v1`) compiled into one l7mp config per node, against the fleet inventory
 * (node ids, labels and addresses from heartbeats), the way l7mp's operator computed per-pod
 * REST calls (§8.3). Pure: no NATS, no I/O; `l7mp-ts apply` feeds it and writes the result.
 *
 * Per node N with labels L:
 * - every VirtualService whose `selector` matches L → a listener named `fqn(vsvc)` with the
 *   listener's spec, and its rules as the rulelist `fqn(vsvc)-RuleList` (`rulesRef` names one
 *   instead);
 * - every Target whose `selector` matches L → a cluster named `fqn(target)`: its `cluster`, or
 *   with `linkedVirtualService` the linked VirtualService's listener spec plus one endpoint
 *   selector equal to that VirtualService's selector;
 * - every endpoint `selector` → one endpoint per inventory node it matches, named
 *   `<cluster>/<nodeId>`, at the address that node reports (the cluster's `spec.port` gives the
 *   port, as in l7mp);
 * - every Rule whose `selector` matches L → its `rule`, named `fqn(rule)`, inserted into the
 *   rulelist `spec.rulelist` at `spec.position` (clamped to the list).
 *
 * k8s form → proxy form (§8.2): a protocol-keyed spec `{UDP: {port: 9001}}` becomes
 * `{protocol: UDP, port: 9001}` (also a nested spec a protocol declares: JSONSocket's
 * `transport`), `rulesRef` → `rules`,
 * `destinationRef` → `destination`, `{clusterRef}` chain items → names, `{cluster}` → inline
 * clusters, `routeRef` → `route`, rewrite `valueStr` (JSON text) → `value`, endpoint `filename`
 * → `address`; a cluster spec's endpoint field (UnixDomainSocket's `filename`) becomes its
 * endpoint if it has none. What differs per protocol comes from its `crd` hooks (protocols/types.ts).
 *
 * References (`destinationRef`, `clusterRef`, `linkedVirtualService`) may be written as l7mp's
 * fqn (`/l7mp.io/v1/Target/<ns>/<name>`), as the older selfLink
 * (`/apis/l7mp.io/v1/namespaces/<ns>/targets/<name>`, used by l7mp's task docs, which l7mp itself
 * no longer resolved), or as a bare name in the referring resource's namespace. A reference to a
 * missing resource is an error naming the field; so is any malformed field.
 *
 * fqn = `/l7mp.io/v1/<Kind>/<namespace>/<name>` (l7mp's object names; namespace default `default`).
 */
import { L7Error, ErrorCode } from '../common/errors.ts';
import { show } from '../cluster-config/validate.ts';
import { protocol } from '../protocols/registry.ts';
import { checkSelector, matches, type LabelSelector, type Labels } from './labels.ts';

export const API_VERSION = 'l7mp.io/v1';
export const KINDS = ['VirtualService', 'Target', 'Rule'] as const;
export type Kind = (typeof KINDS)[number];

/** One l7mp resource, checked for the fields the compiler reads. */
export interface Resource {
  readonly apiVersion: typeof API_VERSION;
  readonly kind: Kind;
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec: Readonly<Record<string, unknown>>;
}

/** A node of the fleet as the compiler sees it. */
export interface InventoryNode {
  readonly nodeId: string;
  readonly labels: Labels;
  /** The address other nodes reach it at. */
  readonly address: string;
}

/** A compiled config for one node, and the resources it came from (fqns). */
export interface Compiled {
  readonly config: Record<string, unknown>;
  readonly resources: string[];
}

type Obj = Record<string, unknown>;

const PLURAL: Record<Kind, string> = { VirtualService: 'virtualservices', Target: 'targets', Rule: 'rules' };

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function bad(path: string, what: string, v: unknown): never {
  throw new L7Error(ErrorCode.ConfigInvalid, `${path}: ${what}, got ${show(v)}`);
}

/** `Kind ns/name` as errors name a resource. */
export function label(r: Pick<Resource, 'kind' | 'metadata'>): string {
  return `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`;
}

/** l7mp's object name for a resource: `/l7mp.io/v1/<Kind>/<namespace>/<name>`. */
export function fqn(r: Pick<Resource, 'kind' | 'metadata'>): string {
  return `/${API_VERSION}/${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
}

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * Check parsed YAML documents and return them as resources (null documents, e.g. an empty
 * `---` section, are skipped).
 * @param source the file name, used in errors: `crds.yaml[2]: kind: must be one of ...`.
 * @throws L7Error `L7_ERR_CONFIG_INVALID` naming the document, the field and the value.
 */
export function parseResources(docs: readonly unknown[], source: string): Resource[] {
  const out: Resource[] = [];
  docs.forEach((d, i) => {
    const at = `${source}[${i}]`;
    if (d === null || d === undefined) return;
    if (!isObj(d)) bad(at, 'must be a Kubernetes object', d);
    if (d.apiVersion !== API_VERSION) bad(`${at}.apiVersion`, `must be ${API_VERSION}`, d.apiVersion);
    if (!KINDS.includes(d.kind as Kind)) bad(`${at}.kind`, `must be one of ${KINDS.join(', ')}`, d.kind);
    const md = d.metadata;
    if (!isObj(md)) bad(`${at}.metadata`, 'must be an object with a name', md);
    if (typeof md.name !== 'string' || !NAME.test(md.name)) bad(`${at}.metadata.name`, 'must be a DNS-1123 name', md.name);
    const ns = md.namespace ?? 'default';
    if (typeof ns !== 'string' || !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns)) bad(`${at}.metadata.namespace`, 'must be a DNS-1123 label', ns);
    if (!isObj(d.spec)) bad(`${at}.spec`, 'must be an object', d.spec);
    const r: Resource = { apiVersion: API_VERSION, kind: d.kind as Kind, metadata: { name: md.name, namespace: ns }, spec: d.spec };
    const p = `${label(r)}: spec`;
    const s = r.spec;
    if (s.selector === undefined && r.kind !== 'Target') bad(`${p}.selector`, 'is required', undefined);
    if (s.selector !== undefined) checkSelector(s.selector, `${p}.selector`);
    if (r.kind === 'VirtualService' && !isObj(s.listener)) bad(`${p}.listener`, 'is required (a Listener)', s.listener);
    if (r.kind === 'Target' && (s.cluster === undefined) === (s.linkedVirtualService === undefined)) {
      bad(p, 'needs exactly one of cluster and linkedVirtualService', Object.keys(s));
    }
    if (r.kind === 'Rule') {
      if (typeof s.rulelist !== 'string') bad(`${p}.rulelist`, 'must be the name of a RuleList', s.rulelist);
      if (s.position !== undefined && !Number.isInteger(s.position)) bad(`${p}.position`, 'must be an integer', s.position);
      if (!isObj(s.rule)) bad(`${p}.rule`, 'is required (a Rule)', s.rule);
    }
    if (out.some((o) => o.kind === r.kind && o.metadata.namespace === ns && o.metadata.name === md.name)) bad(`${at}.metadata.name`, `${r.kind} defined twice in ${source}`, md.name);
    out.push(r);
  });
  return out;
}

/** The selector of a resource (a Target without one selects no node). */
function selectorOf(r: Resource): LabelSelector | null {
  return isObj(r.spec.selector) ? (r.spec.selector as LabelSelector) : null;
}

/** Compiles resources against an inventory; one instance per compile. */
class Compiler {
  private readonly byKey = new Map<string, Resource>();
  private readonly nodes: readonly InventoryNode[];

  constructor(resources: readonly Resource[], nodes: readonly InventoryNode[]) {
    for (const r of resources) this.byKey.set(`${r.kind}/${r.metadata.namespace}/${r.metadata.name}`, r);
    this.nodes = nodes;
  }

  /** Resolve a reference to a resource of `kind` (see the module comment for the forms). */
  resolve(ref: unknown, kind: Kind, from: Resource, path: string): Resource {
    if (typeof ref !== 'string' || ref === '') bad(path, `must name a ${kind}`, ref);
    let ns = from.metadata.namespace;
    let name = ref;
    const selfLink = new RegExp(`^/apis/l7mp\\.io/v1/namespaces/([^/]+)/${PLURAL[kind]}/([^/]+)$`).exec(ref);
    const full = new RegExp(`^/l7mp\\.io/v1/${kind}/([^/]+)/([^/]+)$`).exec(ref);
    const m = selfLink ?? full;
    if (m) {
      ns = m[1] as string;
      name = m[2] as string;
    } else if (ref.includes('/')) bad(path, `must be /l7mp.io/v1/${kind}/<namespace>/<name>, /apis/l7mp.io/v1/namespaces/<namespace>/${PLURAL[kind]}/<name> or a name`, ref);
    const r = this.byKey.get(`${kind}/${ns}/${name}`);
    if (r === undefined) throw new L7Error(ErrorCode.ConfigUnknownRef, `${path}: ${kind} "${ns}/${name}" is not defined`);
    return r;
  }

  /** `{UDP: {port: 1}}` → `{protocol: 'UDP', port: 1}`. */
  protocolSpec(spec: unknown, path: string): Obj {
    if (!isObj(spec)) bad(path, 'must be an object with one protocol key, e.g. {UDP: {port: 9001}}', spec);
    const keys = Object.keys(spec);
    if (keys.length !== 1) bad(path, 'must have exactly one protocol key, e.g. {UDP: {port: 9001}}', spec);
    const proto = keys[0] as string;
    const inner = spec[proto] ?? {};
    if (!isObj(inner)) bad(`${path}.${proto}`, 'must be an object', inner);
    const out: Obj = { protocol: proto, ...inner };
    for (const f of protocol(proto)?.crd?.nestedSpecs ?? []) if (isObj(inner[f])) out[f] = this.protocolSpec(inner[f], `${path}.${proto}.${f}`);
    return out;
  }

  /** Endpoints of a cluster: static ones converted, selector ones expanded over the inventory. */
  endpoints(eps: unknown, clusterName: string | undefined, path: string): Obj[] {
    if (eps === undefined) return [];
    if (!Array.isArray(eps)) bad(path, 'must be an array', eps);
    const out: Obj[] = [];
    eps.forEach((e, i) => {
      const p = `${path}[${i}]`;
      if (!isObj(e)) bad(p, 'must be an object', e);
      if (e.selector !== undefined) {
        const sel = checkSelector(e.selector, `${p}.selector`);
        for (const n of this.nodes) {
          if (!matches(sel, n.labels)) continue;
          out.push({ ...(clusterName !== undefined ? { name: `${clusterName}/${n.nodeId}` } : {}), spec: { address: n.address } });
        }
        return;
      }
      if (!isObj(e.spec)) bad(`${p}.spec`, 'must be an object with an address (or filename)', e.spec);
      const { filename, ...rest } = e.spec;
      const address = rest.address ?? filename;
      if (typeof address !== 'string') bad(`${p}.spec.address`, 'must be a string (or give filename)', address);
      out.push({ ...(typeof e.name === 'string' ? { name: e.name } : {}), spec: { ...rest, address }, ...(e.weight !== undefined ? { weight: e.weight } : {}) });
    });
    return out;
  }

  /** A Cluster in k8s form → proxy form. */
  cluster(c: unknown, name: string | undefined, path: string): Obj {
    if (!isObj(c)) bad(path, 'must be a Cluster object', c);
    const spec = this.protocolSpec(c.spec, `${path}.spec`);
    const given = typeof c.name === 'string' ? c.name : undefined;
    const n = name ?? given;
    const endpoints = this.endpoints(c.endpoints, n, `${path}.endpoints`);
    const field = protocol(spec.protocol as string)?.crd?.endpointField;
    if (field !== undefined && spec[field] !== undefined) {
      if (endpoints.length === 0) endpoints.push({ spec: { address: spec[field] } });
      delete spec[field];
    }
    return {
      ...(n !== undefined ? { name: n } : {}),
      spec,
      endpoints,
      ...(c.loadbalancer !== undefined ? { loadbalancer: c.loadbalancer } : {}),
    };
  }

  /** A chain item (`{clusterRef}` or `{cluster}`), or a destination. */
  chainItem(x: unknown, from: Resource, path: string): string | Obj {
    if (!isObj(x)) bad(path, 'must be {clusterRef: ...} or {cluster: {...}}', x);
    if (x.clusterRef !== undefined) return fqn(this.resolve(x.clusterRef, 'Target', from, `${path}.clusterRef`));
    if (x.cluster !== undefined) return this.cluster(x.cluster, undefined, `${path}.cluster`);
    return bad(path, 'must be {clusterRef: ...} or {cluster: {...}}', x);
  }

  route(r: unknown, from: Resource, path: string): Obj {
    if (!isObj(r)) bad(path, 'must be a Route object', r);
    const out: Obj = {};
    if (typeof r.name === 'string') out.name = r.name;
    if (r.destinationRef !== undefined) out.destination = fqn(this.resolve(r.destinationRef, 'Target', from, `${path}.destinationRef`));
    else if (r.destination !== undefined) out.destination = this.cluster(r.destination, undefined, `${path}.destination`);
    else bad(`${path}.destinationRef`, 'is required (or destination)', undefined);
    for (const side of ['ingress', 'egress'] as const) {
      const v = r[side];
      if (v === undefined) continue;
      if (!Array.isArray(v)) bad(`${path}.${side}`, 'must be an array', v);
      out[side] = v.map((x, i) => this.chainItem(x, from, `${path}.${side}[${i}]`));
    }
    if (r.retry !== undefined) out.retry = r.retry;
    return out;
  }

  rule(r: unknown, from: Resource, path: string): Obj {
    if (!isObj(r)) bad(path, 'must be a Rule object', r);
    const a = r.action;
    if (!isObj(a)) bad(`${path}.action`, 'is required', a);
    const action: Obj = {};
    if (a.rewrite !== undefined) {
      if (!Array.isArray(a.rewrite)) bad(`${path}.action.rewrite`, 'must be an array', a.rewrite);
      action.rewrite = a.rewrite.map((w, i) => {
        const p = `${path}.action.rewrite[${i}]`;
        if (!isObj(w)) bad(p, 'must be {path, value | valueStr}', w);
        if (w.valueStr === undefined) return { path: w.path, value: w.value };
        try {
          return { path: w.path, value: JSON.parse(String(w.valueStr)) };
        } catch {
          return bad(`${p}.valueStr`, 'must be JSON text', w.valueStr);
        }
      });
    }
    if (a.routeRef !== undefined) action.route = a.routeRef;
    else if (a.route !== undefined) action.route = this.route(a.route, from, `${path}.action.route`);
    if (a.apply !== undefined) action.apply = a.apply;
    return { ...(typeof r.name === 'string' ? { name: r.name } : {}), ...(r.match !== undefined ? { match: r.match } : {}), action };
  }

  /** Cluster of a Target for a node. */
  target(t: Resource): Obj {
    const p = `${label(t)}: spec`;
    if (t.spec.linkedVirtualService !== undefined) {
      const vs = this.resolve(t.spec.linkedVirtualService, 'VirtualService', t, `${p}.linkedVirtualService`);
      const l = vs.spec.listener as Obj;
      return this.cluster({ spec: l.spec, endpoints: [{ selector: vs.spec.selector }] }, fqn(t), `${label(vs)}: spec.listener`);
    }
    return this.cluster(t.spec.cluster, fqn(t), `${p}.cluster`);
  }

  /** Listener and rulelist of a VirtualService. */
  virtualService(vs: Resource): { listener: Obj; rulelist?: Obj } {
    const p = `${label(vs)}: spec.listener`;
    const l = vs.spec.listener as Obj;
    const name = fqn(vs);
    const spec = this.protocolSpec(l.spec, `${p}.spec`);
    const options = l.options !== undefined ? { options: l.options } : {};
    if (l.rulesRef !== undefined) {
      if (typeof l.rulesRef !== 'string') bad(`${p}.rulesRef`, 'must be the name of a RuleList', l.rulesRef);
      return { listener: { name, spec, rules: l.rulesRef, ...options } };
    }
    const rules = l.rules ?? [];
    if (!Array.isArray(rules)) bad(`${p}.rules`, 'must be an array of rules', rules);
    const rl = `${name}-RuleList`;
    return { listener: { name, spec, rules: rl, ...options }, rulelist: { name: rl, rules: rules.map((r, i) => this.rule(r, vs, `${p}.rules[${i}]`)) } };
  }

  node(n: InventoryNode): Compiled {
    const clusters: Obj[] = [];
    const listeners: Obj[] = [];
    const rulelists: Obj[] = [];
    const used: string[] = [];
    const picks = (k: Kind): Resource[] =>
      [...this.byKey.values()].filter((r) => r.kind === k && (selectorOf(r) === null ? false : matches(selectorOf(r) as LabelSelector, n.labels))).sort((a, b) => (fqn(a) < fqn(b) ? -1 : 1));
    for (const t of picks('Target')) {
      clusters.push(this.target(t));
      used.push(fqn(t));
    }
    for (const vs of picks('VirtualService')) {
      const c = this.virtualService(vs);
      listeners.push(c.listener);
      if (c.rulelist) rulelists.push(c.rulelist);
      used.push(fqn(vs));
    }
    for (const r of picks('Rule')) {
      const p = `${label(r)}: spec`;
      const rl = rulelists.find((x) => x.name === r.spec.rulelist);
      if (rl === undefined) throw new L7Error(ErrorCode.ConfigUnknownRef, `${p}.rulelist: RuleList "${String(r.spec.rulelist)}" is not compiled for node ${n.nodeId} (it must be a VirtualService's <fqn>-RuleList selected for the same node)`);
      const list = rl.rules as unknown[];
      const pos = Math.max(0, Math.min(list.length, (r.spec.position as number | undefined) ?? 0));
      list.splice(pos, 0, { ...this.rule(r.spec.rule, r, `${p}.rule`), name: fqn(r) });
      used.push(fqn(r));
    }
    return { config: { clusters, listeners, rulelists }, resources: used };
  }
}

/**
 * Compile `resources` for every node of `nodes`.
 * @returns nodeId → its config (every node gets one; a node no resource selects gets an empty config).
 * @throws L7Error (`L7_ERR_CONFIG_INVALID`, `L7_ERR_CONFIG_UNKNOWN_REF`) naming the resource, the field and the value.
 */
export function compile(resources: readonly Resource[], nodes: readonly InventoryNode[]): Map<string, Compiled> {
  const c = new Compiler(resources, nodes);
  // Every resource is converted once, so an error shows even in a resource that selects no node.
  for (const r of resources) {
    if (r.kind === 'Target') c.target(r);
    else if (r.kind === 'VirtualService') c.virtualService(r);
    else c.rule(r.spec.rule, r, `${label(r)}: spec.rule`);
  }
  const out = new Map<string, Compiled>();
  for (const n of [...nodes].sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1))) out.set(n.nodeId, c.node(n));
  return out;
}
