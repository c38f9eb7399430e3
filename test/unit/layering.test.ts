/**
 * A static check of the layering (ARCHITECTURE.md, Layout; issue 16 item 1): imports point one
 * way, so a new protocol is a folder and a registry line, and the runtime knows protocols only
 * through the registry and the contract.
 *
 * - protocols/<p>/ imports its own folder, protocols/core/, the contract (protocols/types.ts and
 *   its parts in protocols/contract/, protocols/schema.ts), common/ and packages; nothing
 *   of another protocol.
 * - protocols/core/ imports the contract, common/ and packages: never a protocol.
 * - runtime/ and fleet/ import protocols/registry.ts, the contract and protocols/core/, never a
 *   file of a specific protocol.
 *
 * What breaks a rule today is listed below, each with the change that removes it: shrink the
 * lists, never grow them. A listed import that no longer exists fails too, so a list never keeps
 * a stale entry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.join(import.meta.dirname, '..', '..');

/** Cross-protocol imports still allowed (`from -> to`, paths from the repository root). */
const PROTOCOL_ALLOWED: Readonly<Record<string, string>> = {
  // Not a protocol, but another layer: metadata path helpers, a leaf that could move to common.
  'protocols/jsonsocket/codec.ts -> routing/paths.ts': 'routing/paths.ts to common',
};

/** Imports of a specific protocol's files from runtime/ and fleet/ still allowed. */
const RUNTIME_ALLOWED: Readonly<Record<string, string>> = {};

/** Every .ts file under `dir` (repository-relative paths). */
function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...sources(rel));
    else if (e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

/** The repository-relative files `file` imports (static, re-exports and dynamic; packages left out). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const specs = [...text.matchAll(/\bfrom\s+'([^']+)'|\bimport\s+'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/g)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
  return specs.filter((s) => s.startsWith('.')).map((s) => path.posix.normalize(path.posix.join(path.posix.dirname(file), s)));
}

/** `protocols/<p>/...` → `p`; anything else → null. protocols/core and protocols/contract are not protocols. */
function protocolOf(file: string): string | null {
  const m = /^protocols\/([^/]+)\//.exec(file);
  return m === null || m[1] === 'core' || m[1] === 'contract' ? null : (m[1] as string);
}

/** The contract and shared layers every protocol (and core) may import. */
function shared(target: string): boolean {
  return target === 'protocols/types.ts' || target === 'protocols/schema.ts' || target.startsWith('protocols/contract/') || target.startsWith('protocols/core/') || target.startsWith('common/');
}

test('protocols: a protocol imports its own folder, protocols/core, the contract and common only', () => {
  const offenders: string[] = [];
  const seen = new Set<string>();
  for (const file of sources('protocols')) {
    const own = protocolOf(file);
    const inCore = file.startsWith('protocols/core/');
    if (own === null && !inCore) continue; // registry.ts, types.ts, schema.ts
    for (const target of importsOf(file)) {
      if (shared(target)) continue;
      if (own !== null && protocolOf(target) === own) continue;
      const edge = `${file} -> ${target}`;
      if (!inCore && PROTOCOL_ALLOWED[edge] !== undefined) seen.add(edge);
      else offenders.push(edge);
    }
  }
  assert.deepEqual(offenders, [], 'imports against the layering (move what is shared to protocols/core)');
  const stale = Object.keys(PROTOCOL_ALLOWED).filter((e) => !seen.has(e));
  assert.deepEqual(stale, [], 'allow-listed imports that no longer exist: take them off PROTOCOL_ALLOWED');
});

test('runtime/ and fleet/ import no file of a specific protocol (only the registry, the contract and protocols/core)', () => {
  const offenders: string[] = [];
  const seen = new Set<string>();
  for (const file of [...sources('runtime'), ...sources('fleet')]) {
    for (const target of importsOf(file)) {
      if (protocolOf(target) === null) continue;
      const edge = `${file} -> ${target}`;
      if (RUNTIME_ALLOWED[edge] !== undefined) seen.add(edge);
      else offenders.push(edge);
    }
  }
  assert.deepEqual(offenders, [], 'runtime/fleet importing a protocol file (read it from the registry or protocols/core)');
  const stale = Object.keys(RUNTIME_ALLOWED).filter((e) => !seen.has(e));
  assert.deepEqual(stale, [], 'allow-listed imports that no longer exist: take them off RUNTIME_ALLOWED');
});

test('the import scan sees every kind of import (the check is not vacuous)', () => {
  const t = importsOf('protocols/registry.ts');
  assert.ok(t.includes('protocols/udp/index.ts') && t.includes('protocols/types.ts'), JSON.stringify(t));
  assert.ok(importsOf('protocols/types.ts').includes('protocols/contract/connection.ts'), 're-exports count');
});

/** The imports of `file` that bring code (an `import type` or `export type` brings none). */
function valueImportsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(import|export)\s+(type\s+)?([^;]*?)\s*from\s+'(\.[^']+)'/gms)) {
    if (m[2] !== undefined) continue;
    const names = /\{([^}]*)\}/.exec(m[3] ?? '');
    if (names !== null && !/^\s*\w+\s*,/.test(m[3] ?? '') && (names[1] ?? '').split(',').every((n) => n.trim() === '' || n.trim().startsWith('type '))) continue;
    out.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), m[4] as string)));
  }
  return out;
}

test('folders are layers: common/ at the bottom, main-thread and worker-thread runtime apart, the CLI on top', () => {
  const all = ['common', 'cli', 'runtime', 'actors', 'protocols', 'cluster-config', 'routing', 'fleet', 'native-offload'].flatMap((d) => sources(d));
  const offenders: string[] = [];
  for (const file of all) {
    for (const target of importsOf(file)) {
      const edge = `${file} -> ${target}`;
      // common/ is the bottom layer: it imports nothing of ours but itself.
      if (file.startsWith('common/') && !target.startsWith('common/')) offenders.push(edge);
      // The CLI is the top: nothing but the CLI imports it.
      if (target.startsWith('cli/') && !file.startsWith('cli/')) offenders.push(edge);
    }
    // Main-thread code and worker-thread code share types, never code.
    for (const target of valueImportsOf(file)) {
      const edge = `${file} -> ${target}`;
      if (file.startsWith('runtime/main/') && target.startsWith('runtime/worker/')) offenders.push(edge);
      if (file.startsWith('runtime/worker/') && target.startsWith('runtime/main/')) offenders.push(edge);
    }
  }
  assert.deepEqual(offenders, [], 'imports against the folder layering (ARCHITECTURE.md, Layout)');
  assert.ok(all.includes('runtime/main/runtime.ts') && all.includes('runtime/worker/worker-main.ts') && all.includes('cli/main.ts'), 'the check sees the folders');
  assert.ok(valueImportsOf('runtime/main/runtime.ts').some((t) => t.startsWith('common/')), 'value imports are seen');
});
