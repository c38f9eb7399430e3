/**
 * Metadata paths outside `match` (docs/l7mp-compat.md §4.2): used by `rewrite.path`, the load
 * balancer `key`, and later Sync and JSONSocket headers. A leading and a trailing `/` are optional;
 * `/` alone is the whole object. Reads see own properties only, and writes refuse prototype keys.
 */

function segments(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

/**
 * The value at `path`, or undefined when any segment is missing. Only own properties count:
 * `/constructor` or `/__proto__` of plain metadata is missing, not a prototype's member.
 */
export function getAtPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const s of segments(path)) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, s)) return undefined;
    cur = (cur as Record<string, unknown>)[s];
  }
  return cur;
}

/**
 * Set `value` (deep-copied when it is an object) at `path`, creating intermediate objects. `/`
 * replaces the whole object's contents. Segments `__proto__`, `constructor` and `prototype` are
 * refused (a rewrite must not reach an object's prototype).
 * @returns false if the path was refused or runs through a non-object.
 */
export function setAtPath(obj: Record<string, unknown>, path: string, value: unknown): boolean {
  const segs = segments(path);
  if (segs.some((s) => s === '__proto__' || s === 'constructor' || s === 'prototype')) return false;
  const v = value !== null && typeof value === 'object' ? structuredClone(value) : value;
  if (segs.length === 0) {
    if (v === null || typeof v !== 'object') return false;
    for (const k of Object.keys(obj)) delete obj[k];
    // Not Object.assign: an own `__proto__` key (JSON.parse makes one from a peer's
    // `{"__proto__":...}`) would replace obj's prototype. Copy it as a plain own property.
    for (const k of Object.keys(v)) Object.defineProperty(obj, k, { value: (v as Record<string, unknown>)[k], writable: true, enumerable: true, configurable: true });
    return true;
  }
  let cur: Record<string, unknown> = obj;
  for (let i = 0; i < segs.length - 1; i++) {
    const s = segs[i] as string;
    let next = cur[s];
    if (next === undefined || next === null) {
      next = {};
      cur[s] = next;
    }
    if (typeof next !== 'object') return false;
    cur = next as Record<string, unknown>;
  }
  cur[segs[segs.length - 1] as string] = v;
  return true;
}
