/**
 * Schema validation with ajv, and errors people can act on: each names the field's path in the
 * document and the offending value, e.g.
 * `listeners[1].spec.port: must be an integer 1..65535, got "abc"`.
 *
 * Strict mode (`-s`, `admin.strict`) additionally rejects unknown fields; outside it an unknown field
 * is accepted (l7mp ignores them) but reported as a warning naming its path, so a misplaced option
 * (`spec.session_sockets` instead of `spec.options.session_sockets`) does not pass unnoticed.
 */
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { TSchema } from '@sinclair/typebox';
import { L7Error, ErrorCode } from '../common/errors.ts';

function makeAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: false });
  ajv.addKeyword({ keyword: 'expect', schemaType: 'string' });
  return ajv;
}

const ajv = makeAjv();
const cache = new WeakMap<TSchema, { lax?: ValidateFunction; strict?: ValidateFunction }>();

/** A copy of `schema` where every object without an explicit `additionalProperties` gets `false`. */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) out[k] = closed(v);
  if (out.type === 'object' && out.properties !== undefined && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

function compiled(schema: TSchema, strict: boolean): ValidateFunction {
  let c = cache.get(schema);
  if (c === undefined) {
    c = {};
    cache.set(schema, c);
  }
  if (strict) return (c.strict ??= ajv.compile(closed(schema) as object));
  return (c.lax ??= ajv.compile(schema));
}

/** `a/0/b` (ajv instancePath) appended to a dotted base: `base.a[0].b`. */
export function joinPath(base: string, pointer: string): string {
  let out = base;
  for (const seg of pointer.split('/').slice(1)) {
    const s = seg.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(s)) out += `[${s}]`;
    else out += out === '' ? s : `.${s}`;
  }
  return out;
}

/** The value as it appears in an error: JSON, cut at 60 characters. */
export function show(v: unknown): string {
  let s: string;
  try {
    s = v === undefined ? 'nothing' : JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function describe(e: ErrorObject, base: string): string {
  const path = joinPath(base, e.instancePath);
  const where = path === '' ? '(document)' : path;
  if (e.keyword === 'required') return `${joinPath(path, `/${(e.params as { missingProperty: string }).missingProperty}`)}: is required`;
  if (e.keyword === 'additionalProperties') return `${joinPath(path, `/${(e.params as { additionalProperty: string }).additionalProperty}`)}: unknown field (strict mode)`;
  const expect = (e.parentSchema as { expect?: string } | undefined)?.expect;
  if (expect !== undefined) return `${where}: must be ${expect}, got ${show(e.data)}`;
  return `${where}: ${e.message ?? 'is invalid'}, got ${show(e.data)}`;
}

/**
 * Pick the error to report: a union's own error (its `expect` phrase covers every branch) beats
 * the errors of its branches; otherwise the first error of the deepest path.
 */
function pick(errors: ErrorObject[]): ErrorObject {
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  if (unions.length > 0) {
    // The innermost union whose branches all failed at its own path.
    unions.sort((a, b) => b.instancePath.length - a.instancePath.length);
    const u = unions[0] as ErrorObject;
    // A branch error deeper than the union (inside an object branch) is more precise.
    const deeper = errors.filter((e) => e.instancePath.startsWith(`${u.instancePath}/`) && e.keyword !== 'anyOf' && e.keyword !== 'type');
    if (deeper.length > 0 && typeof u.data === 'object' && u.data !== null) return pick(deeper);
    return u;
  }
  const required = errors.find((e) => e.keyword === 'required');
  if (required !== undefined) return required;
  return errors.reduce((a, b) => (b.instancePath.length > a.instancePath.length ? b : a));
}

/**
 * Validate `value` against `schema`.
 * @param path the document path of `value`, used as the prefix of the error path.
 * @param warn outside strict mode, receives one message per unknown field of a valid `value`
 *   (`listeners[0].spec.foo: unknown field, ignored`).
 * @throws L7Error `L7_ERR_CONFIG_INVALID` naming the field and the value.
 */
export function check(schema: TSchema, value: unknown, path: string, strict: boolean, warn?: (msg: string) => void): void {
  const v = compiled(schema, strict);
  if (v(value)) {
    if (!strict && warn !== undefined) unknownFields(schema, value, path, warn);
    return;
  }
  const errors = v.errors ?? [];
  throw new L7Error(ErrorCode.ConfigInvalid, errors.length === 0 ? `${path}: is invalid` : describe(pick(errors), path));
}

/** Warn once per unknown field: the fields strict mode would reject in a value that is otherwise valid. */
function unknownFields(schema: TSchema, value: unknown, path: string, warn: (msg: string) => void): void {
  const v = compiled(schema, true);
  if (v(value)) return;
  const seen = new Set<string>();
  for (const e of v.errors ?? []) {
    if (e.keyword !== 'additionalProperties') continue;
    const field = joinPath(joinPath(path, e.instancePath), `/${(e.params as { additionalProperty: string }).additionalProperty}`);
    if (seen.has(field)) continue;
    seen.add(field);
    warn(`${field}: unknown field, ignored (strict mode, -s, rejects it)`);
  }
}
