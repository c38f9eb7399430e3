// Types for json-predicate 0.9.5 (draft-snell-json-test-07).
declare module 'json-predicate' {
  /** True when `predicate` holds for `data`; an invalid predicate evaluates to false. */
  export function test(data: unknown, predicate: unknown): boolean;
  export function dataAtPath(data: unknown, path: string): unknown;
  export function validatePredicate(predicate: unknown): boolean;
}
