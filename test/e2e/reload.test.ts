/**
 * SIGHUP re-reads the -c file and applies it through the REST API's queue, all or nothing (issue
 * 15 item 3): a changed file adds a listener and logs the diff; a broken file is refused with its
 * error and the running config keeps serving.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { freePort, tmpDir, UdpClient, waitFor } from '../helpers.ts';
import { startProcess } from './proc.ts';

const echoListener = (name: string, port: number) => ({ name, spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'echo' } } }] });

test('SIGHUP reloads the -c file: a new listener serves; a broken file is refused and the old config stays', async (t) => {
  const [p1, p2] = [await freePort(), await freePort()];
  const file = path.join(tmpDir(), 'reload.yaml');
  const proxy = await startProcess({ listeners: [echoListener('one', p1)], clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }] }, file);
  t.after(() => proxy.stop());
  const c = await UdpClient.open();
  t.after(() => c.close());
  assert.equal((await c.request('a', p1)).toString(), 'a');

  fs.writeFileSync(file, YAML.stringify({ listeners: [echoListener('one', p1), echoListener('two', p2)], clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }] }));
  proxy.proc.kill('SIGHUP');
  await waitFor(() => proxy.stderr().includes('config reloaded'), 10_000, 'the reload');
  const line = JSON.parse(proxy.stderr().split('\n').find((l) => l.includes('config reloaded')) as string) as { listeners?: { added: string[] } };
  assert.deepEqual(line.listeners?.added, ['two']);
  assert.equal((await c.request('b', p2)).toString(), 'b');

  fs.writeFileSync(file, 'listeners: [ { name: three, spec: { protocol: UDP, port: "abc" } }');
  proxy.proc.kill('SIGHUP');
  await waitFor(() => proxy.stderr().includes('config reload refused'), 10_000, 'the refusal');
  assert.match(proxy.stderr(), /config reload refused/);
  // Both listeners still serve; the process is up.
  assert.equal((await c.request('c', p1)).toString(), 'c');
  assert.equal((await c.request('d', p2)).toString(), 'd');
  assert.equal(proxy.proc.exitCode, null);
});
