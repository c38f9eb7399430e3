/**
 * The l7mp REST API under /api/v1 (docs/l7mp-compat.md §2) over real HTTP against a real runtime:
 * objects added at runtime carry traffic, dumps keep l7mp's shapes, recursive deletes end
 * sessions, errors keep l7mp's `{status, message, content}` and the strings clients parse.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startAdmin } from '../../runtime/main/admin/index.ts';
import type { AdminServer } from '../../runtime/main/admin/server.ts';
import type { Runtime } from '../../runtime/main/runtime.ts';
import { makeLogger } from '../../common/log.ts';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, freeTcpPort, startProxy, tmpDir, udpEcho, UdpClient, waitFor } from '../helpers.ts';

const log = makeLogger('warn', { thread: 'test' });
const WAIT = 10_000;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** One API call. `body` objects are sent as JSON, strings as they are with `type`. */
async function call(admin: AdminServer, method: string, path: string, body?: unknown, type: string | null = 'application/json'): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (type !== null && body !== undefined) headers['content-type'] = type;
  const res = await fetch(`http://127.0.0.1:${admin.port}${path}`, {
    method,
    headers,
    // fetch sends no body on GET; the content type still goes.
    // A string would get a default text/plain type: without a type, send bytes.
    ...(body !== undefined && method !== 'GET' ? { body: type === null ? Buffer.from(String(body)) : typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(WAIT),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

const OK = { status: 200, message: 'OK' };

/** Assert a 200 `{"status":200,"message":"OK"}`. */
async function ok(p: Promise<Answer>): Promise<void> {
  const a = await p;
  assert.equal(a.status, 200, a.text);
  assert.deepEqual(a.json, OK);
}

/** Assert an l7mp error answer; `content` is matched exactly (string) or by RegExp. */
async function fails(p: Promise<Answer>, status: number, message: string, content: string | RegExp): Promise<Answer> {
  const a = await p;
  assert.equal(a.status, status, a.text);
  assert.equal(a.json.status, status);
  assert.equal(a.json.message, message);
  if (typeof content === 'string') assert.equal(a.json.content, content);
  else assert.match(String(a.json.content), content);
  return a;
}

/** A runtime from `doc` with the admin server; both stopped after `fn`. */
async function withApi(doc: unknown, workers: number, fn: (admin: AdminServer, rt: Runtime) => Promise<void>): Promise<void> {
  const rt = await startProxy(doc, workers);
  let admin: AdminServer | undefined;
  try {
    admin = await startAdmin(rt, { host: '127.0.0.1', port: 0, log });
    await fn(admin, rt);
  } finally {
    await admin?.close();
    await rt.shutdown();
  }
}

async function activeSessions(rt: Runtime): Promise<number> {
  return (await rt.stats()).reduce((n, s) => n + s.sessionsActive, 0);
}

const echoOnly = { clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }] };

test('a UDP cluster and listener added over the API carry traffic on 2 workers; dumps keep l7mp shapes; a recursive delete ends the sessions', async () => {
  const up = await udpEcho('up:');
  const port = await freePort();
  const clients: UdpClient[] = [];
  try {
    await withApi(echoOnly, 2, async (admin, rt) => {
      await ok(call(admin, 'POST', '/api/v1/clusters', { cluster: { name: 'up', spec: { protocol: 'UDP', port: up.port }, endpoints: [{ name: 'up-ep', spec: { address: '127.0.0.1' } }] } }));
      await ok(
        call(admin, 'POST', '/api/v1/listeners', {
          listener: { name: 'in', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'up', ingress: ['echo'] } } }] },
        }),
      );
      for (let i = 0; i < 6; i++) clients.push(await UdpClient.open());
      await Promise.all(clients.map(async (c, i) => assert.equal((await c.request(`x${i}`, port, '127.0.0.1', 2000, 5)).toString(), `up:x${i}`)));

      // Dumps (§1.2, §1.3, §1.6, §1.7).
      const l = (await call(admin, 'GET', '/api/v1/listeners/in')).json;
      assert.deepEqual(l, { name: 'in', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: l.rules, options: { track: 0 } });
      assert.match(l.rules, /^in-RuleList-\d+$/);
      const lr = (await call(admin, 'GET', '/api/v1/listeners/in?recursive=true')).json;
      assert.equal(lr.rules.length, 1);
      assert.deepEqual(lr.rules[0].match, { match: '*' });
      const route = lr.rules[0].action.route;
      assert.match(route.name, /^in-RuleList-\d+-Rule-\d+-Route-\d+$/);
      assert.deepEqual(route.destination, { name: 'up', spec: { protocol: 'UDP', port: up.port }, endpoints: [{ name: 'up-ep', spec: { address: '127.0.0.1' }, weight: 1 }], loadbalancer: { policy: 'Trivial' } });
      assert.deepEqual(route.ingress, [{ name: 'echo', spec: { protocol: 'Echo' }, endpoints: [{ name: 'echo', spec: { address: '<VIRTUAL>' } }], loadbalancer: { policy: 'None' } }]);
      assert.deepEqual(route.retry, { retry_on: 'never', num_retries: 1, timeout: 2000 });
      assert.deepEqual((await call(admin, 'GET', '/api/v1/clusters/up')).json, { name: 'up', spec: { protocol: 'UDP', port: up.port }, endpoints: 1, loadbalancer: { policy: 'Trivial' } });
      assert.deepEqual((await call(admin, 'GET', '/api/v1/clusters/up/endpoints')).json, [{ name: 'up-ep', spec: { address: '127.0.0.1' }, weight: 1 }]);
      // B3 fixed: GET /endpoints/{name} works.
      assert.deepEqual((await call(admin, 'GET', '/api/v1/endpoints/up-ep')).json, { name: 'up-ep', spec: { address: '127.0.0.1' }, weight: 1 });
      const routes = (await call(admin, 'GET', '/api/v1/routes')).json;
      assert.deepEqual(routes, [{ name: route.name, destination: 'up', ingress: ['echo'], egress: [], retry: route.retry }]);

      // Sessions: one per client, across both workers, with real stage entries (B2 fixed).
      const sessions = (await call(admin, 'GET', '/api/v1/sessions')).json;
      assert.equal(sessions.length, clients.length);
      for (const s of sessions) {
        assert.equal(s.status, 'CONNECTED');
        assert.deepEqual(s.source.listener, { protocol: 'UDP', port, address: '127.0.0.1' });
        assert.equal(s.source.origin, 'in');
        assert.equal(s.destination.origin, 'up');
        assert.deepEqual(s.destination.endpoint, { name: 'up-ep', spec: { address: '127.0.0.1' } });
        assert.equal(s.destination.status, 'CONNECTED');
        assert.deepEqual(s.ingress.map((x: { origin: string; endpoint: unknown }) => [x.origin, x.endpoint]), [['echo', { name: 'echo', spec: { address: '<VIRTUAL>' } }]]);
        assert.deepEqual(s.egress, []);
        assert.equal(s.route, route.name);
      }
      assert.ok(sessions.every((s: { worker: number }) => s.worker === 0 || s.worker === 1));
      const one = sessions[0];
      assert.equal((await call(admin, 'GET', `/api/v1/sessions/${encodeURIComponent(one.name)}`)).json.name, one.name);
      await ok(call(admin, 'DELETE', `/api/v1/sessions/${encodeURIComponent(one.name)}`));
      await waitFor(async () => (await activeSessions(rt)) === clients.length - 1, WAIT, 'the deleted session to end');
      await fails(call(admin, 'GET', `/api/v1/sessions/${encodeURIComponent(one.name)}`), 400, 'Bad Request', 'No such session');
      await fails(call(admin, 'DELETE', `/api/v1/sessions/${encodeURIComponent(one.name)}`), 400, 'Bad Request', 'No such session');

      // Recursive delete: the listener and its autogenerated rulelist, rule and route go; its sessions end.
      await ok(call(admin, 'DELETE', '/api/v1/listeners/in?recursive=true'));
      await waitFor(async () => (await activeSessions(rt)) === 0, WAIT, 'the listener\'s sessions to end');
      assert.deepEqual((await call(admin, 'GET', '/api/v1/sessions')).json, []);
      assert.deepEqual((await call(admin, 'GET', '/api/v1/listeners')).json, []);
      assert.deepEqual((await call(admin, 'GET', '/api/v1/rulelists')).json, []);
      assert.deepEqual((await call(admin, 'GET', '/api/v1/rules')).json, []);
      assert.deepEqual((await call(admin, 'GET', '/api/v1/routes')).json, []);
      // Named clusters are not autogenerated: they stay until deleted.
      await ok(call(admin, 'DELETE', '/api/v1/clusters/up?recursive=true'));
      assert.deepEqual((await call(admin, 'GET', '/api/v1/clusters')).json.map((c: { name: string }) => c.name), ['echo']);
      await fails(call(admin, 'GET', '/api/v1/endpoints/up-ep'), 400, 'Bad Request', 'Not Found: Unknown endpoint "up-ep"');
      assert.equal(rt.snapshot.listeners.length, 0);
    });
  } finally {
    clients.forEach((c) => c.close());
    await up.close();
  }
});

test('deleting a cluster ends the sessions through it', async () => {
  const up = await udpEcho('up:');
  const port = await freePort();
  const c = await UdpClient.open();
  try {
    const doc = {
      listeners: [{ name: 'in', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'up' } } }] }],
      clusters: [{ name: 'up', spec: { protocol: 'UDP', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] }],
    };
    await withApi(doc, 1, async (admin, rt) => {
      assert.equal((await c.request('a', port, '127.0.0.1', 2000, 5)).toString(), 'up:a');
      assert.equal((await call(admin, 'GET', '/api/v1/sessions')).json.length, 1);
      await ok(call(admin, 'DELETE', '/api/v1/clusters/up'));
      await waitFor(async () => (await activeSessions(rt)) === 0, WAIT, 'the session through "up" to end');
      await fails(call(admin, 'DELETE', '/api/v1/clusters/up'), 400, 'Bad Request', 'Cannot delete cluster: Unknown cluster "up"');
    });
  } finally {
    c.close();
    await up.close();
  }
});

test('errors keep l7mp\'s shape and strings: duplicates, unknown paths, 415, bad JSON, unknown objects', async () => {
  await withApi(echoOnly, 1, async (admin) => {
    const dup = await fails(call(admin, 'POST', '/api/v1/clusters', { cluster: { name: 'echo', spec: { protocol: 'Echo' } } }), 400, 'Bad Request', 'Cannot add cluster: Cluster "echo" already defined');
    assert.match(dup.json.content, /already defined$/);
    assert.equal(dup.headers.get('content-type'), 'application/json');
    assert.equal(dup.text, JSON.stringify(dup.json, null, 4));
    await fails(call(admin, 'GET', '/api/v1/nothing'), 404, 'Not Found', 'Unknown API operation');
    await fails(call(admin, 'PUT', '/api/v1/listeners', { listener: {} }), 404, 'Not Found', 'Unknown API operation');
    // B5 fixed: a real 415.
    await fails(call(admin, 'POST', '/api/v1/clusters', 'cluster: x', 'text/plain'), 415, 'Unsupported Media Type', 'Unknown content type: text/plain');
    await fails(call(admin, 'POST', '/api/v1/clusters', '{}', null), 415, 'Unsupported Media Type', 'Unknown content type: N/A');
    // B6 fixed: a readable parser message.
    await fails(call(admin, 'POST', '/api/v1/clusters', '{"cluster": ', 'application/json'), 400, 'Bad Request', /^Invalid JSON format in request: .+/);
    await fails(call(admin, 'POST', '/api/v1/clusters', 'a: [', 'text/yaml'), 400, 'Bad Request', /^Invalid YAML format in request: .+/);
    await fails(call(admin, 'POST', '/api/v1/listeners', { listener: { name: 'l', spec: { protocol: 'UDP', port: 1 } } }), 400, 'Bad Request', 'Cannot add listener: Property rules is required');
    await fails(call(admin, 'POST', '/api/v1/listeners', { listener: { name: 'l', spec: { protocol: 'UDP', port: 'x' }, rules: [] } }), 400, 'Bad Request', 'Cannot add listener: listener.spec.port: must be an integer 1..65535, got "x"');
    await fails(call(admin, 'POST', '/api/v1/listeners', { name: 'l' }), 400, 'Bad Request', 'Cannot add listener: the request body must be {"listener": ...}');
    await fails(call(admin, 'DELETE', '/api/v1/listeners/x'), 400, 'Bad Request', 'Cannot delete listener: Unknown listener "x"');
    await fails(call(admin, 'DELETE', '/api/v1/rules/x'), 400, 'Bad Request', 'Cannot delete rule: Unknown rule "x"');
    await fails(call(admin, 'DELETE', '/api/v1/endpoints/x'), 400, 'Bad Request', 'Not Found: Unknown endpoint "x"');
    // B7 fixed: the content says what was not found.
    await fails(call(admin, 'GET', '/api/v1/listeners/x'), 400, 'Bad Request', 'Not Found: Unknown listener "x"');
    await fails(call(admin, 'POST', '/api/v1/clusters/echo/endpoints', { endpoint: { spec: { address: '1.2.3.4' } } }), 400, 'Bad Request', 'Cannot add endpoint: Adding an endpoint to a cluster of type Echo is not supported');
    // GET and DELETE need no content type; a JSON content type with an empty body is fine.
    assert.equal((await call(admin, 'GET', '/api/v1/clusters', '', 'application/json')).status, 200);
    await fails(call(admin, 'DELETE', '/api/v1/clusters/nope', '', 'application/json'), 400, 'Bad Request', 'Cannot delete cluster: Unknown cluster "nope"');
    const adm = (await call(admin, 'GET', '/api/v1/admin')).json;
    assert.deepEqual(Object.keys(adm).slice(0, 4), ['log_level', 'strict', 'offload', 'version']);
    // format=terse is compact; the default is indented.
    assert.equal((await call(admin, 'GET', '/api/v1/clusters?format=terse')).text, '[{"name":"echo","spec":{"protocol":"Echo"},"endpoints":1,"loadbalancer":{"policy":"None"}}]');
    assert.match((await call(admin, 'GET', '/api/v1/clusters')).text, /^\[\n {2}\{\n {4}"name"/);
  });
});

test('POST /api/v1/admin changes the admission limits at runtime: the process session cap and the overload lag', async () => {
  const port = await freePort();
  const up = await udpEcho('up:');
  const clients: UdpClient[] = [];
  try {
    const doc = {
      listeners: [{ name: 'in', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'up' } } }] }],
      clusters: [{ name: 'up', spec: { protocol: 'UDP', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] }],
    };
    await withApi(doc, 2, async (admin, rt) => {
      const fdCap = rt.sessionCap();
      await ok(call(admin, 'POST', '/api/v1/admin', { admin: { max_sessions: 2, overload_lag_ms: 0 } }));
      const adm = (await call(admin, 'GET', '/api/v1/admin')).json;
      assert.equal(adm.max_sessions, 2);
      assert.equal(adm.overload_lag_ms, 0);
      assert.equal(rt.sessionCap(), 2);
      for (let i = 0; i < 3; i++) clients.push(await UdpClient.open());
      assert.equal((await clients[0]!.request('a', port)).toString(), 'up:a');
      assert.equal((await clients[1]!.request('b', port)).toString(), 'up:b');
      await assert.rejects(clients[2]!.request('c', port, '127.0.0.1', 300, 2), /no UDP reply/);
      const m = await rt.metrics();
      const refused = m.slots.reduce((n, s) => n + (s.metrics?.listeners.find((l) => l.name === 'in')?.events.process_sessions ?? 0), 0);
      assert.ok(refused >= 1, `${refused} refusals counted`);
      // A cap above what the open-file limit allows is lowered to it.
      await ok(call(admin, 'POST', '/api/v1/admin', { admin: { max_sessions: 10_000_000 } }));
      assert.equal(rt.sessionCap(), fdCap);
      assert.equal((await clients[2]!.request('c', port)).toString(), 'up:c');
      await fails(call(admin, 'POST', '/api/v1/admin', { admin: { max_sessions: 0 } }), 400, 'Bad Request', /admin\.max_sessions/);
    });
  } finally {
    clients.forEach((c) => c.close());
    await up.close();
  }
});

test('POST /api/v1/admin (l7mp: 501) changes the log level, the access log and strict mode at runtime; start-time fields are refused by name', async () => {
  const port = await freePort();
  const up = await udpEcho('up:');
  const dir = tmpDir();
  const accessLog = path.join(dir, 'access.log');
  try {
    const doc = {
      listeners: [{ name: 'in', spec: { protocol: 'UDP', port }, rules: [{ action: { route: { destination: 'up' } } }] }],
      clusters: [{ name: 'up', spec: { protocol: 'UDP', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] }],
    };
    await withApi(doc, 2, async (admin) => {
      await ok(call(admin, 'POST', '/api/v1/admin', { admin: { log_level: 'warn', access_log_path: accessLog } }));
      const adm = (await call(admin, 'GET', '/api/v1/admin')).json;
      assert.equal(adm.log_level, 'warn');
      assert.equal(adm.access_log_path, accessLog);
      // Every worker now writes the access log: a session ended through the API leaves its line.
      const c = await UdpClient.open();
      try {
        assert.equal((await c.request('hi', port)).toString(), 'up:hi');
        const sessions = await waitFor(async () => ((await call(admin, 'GET', '/api/v1/sessions')).json as Array<{ name: string }>).filter((s) => s.name.startsWith('UDP:')), WAIT, 'the UDP session');
        const name = (sessions[0] as { name: string }).name;
        await ok(call(admin, 'DELETE', `/api/v1/sessions/${encodeURIComponent(name)}`));
        await waitFor(() => fs.existsSync(accessLog) && fs.readFileSync(accessLog, 'utf8').includes(name), WAIT, 'the access log line');
      } finally {
        c.close();
      }
      await fails(call(admin, 'POST', '/api/v1/admin', { admin: { log_level: 'loud' } }), 400, 'Bad Request', /^Cannot set admin: admin\.log_level: .*"loud"/);
      await fails(call(admin, 'POST', '/api/v1/admin', { admin: { offload: 'init' } }), 400, 'Bad Request', 'Cannot set admin: admin.offload: cannot change at runtime (it is read at start), got "init"');
      await fails(call(admin, 'POST', '/api/v1/admin', { log_level: 'info' }), 400, 'Bad Request', 'Cannot set admin: the request body must be {"admin": ...}');
      assert.equal((await call(admin, 'GET', '/api/v1/admin')).json.log_level, 'warn', 'a refused change changes nothing');
      // Strict mode on: unknown fields are now rejected.
      await ok(call(admin, 'POST', '/api/v1/admin', { admin: { strict: true } }));
      assert.equal((await call(admin, 'GET', '/api/v1/admin')).json.strict, true);
      await fails(call(admin, 'POST', '/api/v1/clusters', { cluster: { name: 'e2', spec: { protocol: 'Echo' }, bogus: 1 } }), 400, 'Bad Request', /bogus/);
    });
  } finally {
    await up.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('options.track keeps ended sessions listed as DESTROYED (l7mp §1.2); without it they go at once', async () => {
  const tracked = await freePort();
  const plain = await freePort();
  const doc = {
    listeners: [
      { name: 'tracked', spec: { protocol: 'UDP', port: tracked }, options: { track: 60 }, rules: [{ action: { route: { destination: 'echo' } } }] },
      { name: 'plain', spec: { protocol: 'UDP', port: plain }, rules: [{ action: { route: { destination: 'echo' } } }] },
    ],
    ...echoOnly,
  };
  await withApi(doc, 2, async (admin) => {
    assert.deepEqual((await call(admin, 'GET', '/api/v1/listeners/tracked')).json.options, { track: 60 });
    const c = await UdpClient.open();
    try {
      assert.equal((await c.request('a', tracked)).toString(), 'a');
      assert.equal((await c.request('b', plain)).toString(), 'b');
    } finally {
      c.close();
    }
    const live = (await call(admin, 'GET', '/api/v1/sessions')).json as Array<{ name: string; source: { listener: { name?: string } } }>;
    assert.equal(live.length, 2);
    for (const s of live) await ok(call(admin, 'DELETE', `/api/v1/sessions/${encodeURIComponent(s.name)}`));
    const after = await waitFor(
      async () => {
        const l = (await call(admin, 'GET', '/api/v1/sessions')).json as Array<{ name: string; status: string }>;
        return l.length === 1 && l[0]?.status === 'DESTROYED' ? l : null;
      },
      WAIT,
      'only the tracked session left, DESTROYED',
    );
    assert.match((after as Array<{ name: string }>)[0]?.name ?? '', new RegExp(`^UDP:.*:${tracked}-\\d+$`), 'it is the tracked listener\'s session');
    const tree = (await call(admin, 'GET', '/api/v1/actors')).json;
    const states: string[] = [];
    const walk = (n: { kind: string; state: string; children: unknown[] }): void => {
      if (n.kind === 'session') states.push(n.state);
      for (const ch of n.children as Array<typeof n>) walk(ch);
    };
    walk(tree);
    assert.deepEqual(states, ['stopped'], 'the actor tree shows it as a stopped session');
  });
});

test('a recursive endpoint delete moves live sessions to the next endpoint under retry_on: disconnect, and ends them after the last (§1.9, §12.12)', async () => {
  // A UDP cluster has one port: the two endpoints are two loopback addresses on it.
  const a = await udpEcho('A:', '127.0.0.1');
  const b = await udpEcho('B:', '127.0.0.2', a.port);
  const port = await freePort();
  const doc = {
    listeners: [{ name: 'in', spec: { protocol: 'UDP', port }, rules: [{ action: { route: { destination: 'up', retry: { retry_on: 'disconnect', num_retries: 2, timeout: 1000 } } } }] }],
    clusters: [{ name: 'up', spec: { protocol: 'UDP', port: a.port }, endpoints: [{ name: 'ep-a', spec: { address: '127.0.0.1' } }, { name: 'ep-b', spec: { address: '127.0.0.2' } }] }],
  };
  const c = await UdpClient.open();
  try {
    await withApi(doc, 2, async (admin) => {
      assert.equal((await c.request('1', port)).toString(), 'A:1');
      const [first] = (await call(admin, 'GET', '/api/v1/sessions')).json as Array<{ name: string }>;
      await ok(call(admin, 'DELETE', '/api/v1/endpoints/ep-a?recursive=true'));
      assert.equal((await c.request('2', port)).toString(), 'B:2', 'the same session now goes to the remaining endpoint');
      const now = (await call(admin, 'GET', '/api/v1/sessions')).json as Array<{ name: string }>;
      assert.deepEqual(now.map((x) => x.name), [first?.name], 'it is the same session');
      await ok(call(admin, 'DELETE', '/api/v1/endpoints/ep-b?recursive=true'));
      await waitFor(async () => ((await call(admin, 'GET', '/api/v1/sessions')).json as unknown[]).length === 0, WAIT, 'the session to end with no endpoint left');
    });
  } finally {
    c.close();
    await a.close();
    await b.close();
  }
});

test('an endpoint removed by POST /api/v1/config, or by a DELETE without recursive=true, moves its sessions too: the store derives the drops from the applied diff', async () => {
  const a = await udpEcho('A:', '127.0.0.1');
  const b = await udpEcho('B:', '127.0.0.2', a.port);
  const port = await freePort();
  const listener = { name: 'in', spec: { protocol: 'UDP', port }, rules: [{ action: { route: { destination: 'up', retry: { retry_on: 'disconnect', num_retries: 2, timeout: 1000 } } } }] };
  const cluster = (...eps: Array<[string, string]>) => ({ name: 'up', spec: { protocol: 'UDP', port: a.port }, endpoints: eps.map(([name, address]) => ({ name, spec: { address } })) });
  const c = await UdpClient.open();
  try {
    await withApi({ listeners: [listener], clusters: [cluster(['ep-a', '127.0.0.1'], ['ep-b', '127.0.0.2'])] }, 2, async (admin) => {
      assert.equal((await c.request('1', port)).toString(), 'A:1');
      const [first] = (await call(admin, 'GET', '/api/v1/sessions')).json as Array<{ name: string }>;
      // The whole config replaced, ep-a left out: no endpoint route ran, the diff did it.
      await ok(call(admin, 'POST', '/api/v1/config', { listeners: [listener], clusters: [cluster(['ep-b', '127.0.0.2'])] }));
      assert.equal((await c.request('2', port)).toString(), 'B:2', 'the same session now goes to the remaining endpoint');
      assert.deepEqual(((await call(admin, 'GET', '/api/v1/sessions')).json as Array<{ name: string }>).map((x) => x.name), [first?.name], 'it is the same session');
      await ok(call(admin, 'DELETE', '/api/v1/endpoints/ep-b'));
      await waitFor(async () => ((await call(admin, 'GET', '/api/v1/sessions')).json as unknown[]).length === 0, WAIT, 'the session to end with no endpoint left');
    });
  } finally {
    c.close();
    await a.close();
    await b.close();
  }
});

test('a listener on a port another listener binds is refused (SO_REUSEPORT would split its traffic); nothing changes', async () => {
  const port = await freeTcpPort();
  const doc = { listeners: [{ name: 'first', spec: { protocol: 'TCP', port }, rules: [{ action: { route: { destination: 'echo' } } }] }], ...echoOnly };
  await withApi(doc, 1, async (admin) => {
    const a = await fails(
      call(admin, 'POST', '/api/v1/listeners', { listener: { name: 'second', spec: { protocol: 'HTTP', port }, rules: [{ action: { route: { destination: 'echo' } } }] } }),
      400,
      'Bad Request',
      /^Cannot add listener: .*listener "second" binds TCP \[::\]:\d+, which listener "first" binds already$/,
    );
    assert.match(a.json.content, new RegExp(`:${port},`));
    assert.deepEqual((await call(admin, 'GET', '/api/v1/listeners')).json.map((l: { name: string }) => l.name), ['first']);
  });
});

test('YAML bodies (with a charset parameter) are accepted', async () => {
  await withApi(echoOnly, 1, async (admin) => {
    await ok(call(admin, 'POST', '/api/v1/clusters', 'cluster:\n  name: y1\n  spec:\n    protocol: Echo\n', 'text/yaml'));
    await ok(call(admin, 'POST', '/api/v1/routes', 'route:\n  name: r1\n  destination: y1\n', 'application/x-yaml; charset=utf-8'));
    await ok(call(admin, 'POST', '/api/v1/rules', { rule: { name: 'ru', action: { route: 'r1' } } }, 'application/json; charset=utf-8'));
    assert.deepEqual((await call(admin, 'GET', '/api/v1/routes/r1')).json, { name: 'r1', destination: 'y1', ingress: [], egress: [], retry: { retry_on: 'never', num_retries: 1, timeout: 2000 } });
    assert.deepEqual((await call(admin, 'GET', '/api/v1/rules/ru')).json, { name: 'ru', match: { match: '*' }, action: { route: 'r1' } });
  });
});

test('a listener that cannot bind is an error and leaves the config and the workers unchanged', async () => {
  const busyPort = await freeTcpPort();
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen({ port: busyPort, host: '127.0.0.1', exclusive: true }, () => r()));
  const port = await freePort();
  const c = await UdpClient.open();
  try {
    const doc = { ...echoOnly, listeners: [{ name: 'a', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'echo' } } }] }] };
    await withApi(doc, 2, async (admin, rt) => {
      const before = rt.snapshot;
      const configBefore = (await call(admin, 'GET', '/api/v1/config')).json;
      const a = await fails(
        call(admin, 'POST', '/api/v1/listeners', { listener: { name: 'taken', spec: { protocol: 'TCP', port: busyPort, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'echo' } } }] } }),
        400,
        'Bad Request',
        /^Cannot add listener: .*taken/,
      );
      assert.ok(a.json.content.length > 0);
      assert.equal(rt.snapshot, before);
      assert.deepEqual((await call(admin, 'GET', '/api/v1/config')).json, configBefore);
      assert.ok(!JSON.stringify(await rt.tree()).includes('"name":"taken"'), 'no worker runs the failed listener');
      assert.equal((await c.request('still', port, '127.0.0.1', 2000, 5)).toString(), 'still');
      // The same name can be added once the port is free.
      await new Promise<void>((r) => busy.close(() => r()));
      await ok(call(admin, 'POST', '/api/v1/listeners', { listener: { name: 'taken', spec: { protocol: 'TCP', port: busyPort, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'echo' } } }] } }));
      assert.equal(rt.snapshot.listeners.length, 2);
    });
  } finally {
    c.close();
    busy.close();
  }
});

test('GET /api/v1/config round-trips through POST /api/v1/config, autogenerated flags included', async () => {
  const port = await freePort();
  const doc = {
    listeners: [{ name: 'l', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ match: { op: 'test', path: '/UDP/src_port', value: 1 }, action: { route: { destination: { spec: { protocol: 'Echo' } } } } }, 'r2'] }],
    clusters: [{ name: 'u', spec: { protocol: 'UDP', port: 9 }, endpoints: [{ spec: { address: '127.0.0.1' }, weight: 2 }], loadbalancer: { policy: 'ConsistentHash', key: '/IP/src_addr' } }],
    rules: [{ name: 'r2', action: { rewrite: [{ path: '/x', value: 1 }], route: { name: 'named-route', destination: 'u' } } }],
  };
  await withApi(doc, 1, async (admin, rt) => {
    const first = (await call(admin, 'GET', '/api/v1/config')).json;
    assert.deepEqual(Object.keys(first), ['admin', 'listeners', 'clusters', 'rulelists', 'rules', 'routes', 'endpoints', 'sessions']);
    assert.equal(first.endpoints.length, 1);
    assert.ok(Array.isArray(first.clusters[0].endpoints), 'GET /config dumps cluster endpoints as arrays');
    await ok(call(admin, 'POST', '/api/v1/config', first));
    assert.deepEqual((await call(admin, 'GET', '/api/v1/config')).json, first);
    // Still flagged: a recursive delete takes the listener's inline chain with it.
    await ok(call(admin, 'DELETE', '/api/v1/listeners/l?recursive=true'));
    const after = (await call(admin, 'GET', '/api/v1/config')).json;
    assert.deepEqual(after.rulelists, []);
    assert.deepEqual(after.rules.map((r: { name: string }) => r.name), ['r2']);
    assert.deepEqual(after.routes.map((r: { name: string }) => r.name), ['named-route']);
    assert.deepEqual(after.clusters.map((c: { name: string }) => c.name), ['u']);
    // A whole new config replaces the old one; an invalid one changes nothing.
    await fails(call(admin, 'POST', '/api/v1/config', { listeners: [{ name: 'z' }] }), 400, 'Bad Request', 'Cannot set config: listeners[0].spec: is required');
    await ok(call(admin, 'POST', '/api/v1/config', 'clusters:\n  - name: only\n    spec: {protocol: Discard}\n', 'text/yaml'));
    assert.deepEqual(rt.snapshot.clusters.map((c) => c.name), ['only']);
    assert.deepEqual(rt.snapshot.rules, []);
  });
});

test('rules in a rulelist by position: insert before an index, get, delete by index or name', async () => {
  const port = await freePort();
  const c = await UdpClient.open();
  try {
    const doc = { ...echoOnly, listeners: [{ name: 'l', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: 'rl' }], rulelists: [{ name: 'rl', rules: [] }] };
    await withApi(doc, 1, async (admin, rt) => {
      // An empty rulelist routes nothing; inserting a rule at position 0 makes the listener work.
      await ok(call(admin, 'POST', '/api/v1/rulelists/rl/rules/0', { rule: { action: { route: { destination: 'echo' } } } }));
      assert.equal((await c.request('hi', port, '127.0.0.1', 2000, 5)).toString(), 'hi');
      await ok(call(admin, 'POST', '/api/v1/rules', { rule: { name: 'named', match: { op: 'test', path: '/UDP/src_port', value: 1 }, action: { route: { destination: 'echo' } } } }));
      await ok(call(admin, 'POST', '/api/v1/rulelists/rl/rules/0', { rule: 'named' }));
      const rl = (await call(admin, 'GET', '/api/v1/rulelists/rl')).json;
      assert.equal(rl.rules.length, 2);
      assert.equal(rl.rules[0], 'named');
      assert.match(rl.rules[1], /^rl-Rule-\d+$/);
      assert.equal((await call(admin, 'GET', '/api/v1/rulelists/rl/rules/0')).json.name, 'named');
      assert.deepEqual((await call(admin, 'GET', '/api/v1/rulelists/rl/rules/1')).json.match, { match: '*' });
      const rec = (await call(admin, 'GET', '/api/v1/rulelists/rl?recursive=true')).json;
      assert.equal(rec.rules[0].name, 'named');
      assert.equal(rec.rules[1].action.route.destination.name, 'echo');
      await fails(call(admin, 'GET', '/api/v1/rulelists/rl/rules/2'), 400, 'Bad Request', 'No rule at position 2 in RuleList "rl"');
      await fails(call(admin, 'POST', '/api/v1/rulelists/rl/rules/3', { rule: 'named' }), 400, 'Bad Request', 'Cannot add rule: position 3 is out of range 0..2 in RuleList "rl"');
      await fails(call(admin, 'POST', '/api/v1/rulelists/nope/rules/0', { rule: 'named' }), 400, 'Bad Request', 'No such rule list: nope');
      await fails(call(admin, 'DELETE', '/api/v1/rulelists/rl/rules/zz'), 400, 'Bad Request', 'No rule zz on rulelist rl');
      // Non-recursive removes the reference only; recursive also deletes the rule and its autogenerated route.
      await ok(call(admin, 'DELETE', '/api/v1/rulelists/rl/rules/0'));
      assert.equal((await call(admin, 'GET', '/api/v1/rules/named')).status, 200);
      const gen = (await call(admin, 'GET', '/api/v1/rulelists/rl')).json.rules[0];
      await ok(call(admin, 'DELETE', `/api/v1/rulelists/rl/rules/${gen}?recursive=true`));
      assert.deepEqual((await call(admin, 'GET', '/api/v1/rulelists/rl')).json, { name: 'rl', rules: [] });
      assert.deepEqual((await call(admin, 'GET', '/api/v1/rules')).json.map((r: { name: string }) => r.name), ['named']);
      assert.deepEqual(rt.snapshot.routes.map((r) => r.name), [(await call(admin, 'GET', '/api/v1/rules/named')).json.action.route]);
    });
  } finally {
    c.close();
  }
});

test('names with "/" (the k8s operator\'s fqn names) work percent-encoded', async () => {
  const up = await udpEcho('fqn:');
  try {
    await withApi(echoOnly, 1, async (admin) => {
      const name = '/l7mp.io/v1/Target/default/x';
      const ep = `${name}/127.0.0.1`;
      const enc = encodeURIComponent(name);
      await ok(call(admin, 'POST', '/api/v1/clusters', { cluster: { name, spec: { protocol: 'UDP', port: up.port } } }));
      await ok(call(admin, 'POST', `/api/v1/clusters/${enc}/endpoints`, { endpoint: { name: ep, spec: { address: '127.0.0.1' } } }));
      assert.equal((await call(admin, 'GET', `/api/v1/clusters/${enc}`)).json.endpoints, 1);
      assert.deepEqual((await call(admin, 'GET', `/api/v1/endpoints/${encodeURIComponent(ep)}`)).json, { name: ep, spec: { address: '127.0.0.1' }, weight: 1 });
      await ok(call(admin, 'DELETE', `/api/v1/endpoints/${encodeURIComponent(ep)}?recursive=true`));
      assert.equal((await call(admin, 'GET', `/api/v1/clusters/${enc}`)).json.endpoints, 0);
      await ok(call(admin, 'DELETE', `/api/v1/clusters/${enc}?recursive=true`));
      await fails(call(admin, 'GET', `/api/v1/clusters/${enc}`), 400, 'Bad Request', `Not Found: Unknown cluster "${name}"`);
    });
  } finally {
    await up.close();
  }
});

test('config input bounds: cyclic YAML aliases, alias bombs, JSON and YAML nested past 64 levels are 400s naming the problem and where; a body over 1 MiB is 413; the config is unchanged', async () => {
  await withApi(echoOnly, 1, async (admin) => {
    const before = (await call(admin, 'GET', '/api/v1/config')).json;
    const cyclic = 'listeners:\n  - &l\n    name: x\n    spec: { protocol: UDP, port: 1 }\n    rules: [*l]\n';
    await fails(call(admin, 'POST', '/api/v1/config', cyclic, 'text/yaml'), 400, 'Bad Request', 'Invalid YAML format in request: alias *l at line 5, column 13 refers to a node that contains it (cyclic)');
    await fails(call(admin, 'POST', '/api/v1/clusters', 'cluster: &c\n  name: c\n  spec: { protocol: Echo }\n  self: *c\n', 'application/yaml'), 400, 'Bad Request', /alias \*c at line 4, column 9 .*\(cyclic\)/);
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (const [i, n] of ['b', 'c', 'd', 'e', 'f', 'g'].entries()) lines.push(`${n}: &${n} [${Array(9).fill(`*${'abcdefg'[i]}`).join(', ')}]`);
    await fails(call(admin, 'POST', '/api/v1/config', lines.join('\n'), 'text/yaml'), 400, 'Bad Request', 'Invalid YAML format in request: more than 100 alias expansions (alias bomb?)');
    // 10 000 levels of JSON: refused before it is parsed, with its position.
    const deep = `{"listeners": ${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
    await fails(call(admin, 'POST', '/api/v1/config', deep, 'application/json'), 400, 'Bad Request', 'Invalid JSON format in request: nested deeper than 64 levels at line 1, column 78');
    let nested: unknown = { protocol: 'Echo' };
    for (let i = 0; i < 70; i++) nested = { x: nested };
    await fails(call(admin, 'POST', '/api/v1/clusters', { cluster: { name: 'n', spec: nested } }), 400, 'Bad Request', /^Invalid JSON format in request: nested deeper than 64 levels at line 1, column \d+$/);
    // YAML: the path of the first level past the limit; 10 000 levels (the parser's stack) too.
    await fails(call(admin, 'POST', '/api/v1/config', `listeners: ${'['.repeat(100)}${']'.repeat(100)}\n`, 'text/yaml'), 400, 'Bad Request', 'Invalid YAML format in request: listeners[0][0][0][0][0][0][0]…: nested deeper than 64 levels');
    await fails(call(admin, 'POST', '/api/v1/config', `listeners: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`, 'text/yaml'), 400, 'Bad Request', /^Invalid YAML format in request: nested deeper than 64 levels/);
    // Over 1 MiB: 413, announced or not.
    const big = JSON.stringify({ cluster: { name: 'big', spec: { protocol: 'Echo' }, pad: 'x'.repeat(2 << 20) } });
    const a = await call(admin, 'POST', '/api/v1/clusters', big);
    assert.equal(a.status, 413, a.text);
    assert.match(a.json.content, /request body larger than 1048576 bytes/);
    // The service goes on, and nothing changed.
    assert.deepEqual((await call(admin, 'GET', '/api/v1/config')).json, before);
  });
});
