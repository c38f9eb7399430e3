/**
 * Parsing config text from untrusted sources (`-c` files, REST bodies, fleet KV values) within
 * bounds: a size cap, a nesting depth cap, a cap on YAML alias expansions (billion laughs), and no
 * cyclic YAML aliases (`a: &a [*a]` would make a cyclic object that every later walk of the
 * config recurses into forever). V8's `JSON.parse` copes with deep nesting, but re-serialising or
 * walking the result does not (`JSON.stringify` of 1e6 levels throws RangeError), and the `yaml` composer overflows the stack
 * on a few thousand levels: the depth is checked before parsing for JSON and after it for YAML.
 *
 * The limits are far above what an l7mp config needs (about 10 levels: listeners[0].rules[0].
 * action.route.destination.endpoints[0].spec.address), and fixed (not configurable).
 */
import YAML from 'yaml';
import { L7Error, ErrorCode } from '../common/errors.ts';

/** The bounds applied by {@link parseConfigText}. */
export const CONFIG_LIMITS = {
  /** Largest config text, bytes (UTF-8). The REST API has its own, smaller body limit (1 MiB). */
  maxBytes: 4 << 20,
  /** Deepest nesting of objects and arrays; the top-level object is level 1. */
  maxDepth: 64,
  /** Most YAML alias expansions in one document (the `yaml` package's `maxAliasCount`). */
  maxAliasCount: 100,
} as const;

/** Which syntax {@link parseConfigText} reads. */
export type ConfigFormat = 'json' | 'yaml';

/** `line L, column C` of a byte offset (1-based, as editors count). */
function position(text: string, offset: number): string {
  let line = 1;
  let col = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      col = 1;
    } else col++;
  }
  return `line ${line}, column ${col}`;
}

/**
 * The nesting depth of JSON text without parsing it: brackets outside strings.
 * @throws L7Error `L7_ERR_CONFIG_UNREADABLE` naming the line and column where the limit is passed.
 */
function checkJsonDepth(text: string, max: number): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > max) throw new L7Error(ErrorCode.ConfigUnreadable, `nested deeper than ${max} levels at ${position(text, i)}`);
    } else if (c === 125 /* } */ || c === 93 /* ] */) depth--;
  }
}

/** `a.b[0].c` of a path, shortened to its first segments when long. */
function formatPath(path: readonly (string | number)[]): string {
  const shown = path.slice(0, 8);
  let s = '';
  for (const p of shown) s += typeof p === 'number' ? `[${p}]` : /^[A-Za-z_][A-Za-z0-9_-]*$/.test(p) ? `${s === '' ? '' : '.'}${p}` : `[${JSON.stringify(p)}]`;
  return (s === '' ? '(top)' : s) + (path.length > shown.length ? '…' : '');
}

/**
 * Walk a parsed value (iteratively: no recursion on attacker-controlled depth).
 * @throws L7Error `L7_ERR_CONFIG_UNREADABLE` naming the path where nesting passes `max`, or where a
 *   value contains itself.
 */
function checkValue(value: unknown, max: number): void {
  // Frames: the object, its path, its depth; `exit` frames pop the ancestor set.
  const ancestors = new Set<object>();
  const stack: Array<{ v: unknown; path: (string | number)[]; depth: number; exit?: true }> = [{ v: value, path: [], depth: 1 }];
  while (stack.length > 0) {
    const f = stack.pop() as (typeof stack)[number];
    if (f.exit) {
      ancestors.delete(f.v as object);
      continue;
    }
    const v = f.v;
    if (v === null || typeof v !== 'object') continue;
    if (ancestors.has(v)) throw new L7Error(ErrorCode.ConfigUnreadable, `${formatPath(f.path)}: cyclic reference (the value contains itself)`);
    if (f.depth > max) throw new L7Error(ErrorCode.ConfigUnreadable, `${formatPath(f.path)}: nested deeper than ${max} levels`);
    ancestors.add(v);
    stack.push({ v, path: f.path, depth: f.depth, exit: true });
    if (Array.isArray(v)) for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], path: [...f.path, i], depth: f.depth + 1 });
    else for (const [k, x] of Object.entries(v)) stack.push({ v: x, path: [...f.path, k], depth: f.depth + 1 });
  }
}

/**
 * Parse config text within {@link CONFIG_LIMITS}.
 *
 * @param text the document (UTF-8 decoded).
 * @param format `json` or `yaml` (one YAML document).
 * @returns the parsed value (plain data: no cycles, depth at most `maxDepth`).
 * @throws L7Error `L7_ERR_CONFIG_UNREADABLE` (status 400; 413 when too large) whose message is the
 *   problem and where it is, without a prefix: `larger than 4194304 bytes (got 5000000)`,
 *   `nested deeper than 64 levels at line 1, column 65`, `listeners[0].spec.a…: nested deeper
 *   than 64 levels`, `alias *a at line 2, column 6 refers to a node that contains it (cyclic)`,
 *   `more than 100 alias expansions (alias bomb?)`, or the parser's own message.
 */
export function parseConfigText(text: string, format: ConfigFormat, limits: { maxBytes?: number; maxDepth?: number; maxAliasCount?: number } = {}): unknown {
  const maxBytes = limits.maxBytes ?? CONFIG_LIMITS.maxBytes;
  const maxDepth = limits.maxDepth ?? CONFIG_LIMITS.maxDepth;
  const maxAliasCount = limits.maxAliasCount ?? CONFIG_LIMITS.maxAliasCount;
  // Cheap check first (a UTF-16 length is at most the UTF-8 length).
  if (text.length > maxBytes || Buffer.byteLength(text) > maxBytes) {
    throw new L7Error(ErrorCode.ConfigUnreadable, `larger than ${maxBytes} bytes (got ${Buffer.byteLength(text)})`, { status: 413 });
  }
  if (format === 'json') {
    checkJsonDepth(text, maxDepth);
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new L7Error(ErrorCode.ConfigUnreadable, (e as Error).message, { cause: e });
    }
    return v;
  }
  let doc: YAML.Document.Parsed;
  try {
    doc = YAML.parseDocument(text, { prettyErrors: true });
  } catch (e) {
    throw new L7Error(ErrorCode.ConfigUnreadable, (e as Error).message, { cause: e });
  }
  return yamlValue(doc, text, maxDepth, maxAliasCount);
}

/**
 * Every document of a YAML stream (`---` separated; `l7mp-ts apply -f`), each within
 * {@link CONFIG_LIMITS} as {@link parseConfigText} checks one.
 * @throws L7Error `L7_ERR_CONFIG_UNREADABLE` as {@link parseConfigText}.
 */
export function parseYamlDocuments(text: string): unknown[] {
  if (text.length > CONFIG_LIMITS.maxBytes || Buffer.byteLength(text) > CONFIG_LIMITS.maxBytes) {
    throw new L7Error(ErrorCode.ConfigUnreadable, `larger than ${CONFIG_LIMITS.maxBytes} bytes (got ${Buffer.byteLength(text)})`, { status: 413 });
  }
  let docs: YAML.Document.Parsed[];
  try {
    docs = YAML.parseAllDocuments(text, { prettyErrors: true }) as YAML.Document.Parsed[];
  } catch (e) {
    throw new L7Error(ErrorCode.ConfigUnreadable, (e as Error).message, { cause: e });
  }
  if (!Array.isArray(docs)) docs = [docs];
  return docs.map((d) => yamlValue(d, text, CONFIG_LIMITS.maxDepth, CONFIG_LIMITS.maxAliasCount));
}

/** The value of a parsed YAML document, checked: parse errors, cyclic aliases, alias expansions, depth. */
function yamlValue(doc: YAML.Document.Parsed, text: string, maxDepth: number, maxAliasCount: number): unknown {
  const err = doc.errors[0];
  if (err !== undefined) {
    // The composer recurses per level: very deep input ends in a stack overflow, reported here.
    if (/call stack/i.test(err.message)) {
      throw new L7Error(ErrorCode.ConfigUnreadable, `nested deeper than ${maxDepth} levels${err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : ''}`, { cause: err });
    }
    throw new L7Error(ErrorCode.ConfigUnreadable, err.message, { cause: err });
  }
  let cyclic: L7Error | undefined;
  try {
    YAML.visit(doc, {
      Alias(_key, node, path) {
        const target = node.resolve(doc);
        if (target !== undefined && path.includes(target)) {
          cyclic = new L7Error(
            ErrorCode.ConfigUnreadable,
            `alias *${node.source}${node.range ? ` at ${position(text, node.range[0])}` : ''} refers to a node that contains it (cyclic)`,
          );
          return YAML.visit.BREAK;
        }
        return undefined;
      },
    });
  } catch (e) {
    throw new L7Error(ErrorCode.ConfigUnreadable, `nested deeper than ${maxDepth} levels`, { cause: e });
  }
  if (cyclic !== undefined) throw cyclic;
  let v: unknown;
  try {
    v = doc.toJS({ maxAliasCount });
  } catch (e) {
    const m = (e as Error).message;
    throw new L7Error(ErrorCode.ConfigUnreadable, /Excessive alias count/.test(m) ? `more than ${maxAliasCount} alias expansions (alias bomb?)` : m, { cause: e });
  }
  checkValue(v, maxDepth);
  return v;
}
