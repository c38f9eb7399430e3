/**
 * No import circles in the source tree (issue 16): every file outside test/ and bench/ sits in a
 * module graph without cycles, type-only imports included, so a module can be read (and loaded)
 * after the modules it imports. A circle is broken by moving what both sides need into a third,
 * lower module (e.g. actors/services.ts, actors/session-core.ts, protocols/transform/task.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.join(import.meta.dirname, '..', '..');
/** Top-level folders that are not part of the source tree. */
const SKIP = new Set(['node_modules', 'test', 'bench', 'dist']);

/** Every .ts file of the source tree (repository-relative paths). */
function sources(dir = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    if (e.name.startsWith('.') || (dir === '' && SKIP.has(e.name))) continue;
    const rel = dir === '' ? e.name : `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...sources(rel));
    else if (e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

/**
 * The relative imports of a file's text, resolved against `file`: static imports (type-only too,
 * over several lines too), re-exports, side-effect imports and dynamic imports of a literal path.
 */
function importsOf(file: string, text: string): string[] {
  const re = /^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;
  const specs = [...text.matchAll(re)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
  return specs.filter((s) => s.startsWith('.')).map((s) => path.posix.normalize(path.posix.join(path.posix.dirname(file), s)));
}

/** The strongly connected components of more than one file (or a file importing itself): Tarjan. */
function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop() as string;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

/** One circle through `scc[0]` inside the component, as `a -> b -> ... -> a` (for the message). */
function oneCircle(graph: ReadonlyMap<string, readonly string[]>, scc: readonly string[]): string {
  const inside = new Set(scc);
  const start = scc[0] as string;
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift() as string;
    for (const w of graph.get(v) ?? []) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u = v; u !== start; u = prev.get(u) as string) path.splice(1, 0, u);
        return [...path, start].join(' -> ');
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return scc.join(', ');
}

function graphOf(files: readonly string[]): Map<string, string[]> {
  return new Map(files.map((f) => [f, importsOf(f, fs.readFileSync(path.join(ROOT, f), 'utf8'))]));
}

test('the source tree has no import circles (type-only imports included)', () => {
  const graph = graphOf(sources());
  const found = circles(graph).map((scc) => `${scc.length} files: ${oneCircle(graph, scc)}`);
  assert.deepEqual(found, [], 'import circles (move what both sides need into a lower module)');
});

test('the cycle check sees imports of every kind and finds a circle (it is not vacuous)', () => {
  const files = sources();
  assert.ok(files.includes('actors/session.ts') && files.includes('runtime/main/runtime.ts') && !files.some((f) => f.startsWith('test/')), `${files.length} files`);
  const graph = graphOf(files);
  assert.ok(graph.get('actors/session.ts')?.includes('actors/hops.ts'), 'a static import');
  assert.ok(graph.get('actors/tree.ts')?.includes('actors/actor.ts'), 'a type-only import');
  const multi = importsOf('a/x.ts', "import {\n  a,\n  type B,\n} from './y.ts';\nexport * from '../z.ts';\nimport './side.ts';\nconst m = await import('./lazy.ts');\n// not from './comment.ts'\n");
  assert.deepEqual(multi, ['a/y.ts', 'z.ts', 'a/side.ts', 'a/lazy.ts']);
  const g = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts', 'd.ts']],
    ['d.ts', []],
    ['e.ts', ['e.ts']],
  ]);
  const found = circles(g);
  assert.deepEqual(found, [['a.ts', 'b.ts', 'c.ts'], ['e.ts']]);
  assert.equal(oneCircle(g, found[0] as string[]), 'a.ts -> b.ts -> c.ts -> a.ts');
});
