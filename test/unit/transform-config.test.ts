/**
 * Transform and Sync specs at config time: a Transform module that is missing, does not load, or
 * lacks the named function export is a config error naming the field and the value, and nothing
 * of the document (or of an API change) applies; a good one is stored with its absolute path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { normalize, Namer } from '../../cluster-config/normalize.ts';
import { ConfigStore } from '../../cluster-config/store.ts';
import { ErrorCode } from '../../common/errors.ts';
import { tmpDir } from '../helpers.ts';

const MODULE = path.resolve(import.meta.dirname, '..', 'fixtures', 'transforms.ts');

function doc(spec: Record<string, unknown>): unknown {
  return {
    listeners: [{ name: 'l', spec: { protocol: 'UDP', port: 9000 }, rules: [{ action: { route: { destination: 't' } } }] }],
    clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }, { name: 't', spec: { protocol: 'Transform', ...spec } }],
  };
}

function rejects(spec: Record<string, unknown>, pattern: RegExp): void {
  assert.throws(
    () => normalize(doc(spec)),
    (e: unknown) => {
      const err = e as { code?: string; message?: string };
      assert.equal(err.code, ErrorCode.ConfigInvalid);
      assert.match(err.message as string, pattern);
      return true;
    },
  );
}

test('Transform: a good module and export is kept with its absolute path; export defaults to "default"', () => {
  const rel = path.relative(process.cwd(), MODULE);
  const s = normalize(doc({ module: rel, export: 'upper' }));
  assert.deepEqual(s.clusters[1]?.spec, { protocol: 'Transform', module: MODULE, export: 'upper' });
  const dir = tmpDir();
  const mjs = path.join(dir, 'd.mjs');
  fs.writeFileSync(mjs, 'export default (p) => p;\n');
  assert.equal((normalize(doc({ module: mjs })).clusters[1]?.spec as unknown as { export: string }).export, 'default');
  const cjs = path.join(dir, 'c.cjs');
  fs.writeFileSync(cjs, 'module.exports = (p) => p;\n');
  assert.equal((normalize(doc({ module: cjs })).clusters[1]?.spec as unknown as { module: string }).module, cjs);
});

test('Transform: bad module paths and exports are config errors naming the field and the value', () => {
  rejects({ module: '/nonexistent/t.ts', export: 'upper' }, /^clusters\[1\]\.spec\.module: cannot read "\/nonexistent\/t\.ts" .*ENOENT/);
  rejects({ module: path.dirname(MODULE), export: 'upper' }, /^clusters\[1\]\.spec\.module: must be a file, got ".*fixtures"/);
  rejects({ module: MODULE, export: 'nope' }, /^clusters\[1\]\.spec\.export: module ".*transforms\.ts" has no function named "nope" \(got undefined\)/);
  rejects({ module: MODULE, export: 'notAFunction' }, /^clusters\[1\]\.spec\.export: .* has no function named "notAFunction" \(got number\)/);
  rejects({ module: MODULE }, /^clusters\[1\]\.spec\.export: .* has no function named "default"/);
  const bad = path.join(tmpDir(), 'broken.mjs');
  fs.writeFileSync(bad, 'export const = 1;\n');
  rejects({ module: bad, export: 'x' }, /^clusters\[1\]\.spec\.module: cannot load ".*broken\.mjs": /);
  rejects({ export: 'upper' }, /clusters\[1\]\.spec\.module/);
});

test('Transform: an API change with a bad module is refused as a whole; the current config stays', () => {
  const namer = new Namer();
  const st = new ConfigStore(normalize(doc({ module: MODULE, export: 'upper' }), { namer }), { namer });
  assert.throws(() => st.add('cluster', { name: 't2', spec: { protocol: 'Transform', module: '/nonexistent.ts', export: 'f' } }), /spec\.module: cannot read "\/nonexistent\.ts"/);
  assert.deepEqual(
    st.current.clusters.map((c) => c.name),
    ['echo', 't'],
  );
});

test('Sync: query is required and must be a non-empty path', () => {
  const base = (spec: unknown) => ({ clusters: [{ name: 's', spec }] });
  assert.deepEqual(normalize(base({ protocol: 'Sync', query: '/labels/x' })).clusters[0]?.spec, { protocol: 'Sync', query: '/labels/x' });
  assert.throws(() => normalize(base({ protocol: 'Sync' })), /clusters\[0\]\.spec.*query/);
  assert.throws(() => normalize(base({ protocol: 'Sync', query: '' })), /clusters\[0\]\.spec\.query/);
  assert.throws(() => normalize({ clusters: [{ name: 's', spec: { protocol: 'Sync', query: '/x' }, endpoints: [{ spec: { address: '1.2.3.4' } }] }] }), /endpoints: Adding an endpoint to a cluster of type Sync is not supported/);
});
