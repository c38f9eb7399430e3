/** The trivial transform bench/transform.ts measures: returns its payload. */
export function identity(payload: Uint8Array): Uint8Array {
  return payload;
}
