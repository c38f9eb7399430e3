/**
 * The config reference (docs/config-reference.md), generated from the schemas the validator uses:
 * the document schema (cluster-config/schema.ts) and every protocol's listener and cluster spec
 * schema (protocols/registry.ts). One row per field: its path, type, default and description, so
 * the reference cannot drift from what is validated (`npm run docs:config` rewrites the file; a
 * unit test fails when it is stale).
 */
import { writeFileSync } from 'node:fs';
import { OptionalKind, type TSchema } from '@sinclair/typebox';
import { Admin, Cluster, ConfigDocument, Listener, Route, Rule, RuleList } from './schema.ts';
import { protocols } from '../protocols/registry.ts';

/** One row of a reference table. */
interface Row {
  path: string;
  type: string;
  def: string;
  required: boolean;
  description: string;
}

type Schema = TSchema & {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  pattern?: string;
  anyOf?: Schema[];
  const?: unknown;
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  additionalProperties?: boolean | Schema;
};

/** The object kinds documented once in a section of their own: where they nest, a row links to them. */
const KINDS: ReadonlyArray<{ title: string; anchor: string; is: (s: Schema) => boolean }> = [
  { title: 'Listener', anchor: 'listeners', is: (s) => s === (Listener as Schema) },
  { title: 'Cluster', anchor: 'clusters', is: (s) => s.properties?.spec === (Cluster as Schema).properties?.spec && s.properties?.endpoints !== undefined },
  { title: 'RuleList', anchor: 'rulelists', is: (s) => s === (RuleList as Schema) },
  { title: 'Rule', anchor: 'rules', is: (s) => s.properties?.action === (Rule as Schema).properties?.action },
  { title: 'Route', anchor: 'routes', is: (s) => s === (Route as Schema) },
];

function kindOf(s: Schema): (typeof KINDS)[number] | undefined {
  return KINDS.find((k) => k.is(s));
}

/** A short type phrase: `integer 1..65535`, `"a" \| "b"`, `array of object`. */
function typeOf(s: Schema): string {
  if (s.const !== undefined) return JSON.stringify(s.const);
  const kind = kindOf(s);
  if (kind !== undefined) return `[${kind.title}](#${kind.anchor})`;
  if (s.anyOf !== undefined) return s.anyOf.map((b) => (b.type === 'string' && b.pattern !== undefined ? 'name' : typeOf(b))).join(' | ');
  if (s.type === 'array') return `array of ${s.items === undefined ? 'any' : typeOf(s.items)}`;
  if (s.type === 'integer' || s.type === 'number') {
    const lo = s.minimum ?? (s.exclusiveMinimum !== undefined ? `>${s.exclusiveMinimum}` : undefined);
    if (lo === undefined && s.maximum === undefined) return s.type;
    if (s.maximum === undefined) return `${s.type} ${typeof lo === 'number' ? `>= ${lo}` : lo}`;
    return `${s.type} ${lo ?? ''}..${s.maximum}`;
  }
  return s.type ?? 'any';
}

/** Table cell text: one line, pipes escaped. */
function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/(?<!\\)\|/g, '\\|');
}

/** The rows of `s` and every field under it; arrays of objects continue with `path[]`. */
function walk(s: Schema, path: string, required: boolean, out: Row[], self = true, top = false): void {
  if (self && path !== '') {
    out.push({
      path,
      type: typeOf(s),
      def: s.default === undefined ? '' : JSON.stringify(s.default),
      required,
      description: s.description ?? '',
    });
  }
  const obj = s.type === 'array' ? s.items : s;
  const base = s.type === 'array' ? `${path}[]` : path;
  if (obj === undefined) return;
  // Kinds nested in another kind (an inline cluster in a route) are documented in their own section.
  if (!top && kindOf(obj) !== undefined) return;
  // A union with one object branch (`options: name | {...}`) documents that branch's fields.
  const branches = obj.anyOf?.filter((b) => (b.type === 'object' || b.type === 'array') && kindOf(b) === undefined) ?? [];
  if (branches.length === 1 && obj.anyOf?.every((b) => kindOf(b) === undefined || b.type !== 'object')) return walk(branches[0] as Schema, path, required, out, false);
  if (obj.properties === undefined) return;
  for (const [k, v] of Object.entries(obj.properties)) {
    if (k === 'protocol' && base.endsWith('spec')) continue;
    walk(v, base === '' ? k : `${base}.${k}`, (obj.required ?? []).includes(k) && v[OptionalKind] === undefined, out);
  }
}

function table(rows: Row[]): string {
  const lines = ['| field | type | default | description |', '|---|---|---|---|'];
  for (const r of rows) lines.push(`| \`${r.path}\`${r.required ? ' (required)' : ''} | ${cell(r.type)} | \`${cell(r.def)}\` | ${cell(r.description)} |`.replace(' | `` | ', ' |  | '));
  return lines.join('\n');
}

/** The whole reference as Markdown. Deterministic: the same schemas give the same text. */
export function configReference(): string {
  const parts: string[] = [
    '# Config reference',
    '',
    '<!-- Generated from the schemas by `npm run docs:config` (cluster-config/reference.ts); do not edit. -->',
    '',
    'Every field the validator knows, with its type, default and description. A config is validated',
    'against these schemas as a whole before anything applies; an error names the field path and the',
    'value. Outside strict mode (`-s`, `admin.strict`) an unknown field is accepted (as l7mp does) and',
    'logged as a warning naming its path. Units are in the descriptions (s, ms, bytes, /s).',
    '',
    '## Document',
    '',
  ];
  const top: Row[] = [];
  for (const [k, v] of Object.entries((ConfigDocument as Schema).properties ?? {})) {
    const item = v.type === 'array' ? v.items : undefined;
    const kind = item === undefined ? undefined : kindOf(item);
    top.push({ path: k, type: kind === undefined ? typeOf(v) : `array of [${kind.title}](#${kind.anchor})`, def: '', required: false, description: v.description ?? (k === 'admin' ? 'See [admin](#admin).' : '') });
  }
  parts.push(table(top), '');
  const section = (title: string, anchor: string, s: Schema): void => {
    const rows: Row[] = [];
    walk(s, anchor === 'admin' ? 'admin' : `${anchor}[]`, false, rows, false, true);
    parts.push(`## ${anchor}`, '', `${title}: ${s.description ?? ''}`, '', table(rows), '');
  };
  section('admin', 'admin', Admin as Schema);
  for (const k of KINDS) {
    const s = k.anchor === 'clusters' ? (Cluster as Schema) : k.anchor === 'rules' ? (Rule as Schema) : ((k.anchor === 'listeners' ? Listener : k.anchor === 'rulelists' ? RuleList : Route) as Schema);
    section(k.title, k.anchor, s);
  }
  parts.push('## Protocols', '', 'The rest of a `spec` after `protocol`, per protocol and side (listener `spec`, cluster `spec`).', '');
  for (const p of protocols.values()) {
    for (const [side, s] of [['listener', p.listener?.schema], ['cluster', p.cluster?.schema]] as const) {
      if (s === undefined) continue;
      const rows: Row[] = [];
      walk(s as Schema, '', false, rows);
      rows.splice(0, rows.length, ...rows.filter((r) => r.path !== 'protocol'));
      parts.push(`### ${p.name} ${side}`, '');
      parts.push(rows.length === 0 ? 'No fields besides `protocol`.' : table(rows.map((r) => ({ ...r, path: `spec.${r.path}` }))), '');
    }
  }
  return parts.join('\n');
}

/** Where the reference lives, relative to the repository root. */
export const CONFIG_REFERENCE_FILE = 'docs/config-reference.md';

// `node cluster-config/reference.ts` (npm run docs:config) rewrites the file.
if (import.meta.main) {
  writeFileSync(new URL(`../${CONFIG_REFERENCE_FILE}`, import.meta.url), configReference());
  console.log(`wrote ${CONFIG_REFERENCE_FILE}`);
}
