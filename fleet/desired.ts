/**
 * Desired state of one node, from the KV entries that target it (pure: no NATS here).
 *
 * A node watches `node.<id>`, `compiled.<id>` and `selector.>` (three watches: NATS 2.9 has no
 * consumers with several filter subjects). Its config is the merge of, in this order: the local
 * base config (`-c`, may be empty), every `selector.*` entry whose selector matches its labels
 * (by key order), `compiled.<id>` (from CRDs), `node.<id>`. Merging concatenates `listeners`,
 * `clusters`, `rulelists`, `rules` and `routes`; a name defined twice is an error; `admin` comes
 * from the base only (admin settings are read at start).
 *
 * The node's revision is the highest KV revision among the entries it watches (puts and deletes):
 * KV revisions are stream sequence numbers, so it only grows, and a node that saw revision R has
 * seen every change to its keys up to R.
 */
import { L7Error, ErrorCode, asL7Error } from '../common/errors.ts';
import { normalize } from '../cluster-config/normalize.ts';
import type { ConfigSnapshot } from '../cluster-config/snapshot.ts';
import { checkSelector, matches, type Labels } from './labels.ts';
import type { FleetNames } from './names.ts';

/** The last value of one key, as the watch delivered it. */
export interface DesiredEntry {
  readonly revision: number;
  /** Parsed JSON of a put; null for a delete or purge. */
  readonly value: unknown;
  /** Set when the value was not JSON. */
  readonly parseError?: string;
}

/** A document that takes part in a node's config, named by where it came from. */
export interface ConfigPart {
  /** A KV key, or the `-c` file name. */
  readonly source: string;
  readonly config: unknown;
}

/** What {@link desiredFor} returns. */
export interface Desired {
  /** Highest revision among the watched entries (0 when there are none). */
  readonly revision: number;
  /** The parts targeting the node, in merge order (base excluded). */
  readonly parts: ConfigPart[];
  /** A KV value that cannot be used: the node NACKs it (message names the key and field). */
  readonly error?: L7Error;
}

const ARRAYS = ['listeners', 'clusters', 'rulelists', 'rules', 'routes'] as const;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The entries (by key) that target the node `nodeId` with `labels`, in merge order. */
export function desiredFor(entries: ReadonlyMap<string, DesiredEntry>, names: FleetNames, nodeId: string, labels: Labels): Desired {
  let revision = 0;
  const parts: ConfigPart[] = [];
  let error: L7Error | undefined;
  const use = (key: string, e: DesiredEntry): void => {
    if (e.value === null) return;
    if (e.parseError !== undefined || !isObject(e.value)) {
      error ??= new L7Error(ErrorCode.ConfigInvalid, `${key}: value must be a JSON object {config: ...}${e.parseError ? `: ${e.parseError}` : ''}`);
      return;
    }
    if (!isObject(e.value.config)) {
      error ??= new L7Error(ErrorCode.ConfigInvalid, `${key}.config: must be an l7mp config object`);
      return;
    }
    parts.push({ source: key, config: e.value.config });
  };
  const selectorKeys = [...entries.keys()].filter((k) => k.startsWith(names.selectorPrefix)).sort();
  for (const key of selectorKeys) {
    const e = entries.get(key) as DesiredEntry;
    revision = Math.max(revision, e.revision);
    if (e.value === null) continue;
    if (!isObject(e.value)) {
      use(key, e);
      continue;
    }
    try {
      if (!matches(checkSelector(e.value.selector, `${key}.selector`), labels)) continue;
    } catch (err) {
      error ??= asL7Error(err, ErrorCode.ConfigInvalid);
      continue;
    }
    use(key, e);
  }
  for (const key of [names.compiledKey(nodeId), names.nodeKey(nodeId)]) {
    const e = entries.get(key);
    if (e === undefined) continue;
    revision = Math.max(revision, e.revision);
    use(key, e);
  }
  return { revision, parts, ...(error ? { error } : {}) };
}

/** What {@link mergeConfig} returns. */
export interface Merged {
  /** The merged l7mp document (plain data; its JSON identifies the config). */
  readonly doc: Record<string, unknown>;
  readonly snapshot: ConfigSnapshot;
}

/**
 * Merge the base document and the parts, validate and normalize.
 * Each part is first validated alone, so an error names the part's own paths
 * (`node.n1: listeners[0].spec.port: must be an integer 0..65535, got "x"`); an error only the
 * merge shows (a name defined twice) is mapped back to the part that holds the object.
 * @param strict strict validation for the merged document (`-s`).
 * @throws L7Error (`L7_ERR_CONFIG_INVALID`, `_DUPLICATE`, `_UNKNOWN_REF`) naming source, field and value.
 */
export function mergeConfig(base: ConfigPart, parts: readonly ConfigPart[], strict: boolean, warn?: (m: string) => void): Merged {
  const all = [base, ...parts];
  for (const p of parts) {
    try {
      normalize(p.config, { strict: false });
    } catch (e) {
      const err = asL7Error(e, ErrorCode.ConfigInvalid);
      throw new L7Error(err.code, `${p.source}: ${err.message}`, { cause: e });
    }
  }
  const doc: Record<string, unknown> = {};
  const b = isObject(base.config) ? base.config : {};
  if (b.admin !== undefined) doc.admin = b.admin;
  // Where each merged array index came from: [source, index in the source].
  const origin: Record<string, Array<[string, number]>> = {};
  for (const a of ARRAYS) {
    const out: unknown[] = [];
    origin[a] = [];
    for (const p of all) {
      const arr = isObject(p.config) ? p.config[a] : undefined;
      if (!Array.isArray(arr)) continue;
      arr.forEach((x, i) => {
        out.push(x);
        (origin[a] as Array<[string, number]>).push([p.source, i]);
      });
    }
    doc[a] = out;
  }
  try {
    return { doc, snapshot: normalize(doc, { strict, ...(warn ? { warn } : {}) }) };
  } catch (e) {
    const err = asL7Error(e, ErrorCode.ConfigInvalid);
    const m = /^(listeners|clusters|rulelists|rules|routes)\[(\d+)\](.*)$/s.exec(err.message);
    const o = m ? origin[m[1] as string]?.[Number(m[2])] : undefined;
    const msg = m && o ? `${o[0]}: ${m[1]}[${o[1]}]${m[3]}` : err.message;
    throw new L7Error(err.code, msg, { cause: e });
  }
}
