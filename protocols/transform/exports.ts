/** Finding the user's function in a loaded module (shared by config validation and the pool threads). */

/** The export `name` of module namespace `ns` (also a CommonJS module's `module.exports[name]`). */
export function pickExport(ns: Record<string, unknown>, name: string): unknown {
  const v = ns[name];
  if (typeof v === 'function') return v;
  const d = ns.default as Record<string, unknown> | undefined;
  if (d !== null && (typeof d === 'object' || typeof d === 'function') && typeof d[name] === 'function') return d[name];
  return v;
}
