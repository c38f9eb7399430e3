/**
 * l7mp's routing model on a live proxy (docs/l7mp-compat.md §12.5–12.7, §12.13): JSONPredicate rules
 * on real session metadata, rewrite before routing, apply jumps, ingress and egress chains in the
 * right directions, a failed chain stage failing the session, and the session event log over the
 * REST API. The rule engine itself is unit-tested against json-predicate in test/unit/routing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startAdmin } from '../../runtime/main/admin/index.ts';
import { makeLogger } from '../../common/log.ts';
import { freePort, freeTcpPort, tmpDir, udpEcho, UdpClient, waitFor } from '../helpers.ts';
import { closing, proxy } from './proto-helpers.ts';

const WAIT = 10_000;

test('§12.5/12.6: predicates on live metadata (and/not/starts/matches/ignore_case/less), first match wins, rewrite before routing, apply jumps; a bad op never matches', async (t) => {
  const a = closing(t, await udpEcho('A:'), (e) => e.close());
  const b = closing(t, await udpEcho('B:'), (e) => e.close());
  const c = closing(t, await udpEcho('C:'), (e) => e.close());
  const port = await freePort();
  const c1 = closing(t, await UdpClient.open(), (x) => x.close());
  const c2 = closing(t, await UdpClient.open(), (x) => x.close());
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'in',
        spec: { protocol: 'UDP', port },
        rules: [
          // An unknown op is an invalid predicate: it evaluates to false, it does not fail the session.
          { match: { op: 'nonsense', path: '/IP/src_addr', value: 'x' }, action: { route: { destination: 'to-a' } } },
          // c1 only: and + not + starts + ignore_case; rewrites a label, then jumps to another rulelist.
          {
            match: { op: 'and', apply: [{ op: 'starts', path: '/IP/src_addr', value: '127.0.', ignore_case: true }, { op: 'not', apply: [{ op: 'test', path: '/UDP/src_port', value: c2.port }] }] },
            action: { rewrite: [{ path: '/labels/tier', value: 'gold' }], apply: 'by-tier' },
          },
          // c2: matches + less.
          { match: { op: 'and', apply: [{ op: 'matches', path: '/IP/src_addr', value: '^127\\.0\\.0\\.1$' }, { op: 'less', path: '/UDP/src_port', value: 65536 }] }, action: { route: { destination: 'to-b' } } },
        ],
      },
    ],
    rulelists: [
      {
        name: 'by-tier',
        rules: [
          // l7mp drops the jumping rule's rewrite (B20, kept): /labels/tier is not set here.
          { match: { op: 'defined', path: '/labels/tier' }, action: { route: { destination: 'to-a' } } },
          { match: { op: 'undefined', path: '/labels/tier' }, action: { rewrite: [{ path: '/labels/seen', value: 'by-tier' }], route: { destination: 'to-c' } } },
        ],
      },
    ],
    clusters: [
      { name: 'to-a', spec: { protocol: 'UDP', port: a.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] },
      { name: 'to-b', spec: { protocol: 'UDP', port: b.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] },
      { name: 'to-c', spec: { protocol: 'UDP', port: c.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] },
    ],
  });
  assert.equal((await c1.request('one', port)).toString(), 'C:one', 'c1: rule 2 jumps to by-tier, where the rewrite-less rule wins');
  assert.equal((await c2.request('two', port)).toString(), 'B:two', 'c2: rule 3');
  const admin = closing(t, await startAdmin(rt, { host: '127.0.0.1', port: 0, log: makeLogger('silent') }), (x) => x.close());
  const sessions = (await (await fetch(`http://127.0.0.1:${admin.port}/api/v1/sessions`)).json()) as Array<{ name: string; metadata: { labels?: Record<string, string> } }>;
  const s1 = sessions.find((s) => s.name.includes(`:${c1.port}-`));
  assert.deepEqual(s1?.metadata.labels, { seen: 'by-tier' }, 'the rewrite of the matching rule is in the session metadata');
});

test('§12.7: ingress chain on the way up, egress chain on the way back, each stage its own connection; a chain stage that cannot connect fails the session', async (t) => {
  const up = closing(t, await udpEcho('E:'), (e) => e.close());
  const dir = tmpDir();
  closing(t, dir, (d) => fs.rmSync(d, { recursive: true, force: true }));
  const inLog = path.join(dir, 'in.log');
  const outLog = path.join(dir, 'out.log');
  const port = await freePort();
  const bad = await freePort();
  const dead = await freeTcpPort();
  await proxy(t, {
    listeners: [
      {
        name: 'chain',
        spec: { protocol: 'UDP', port },
        rules: [
          {
            action: {
              route: {
                ingress: [{ spec: { protocol: 'Logger', log_file: inLog, log_prefix: 'in' } }],
                destination: { spec: { protocol: 'UDP', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] },
                egress: [{ spec: { protocol: 'Logger', log_file: outLog, log_prefix: 'out' } }],
              },
            },
          },
        ],
      },
      {
        name: 'broken',
        spec: { protocol: 'UDP', port: bad },
        rules: [{ action: { route: { ingress: [{ spec: { protocol: 'TCP', port: dead }, endpoints: [{ spec: { address: '127.0.0.1' } }] }], destination: { spec: { protocol: 'Echo' } } } } }],
      },
    ],
  });
  const cl = closing(t, await UdpClient.open(), (x) => x.close());
  assert.equal((await cl.request('x1', port)).toString(), 'E:x1');
  await waitFor(() => fs.existsSync(inLog) && fs.readFileSync(inLog, 'utf8') === 'in: x1' && fs.existsSync(outLog) && fs.readFileSync(outLog, 'utf8') === 'out: E:x1', WAIT, 'in.log = "in: x1" and out.log = "out: E:x1"');
  cl.send('to-broken', bad);
  await assert.rejects(cl.recv(1000), /no UDP reply/, 'the Echo never answers: the ingress stage failed the session');
});

test('§12.13: the session dump keeps l7mp\'s status and event log (INIT, LOOKUP SUCCESS, CONNECT); DELETE /sessions/{name} ends it', async (t) => {
  const port = await freePort();
  const rt = await proxy(t, { listeners: [{ name: 'l', spec: { protocol: 'UDP', port }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }] }, 2);
  const admin = closing(t, await startAdmin(rt, { host: '127.0.0.1', port: 0, log: makeLogger('silent') }), (x) => x.close());
  const cl = closing(t, await UdpClient.open(), (x) => x.close());
  assert.equal((await cl.request('hello', port)).toString(), 'hello');
  const base = `http://127.0.0.1:${admin.port}/api/v1/sessions`;
  const [s] = (await (await fetch(base)).json()) as Array<{ name: string; status: string; events: Array<{ event: string; timestamp: string; message: string }> }>;
  assert.ok(s !== undefined);
  assert.equal(s.status, 'CONNECTED');
  const events = s.events.map((e) => e.event);
  assert.deepEqual(events.slice(0, 2), ['INIT', 'LOOKUP SUCCESS']);
  assert.ok(events.includes('CONNECT'), events.join(','));
  for (const e of s.events) assert.ok(!Number.isNaN(Date.parse(e.timestamp)), `ISO timestamp: ${e.timestamp}`);
  const del = await fetch(`${base}/${encodeURIComponent(s.name)}`, { method: 'DELETE' });
  assert.deepEqual(await del.json(), { status: 200, message: 'OK' });
  await waitFor(async () => ((await (await fetch(base)).json()) as unknown[]).length === 0, WAIT, 'the session to be gone');
});
