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
import { freePort, tmpDir, udpEcho, UdpClient, waitFor } from '../helpers.ts';
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
  const line = JSON.parse(proxy.stderr().split('\n').find((l) => l.includes('config reloaded')) as string) as Record<string, { added: string[]; changed: string[] } | undefined>;
  assert.deepEqual(line.listeners?.added, ['two']);
  // Nothing that was in the file before shows as changed: the inline rulelist of `one` keeps its
  // generated name, so listener `one` is not rebuilt.
  for (const kind of ['listeners', 'clusters', 'rulelists', 'rules', 'routes']) assert.deepEqual(line[kind]?.changed ?? [], [], kind);
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

test('--watch-config: a change of the -c file reloads it (an atomic rename too); a broken file is refused and the old config stays', async (t) => {
  const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
  const dir = tmpDir();
  const file = path.join(dir, 'watch.yaml');
  const doc = (...ls: Array<[string, number]>) => YAML.stringify({ listeners: ls.map(([n, p]) => echoListener(n, p)), clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }] });
  const proxy = await startProcess(YAML.parse(doc(['one', p1])), file, ['--watch-config']);
  t.after(() => proxy.stop());
  assert.match(proxy.stderr(), /watching the config file: a change reloads it/);
  const c = await UdpClient.open();
  t.after(() => c.close());
  assert.equal((await c.request('a', p1)).toString(), 'a');
  const reloads = (): string[] => proxy.stderr().split('\n').filter((l) => l.includes('config reloaded'));

  // Written in place.
  fs.writeFileSync(file, doc(['one', p1], ['two', p2]));
  await waitFor(() => reloads().length === 1, 10_000, 'the reload');
  const line = JSON.parse(reloads()[0] as string) as { trigger?: string; listeners?: { added: string[]; changed: string[] } };
  assert.equal(line.trigger, 'file watch');
  assert.deepEqual(line.listeners?.added, ['two']);
  assert.deepEqual(line.listeners?.changed, []);
  assert.equal((await c.request('b', p2)).toString(), 'b');

  // Saved as editors and ConfigMap volumes do: a new file renamed over the old one.
  fs.writeFileSync(path.join(dir, 'watch.yaml.tmp'), doc(['one', p1], ['three', p3]));
  fs.renameSync(path.join(dir, 'watch.yaml.tmp'), file);
  await waitFor(() => reloads().length === 2, 10_000, 'the reload after a rename');
  const l2 = (JSON.parse(reloads()[1] as string) as { listeners?: { added: string[]; removed: string[] } }).listeners;
  assert.deepEqual([l2?.added, l2?.removed], [['three'], ['two']]);
  assert.equal((await c.request('c', p3)).toString(), 'c');

  fs.writeFileSync(file, 'listeners: [ { name: four, spec: { protocol: UDP, port: "abc" } }');
  await waitFor(() => proxy.stderr().includes('config reload refused'), 10_000, 'the refusal');
  assert.equal((await c.request('d', p1)).toString(), 'd');
  assert.equal((await c.request('e', p3)).toString(), 'e');
  assert.equal(reloads().length, 2);
  assert.equal(proxy.proc.exitCode, null);
});

test('SIGHUP with an endpoint left out of the file: the sessions on it move to the remaining endpoint (the drop comes from the applied diff)', async (t) => {
  const a = await udpEcho('A:', '127.0.0.1');
  t.after(() => a.close());
  const b = await udpEcho('B:', '127.0.0.2', a.port);
  t.after(() => b.close());
  const port = await freePort();
  const file = path.join(tmpDir(), 'endpoints.yaml');
  const doc = (...eps: Array<[string, string]>) => ({
    listeners: [{ name: 'in', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'up', retry: { retry_on: 'disconnect', num_retries: 2, timeout: 1000 } } } }] }],
    clusters: [{ name: 'up', spec: { protocol: 'UDP', port: a.port }, endpoints: eps.map(([name, address]) => ({ name, spec: { address } })) }],
  });
  const proxy = await startProcess(doc(['ep-a', '127.0.0.1'], ['ep-b', '127.0.0.2']), file, ['--workers', '2']);
  t.after(() => proxy.stop());
  const c = await UdpClient.open();
  t.after(() => c.close());
  assert.equal((await c.request('1', port)).toString(), 'A:1');
  fs.writeFileSync(file, YAML.stringify(doc(['ep-b', '127.0.0.2'])));
  proxy.proc.kill('SIGHUP');
  await waitFor(() => proxy.stderr().includes('config reloaded'), 10_000, 'the reload');
  const line = JSON.parse(proxy.stderr().split('\n').find((l) => l.includes('config reloaded')) as string) as { clusters?: { changed: string[] }; listeners?: unknown };
  assert.deepEqual(line.clusters?.changed, ['up']);
  assert.equal(line.listeners, undefined, 'the listener is not rebuilt: its session lives on');
  // The session that was on ep-a (127.0.0.1) now reaches ep-b; without the drop it would still answer A.
  assert.equal((await c.request('2', port)).toString(), 'B:2');
});
