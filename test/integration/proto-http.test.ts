/**
 * HTTP listener and cluster, and the l7mp way of serving the API and metrics: an HTTP listener
 * routed to an L7mpController or a Prometheus cluster (docs/l7mp-compat.md §2, §3.2, §3.3, §6.1).
 * Real sockets on 127.0.0.1, a real upstream HTTP server, `fetch` as the client.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { createAdmin } from '../../runtime/main/admin/index.ts';
import type { Runtime } from '../../runtime/main/runtime.ts';
import { makeLogger } from '../../common/log.ts';
import { freeTcpPort, streamClient, waitFor } from '../helpers.ts';
import { closing, proxy } from './proto-helpers.ts';

const WAIT = 10_000;

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** An upstream HTTP server that records each request and answers 201 with `x-upstream` and a body describing the request. */
async function upstream(t: TestContext): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      res.writeHead(201, 'Made It', { 'x-upstream': 'yes', 'content-type': 'text/plain' });
      res.end(`${req.method} ${req.url} ${body.length} bytes`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closing(t, server, (s) => {
    s.closeAllConnections();
    return new Promise<void>((r) => s.close(() => r()));
  });
  return { port: (server.address() as net.AddressInfo).port, seen };
}

async function get(url: string, init: RequestInit = {}): Promise<{ status: number; statusText: string; headers: Headers; body: Buffer }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(WAIT) });
  return { status: res.status, statusText: res.statusText, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** A proxy whose admin routes are reachable by its workers (as the CLI sets it up), optionally with a bearer token. */
async function proxyWithApi(t: TestContext, doc: unknown, workers = 1, token?: string, insecure = false): Promise<Runtime> {
  const rt = await proxy(t, doc, workers);
  createAdmin(rt, { host: '127.0.0.1', port: 0, log: makeLogger('silent'), ...(token ? { token } : {}), insecure });
  return rt;
}

/** This host's first non-loopback IPv4 address (a peer that is not loopback, still on this host), if any. */
function outsideAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

test('HTTP listener to Echo: the request body comes back as the response body with l7mp\'s implicit 200; a 1 MiB body streams intact', async (t) => {
  const port = await freeTcpPort();
  await proxy(t, {
    listeners: [{ name: 'h', spec: { protocol: 'HTTP', port }, rules: [{ action: { route: { destination: 'echo' } } }] }],
    clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }],
  });
  const r = await get(`http://127.0.0.1:${port}/any/path`, { method: 'POST', body: 'hello http' });
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'hello http');
  assert.equal(r.headers.get('content-type'), null, 'l7mp sends no Content-Type on data-plane answers');
  const big = Buffer.alloc(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
  const r2 = await get(`http://127.0.0.1:${port}/big`, { method: 'PUT', body: big });
  assert.equal(r2.status, 200);
  assert.ok(r2.body.equals(big), `1 MiB echoed intact (got ${r2.body.length} bytes)`);
});

test('HTTP listener metadata follows l7mp (§3.1): rules match method, path with query and headers', async (t) => {
  const port = await freeTcpPort();
  await proxy(t, {
    listeners: [
      {
        name: 'h',
        spec: { protocol: 'HTTP', port },
        rules: [
          {
            match: { op: 'and', apply: [{ op: 'test', path: '/HTTP/method', value: 'PUT' }, { op: 'test', path: '/HTTP/url/path', value: '/a?q=1' }, { op: 'test', path: '/HTTP/url/query', value: 'q=1' }, { op: 'test', path: '/HTTP/headers/x-tag', value: 'blue' }] },
            action: { route: { destination: 'echo' } },
          },
        ],
      },
    ],
    clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }],
  });
  const hit = await get(`http://127.0.0.1:${port}/a?q=1`, { method: 'PUT', body: 'x', headers: { 'x-tag': 'blue' } });
  assert.equal(hit.status, 200);
  assert.equal(hit.body.toString(), 'x');
  const miss = await get(`http://127.0.0.1:${port}/a?q=1`, { method: 'PUT', body: 'x', headers: { 'x-tag': 'red' } });
  assert.equal(miss.status, 404);
});

test('no route on an HTTP listener: 404 with l7mp\'s JSON error naming the session (§2.3)', async (t) => {
  const port = await freeTcpPort();
  await proxy(t, { listeners: [{ name: 'h', spec: { protocol: 'HTTP', port }, rules: [{ match: { op: 'test', path: '/HTTP/url/path', value: '/only' }, action: { route: { destination: 'echo' } } }] }], clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }] });
  const r = await get(`http://127.0.0.1:${port}/elsewhere`);
  assert.equal(r.status, 404);
  assert.equal(r.statusText, 'Not Found');
  assert.equal(r.headers.get('content-type'), 'application/json');
  const j = JSON.parse(r.body.toString());
  assert.equal(j.status, 404);
  assert.equal(j.message, 'Not Found');
  assert.match(j.content, /^No route for session "HTTP:.*:\d+-.*:\d+-\d+"$/);
});

test('HTTP listener to HTTP cluster: method, path, query, headers and body reach the upstream; its status, reason and headers come back', async (t) => {
  const up = await upstream(t);
  const port = await freeTcpPort();
  await proxy(
    t,
    {
      listeners: [{ name: 'h', spec: { protocol: 'HTTP', port }, rules: [{ action: { route: { destination: 'web' } } }] }],
      clusters: [{ name: 'web', spec: { protocol: 'HTTP', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] }],
    },
    2,
  );
  const r = await get(`http://127.0.0.1:${port}/p/q?x=1&y=2`, { method: 'PATCH', body: 'payload-123', headers: { 'x-custom': 'c1', connection: 'keep-alive' } });
  assert.equal(r.status, 201);
  assert.equal(r.statusText, 'Made It');
  assert.equal(r.headers.get('x-upstream'), 'yes');
  assert.equal(r.headers.get('content-type'), 'text/plain');
  assert.equal(r.body.toString(), 'PATCH /p/q?x=1&y=2 11 bytes');
  assert.equal(up.seen.length, 1);
  const s = up.seen[0] as Seen;
  assert.equal(s.body.toString(), 'payload-123');
  assert.equal(s.headers['x-custom'], 'c1');
  assert.equal(s.headers.host, `127.0.0.1:${port}`, 'Host is kept');
  // A GET without a body stays without one.
  const g = await get(`http://127.0.0.1:${port}/g`);
  assert.equal(g.status, 201);
  assert.equal(g.body.toString(), 'GET /g 0 bytes');
  assert.equal((up.seen[1] as Seen).headers['transfer-encoding'], undefined);
});

test('TCP listener to HTTP cluster: the byte stream is POSTed to spec.path and the response body comes back', async (t) => {
  const up = await upstream(t);
  const port = await freeTcpPort();
  await proxy(t, {
    listeners: [{ name: 't', spec: { protocol: 'TCP', port }, rules: [{ action: { route: { destination: 'web' } } }] }],
    clusters: [{ name: 'web', spec: { protocol: 'HTTP', port: up.port, path: '/ingest' }, endpoints: [{ spec: { address: '127.0.0.1' } }] }],
  });
  const c = await streamClient({ host: '127.0.0.1', port });
  closing(t, c.sock, (s) => s.destroy());
  c.sock.write('part1-');
  c.sock.end('part2');
  const got = await c.recv(WAIT);
  assert.equal(got.toString(), 'POST /ingest 11 bytes');
  assert.equal((up.seen[0] as Seen).body.toString(), 'part1-part2');
});

test('HTTP cluster with its endpoint down: the HTTP client gets l7mp\'s error reply, not a hang', async (t) => {
  const dead = await freeTcpPort();
  const port = await freeTcpPort();
  await proxy(t, {
    listeners: [{ name: 'h', spec: { protocol: 'HTTP', port }, rules: [{ action: { route: { destination: 'web', retry: { retry_on: 'connect-failure', num_retries: 1, timeout: 500 } } } }] }],
    clusters: [{ name: 'web', spec: { protocol: 'HTTP', port: dead }, endpoints: [{ spec: { address: '127.0.0.1' } }] }],
  });
  const r = await get(`http://127.0.0.1:${port}/x`, { method: 'POST', body: 'y' });
  assert.equal(r.status, 404);
  const j = JSON.parse(r.body.toString());
  assert.match(j.content, /^Pipeline setup failed for session "HTTP:/);
});

test('L7mpController behind an HTTP listener serves the l7mp API on 2 workers: dumps, adds that carry traffic, errors, the actor tree', async (t) => {
  const port = await freeTcpPort();
  const rt = await proxyWithApi(
    t,
    {
      listeners: [{ name: 'controller-listener', spec: { protocol: 'HTTP', port }, rules: [{ action: { route: { destination: 'controller' } } }] }],
      clusters: [{ name: 'controller', spec: { protocol: 'L7mpController' } }],
    },
    2,
  );
  const base = `http://127.0.0.1:${port}`;
  const l = await get(`${base}/api/v1/listeners`);
  assert.equal(l.status, 200);
  assert.deepEqual(
    JSON.parse(l.body.toString()).map((x: { name: string }) => x.name),
    ['controller-listener'],
  );
  // Add a cluster and a TCP listener through the controller, then pass traffic through them.
  const tcpPort = await freeTcpPort();
  const add1 = await get(`${base}/api/v1/clusters`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cluster: { name: 'echo', spec: { protocol: 'Echo' } } }) });
  assert.equal(add1.status, 200, add1.body.toString());
  assert.deepEqual(JSON.parse(add1.body.toString()), { status: 200, message: 'OK' });
  const yaml = `listener:\n  name: tcp-in\n  spec: { protocol: TCP, port: ${tcpPort} }\n  rules:\n    - action: { route: { destination: echo } }\n`;
  const add2 = await get(`${base}/api/v1/listeners`, { method: 'POST', headers: { 'content-type': 'text/yaml' }, body: yaml });
  assert.equal(add2.status, 200, add2.body.toString());
  const c = await streamClient({ host: '127.0.0.1', port: tcpPort });
  closing(t, c.sock, (s) => s.destroy());
  c.sock.write('through-the-controller');
  assert.equal((await c.recv(WAIT)).toString(), 'through-the-controller');
  assert.ok(rt.snapshot.listeners.some((x) => x.name === 'tcp-in'), 'the runtime (all workers) has the new listener');
  // A duplicate name: 400 with "already defined".
  const dup = await get(`${base}/api/v1/clusters`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cluster: { name: 'echo', spec: { protocol: 'Echo' } } }) });
  assert.equal(dup.status, 400);
  assert.match(JSON.parse(dup.body.toString()).content, /already defined/);
  // An unknown API path: 404 "Unknown API operation".
  const unk = await get(`${base}/api/v1/nonsense`);
  assert.equal(unk.status, 404);
  assert.equal(JSON.parse(unk.body.toString()).content, 'Unknown API operation');
  // The live actor tree, with the controller's own session in it.
  const tree = await get(`${base}/api/v1/actors`);
  assert.equal(tree.status, 200);
  const root = JSON.parse(tree.body.toString());
  assert.equal(root.kind, 'process');
  assert.equal(root.children.length, 2);
  const sessions: Array<{ kind: string; name: string }> = [];
  const walk = (n: { kind: string; name: string; children?: unknown[] }): void => {
    if (n.kind === 'session') sessions.push(n);
    for (const ch of (n.children ?? []) as Array<typeof n>) walk(ch);
  };
  walk(root);
  assert.ok(sessions.some((s) => s.name.startsWith('HTTP:')), 'the request that asked is a live session in the tree');
});

test('L7mpController honours the admin bearer token', async (t) => {
  const port = await freeTcpPort();
  await proxyWithApi(
    t,
    { listeners: [{ name: 'api', spec: { protocol: 'HTTP', port }, rules: [{ action: { route: { destination: 'controller' } } }] }], clusters: [{ name: 'controller', spec: { protocol: 'L7mpController' } }] },
    1,
    'tok-123',
  );
  const no = await get(`http://127.0.0.1:${port}/api/v1/config`);
  assert.equal(no.status, 401);
  const yes = await get(`http://127.0.0.1:${port}/api/v1/config`, { headers: { authorization: 'Bearer tok-123' } });
  assert.equal(yes.status, 200);
  assert.ok(Array.isArray(JSON.parse(yes.body.toString()).listeners));
});

test('Prometheus cluster on /metrics (l7mp\'s way): the exposition counts the traffic of every worker', async (t) => {
  const port = await freeTcpPort();
  const tcpPort = await freeTcpPort();
  await proxyWithApi(
    t,
    {
      listeners: [
        { name: 'metrics-listener', spec: { protocol: 'HTTP', port }, rules: [{ match: { op: 'test', path: '/HTTP/url/path', value: '/metrics' }, action: { route: { destination: 'prom' } } }] },
        { name: 'tcp-in', spec: { protocol: 'TCP', port: tcpPort }, rules: [{ action: { route: { destination: 'echo' } } }] },
      ],
      clusters: [
        { name: 'prom', spec: { protocol: 'Prometheus' } },
        { name: 'echo', spec: { protocol: 'Echo' } },
      ],
    },
    2,
  );
  for (let i = 0; i < 3; i++) {
    const c = await streamClient({ host: '127.0.0.1', port: tcpPort });
    c.sock.write(`m${i}`);
    assert.equal((await c.recv(WAIT)).toString(), `m${i}`);
    c.sock.destroy();
  }
  const text = await waitFor(
    async () => {
      const r = await get(`http://127.0.0.1:${port}/metrics`);
      assert.equal(r.status, 200);
      const s = r.body.toString();
      return /listener_requests_total\{listenerName="tcp-in",protocol="TCP"\} 3\b/.test(s) ? s : null;
    },
    WAIT,
    'three TCP sessions counted in the Prometheus exposition',
  );
  assert.match(text as string, /# TYPE listener_requests_total counter/);
  const other = await get(`http://127.0.0.1:${port}/not-metrics`);
  assert.equal(other.status, 404);
});

test('without an admin token, L7mpController and Prometheus answer loopback peers only: a non-loopback peer gets 403 naming it; a token or insecure lifts it', async (t) => {
  const outside = outsideAddress();
  if (outside === undefined) return t.skip('no non-loopback IPv4 address on this host');
  const doc = (port: number): unknown => ({
    listeners: [
      {
        name: 'api',
        // No address: every interface, as l7mp's examples bind the controller.
        spec: { protocol: 'HTTP', port },
        rules: [
          { match: { op: 'test', path: '/HTTP/url/path', value: '/metrics' }, action: { route: { destination: 'prom' } } },
          { action: { route: { destination: 'controller' } } },
        ],
      },
    ],
    clusters: [
      { name: 'controller', spec: { protocol: 'L7mpController' } },
      { name: 'prom', spec: { protocol: 'Prometheus' } },
    ],
  });
  // No token.
  const port = await freeTcpPort('0.0.0.0');
  await proxyWithApi(t, doc(port), 1);
  const local = await get(`http://127.0.0.1:${port}/api/v1/listeners`);
  assert.equal(local.status, 200, 'a loopback peer is served');
  const remote = await get(`http://${outside}:${port}/api/v1/listeners`);
  assert.equal(remote.status, 403, remote.body.toString());
  const body = JSON.parse(remote.body.toString());
  assert.equal(body.message, 'Forbidden');
  assert.match(body.content, new RegExp(`loopback peers only, not to (::ffff:)?${outside.replace(/\./g, '\\.')}: set --admin-token`));
  const post = await get(`http://${outside}:${port}/api/v1/clusters`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cluster: { name: 'x', spec: { protocol: 'Echo' } } }) });
  assert.equal(post.status, 403, 'no change from outside');
  assert.equal((await get(`http://${outside}:${port}/metrics`)).status, 403, 'Prometheus too');
  assert.equal((await get(`http://127.0.0.1:${port}/metrics`)).status, 200);
  assert.equal(JSON.parse((await get(`http://127.0.0.1:${port}/api/v1/clusters`)).body.toString()).length, 2, 'the refused POST changed nothing');

  // A token: the outside peer with the bearer is served.
  const port2 = await freeTcpPort('0.0.0.0');
  await proxyWithApi(t, doc(port2), 1, 'tok-9');
  assert.equal((await get(`http://${outside}:${port2}/api/v1/listeners`)).status, 401);
  assert.equal((await get(`http://${outside}:${port2}/api/v1/listeners`, { headers: { authorization: 'Bearer tok-9' } })).status, 200);

  // insecure (--admin-insecure): served without a token.
  const port3 = await freeTcpPort('0.0.0.0');
  await proxyWithApi(t, doc(port3), 1, undefined, true);
  assert.equal((await get(`http://${outside}:${port3}/api/v1/listeners`)).status, 200);
});
