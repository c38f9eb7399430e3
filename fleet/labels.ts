/**
 * Node labels and Kubernetes-style label selectors (`matchLabels`, `matchExpressions` with `In`,
 * `NotIn`, `Exists`, `DoesNotExist`; the semantics of k8s `metav1.LabelSelector`, which l7mp's
 * CRDs use, docs/l7mp-compat.md §8.2). An empty selector matches every node, as in Kubernetes.
 */
import { L7Error, ErrorCode } from '../common/errors.ts';
import { show } from '../cluster-config/validate.ts';

/** Labels of a node: name → value. */
export type Labels = Readonly<Record<string, string>>;

/** One `matchExpressions` item. */
export interface SelectorRequirement {
  readonly key: string;
  readonly operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  readonly values?: readonly string[];
}

/** A k8s label selector. */
export interface LabelSelector {
  readonly matchLabels?: Labels;
  readonly matchExpressions?: readonly SelectorRequirement[];
}

// k8s label syntax: an optional DNS prefix and '/', a name of <= 63 characters; values likewise.
const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/**
 * Parse `k=v[,k=v...]` (the `--labels` and `--selector` flags).
 * @param what the flag named in errors.
 * @throws L7Error `L7_ERR_INVALID_ARGUMENT` naming the flag and the bad item.
 */
export function parseLabels(what: string, text: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (text.trim() === '') return out;
  for (const item of text.split(',')) {
    const eq = item.indexOf('=');
    const k = eq < 0 ? item : item.slice(0, eq);
    const v = eq < 0 ? undefined : item.slice(eq + 1);
    if (v === undefined || !KEY.test(k) || !VALUE.test(v)) {
      throw new L7Error(ErrorCode.InvalidArgument, `${what}: each item must be key=value with a Kubernetes label key and value, got ${JSON.stringify(item)}`);
    }
    if (k in out) throw new L7Error(ErrorCode.InvalidArgument, `${what}: label ${JSON.stringify(k)} given twice`);
    out[k] = v;
  }
  return out;
}

/** Labels as `k=v,k2=v2`, sorted by key: the canonical form (selector keys in KV use it). */
export function formatLabels(l: Labels): string {
  return Object.keys(l)
    .sort()
    .map((k) => `${k}=${l[k]}`)
    .join(',');
}

/**
 * Check a selector's shape (CRD input is untrusted).
 * @param path the document path named in errors, e.g. `Target default/x: spec.selector`.
 * @throws L7Error `L7_ERR_CONFIG_INVALID` naming the field and the value.
 */
export function checkSelector(sel: unknown, path: string): LabelSelector {
  const bad = (p: string, what: string, v: unknown): never => {
    throw new L7Error(ErrorCode.ConfigInvalid, `${p}: ${what}, got ${show(v)}`);
  };
  if (sel === null || typeof sel !== 'object' || Array.isArray(sel)) bad(path, 'must be a label selector object', sel);
  const s = sel as Record<string, unknown>;
  for (const k of Object.keys(s)) {
    if (k !== 'matchLabels' && k !== 'matchExpressions') bad(`${path}.${k}`, 'is not supported (only matchLabels and matchExpressions select nodes)', s[k]);
  }
  if (s.matchLabels !== undefined) {
    const ml = s.matchLabels;
    if (ml === null || typeof ml !== 'object' || Array.isArray(ml)) bad(`${path}.matchLabels`, 'must be an object of label values', ml);
    for (const [k, v] of Object.entries(ml as object)) if (typeof v !== 'string') bad(`${path}.matchLabels.${k}`, 'must be a string', v);
  }
  if (s.matchExpressions !== undefined) {
    if (!Array.isArray(s.matchExpressions)) bad(`${path}.matchExpressions`, 'must be an array', s.matchExpressions);
    (s.matchExpressions as unknown[]).forEach((e, i) => {
      const p = `${path}.matchExpressions[${i}]`;
      if (e === null || typeof e !== 'object') bad(p, 'must be an object', e);
      const r = e as Record<string, unknown>;
      if (typeof r.key !== 'string') bad(`${p}.key`, 'must be a string', r.key);
      if (!['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(r.operator as string)) bad(`${p}.operator`, 'must be In, NotIn, Exists or DoesNotExist', r.operator);
      const needs = r.operator === 'In' || r.operator === 'NotIn';
      if (needs && (!Array.isArray(r.values) || r.values.some((x) => typeof x !== 'string'))) bad(`${p}.values`, `must be an array of strings for ${String(r.operator)}`, r.values);
    });
  }
  return s as LabelSelector;
}

/** True if `labels` satisfy every requirement of `sel` (k8s semantics; the empty selector matches all). */
export function matches(sel: LabelSelector, labels: Labels): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const v = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values ?? []).includes(v as string)) return false;
        break;
      case 'NotIn':
        if (has && (e.values ?? []).includes(v as string)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}
