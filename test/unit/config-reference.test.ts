/**
 * docs/config-reference.md is generated from the schemas (cluster-config/reference.ts): this test
 * fails when a schema changed and the file was not regenerated (`npm run docs:config`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configReference, CONFIG_REFERENCE_FILE } from '../../cluster-config/reference.ts';

test('docs/config-reference.md matches the schemas (run npm run docs:config after changing one)', () => {
  const file = readFileSync(new URL(`../../${CONFIG_REFERENCE_FILE}`, import.meta.url), 'utf8');
  assert.ok(file === configReference(), `${CONFIG_REFERENCE_FILE} is stale: run npm run docs:config`);
});

test('the reference lists every documented field with its default: a few known rows', () => {
  const text = configReference();
  for (const row of [
    /\| `admin.fd_reserve` \| integer >= 16 \| `256` \|/,
    /\| `listeners\[\].options.session_rate` \| number >0 \| `10000` \|/,
    /\| `routes\[\].retry.timeout` \| integer >= 1 \| `2000` \| .*Unit: ms/,
    /### UDP listener\n\n\| field[^\n]*\n[^\n]*\n\| `spec.port` \(required\) \| integer 1..65535/,
  ]) {
    assert.match(text, row);
  }
});
