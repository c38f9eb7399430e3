/**
 * The README's first command, as written: `./bin/l7mp-ts -c examples/l7mp-ts.yaml`, tried with
 * the socat commands the proxy prints. Uses the example's fixed ports 5000/5001 (no other test
 * does).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { BIN } from './proc.ts';
import { waitFor } from '../helpers.ts';

const root = path.resolve(import.meta.dirname, '..', '..');

test('the default example starts and answers the socat commands it prints', async () => {
  const proc = spawn(BIN, ['-c', 'examples/l7mp-ts.yaml'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  try {
    await waitFor(() => err.includes('l7mp-ts ready'), 10_000, 'the proxy to be ready');
    const hints = [...err.matchAll(/try `(socat [^`]+)`/g)].map((m) => m[1]);
    assert.deepEqual(hints, ['socat - UDP:127.0.0.1:5000', 'socat - TCP:127.0.0.1:5001']);
    for (const cmd of hints as string[]) {
      const r = spawnSync('socat', ['-t', '1', ...cmd.split(' ').slice(1)], { input: 'hello l7mp-ts\n', encoding: 'utf8', timeout: 5000 });
      assert.equal(r.error, undefined, `socat runs (is it installed?): ${r.error?.message}`);
      assert.equal(r.stdout, 'hello l7mp-ts\n', `${cmd} echoed`);
    }
    // The TCP route's Logger stage printed what passed through it.
    await waitFor(() => out.includes('tcp-echo: hello l7mp-ts'), 2000, 'the Logger line');
  } finally {
    const code = await new Promise<number | null>((resolve) => {
      proc.once('exit', (c) => resolve(c));
      proc.kill('SIGINT');
    });
    assert.equal(code, 0);
  }
});
