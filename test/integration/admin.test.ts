/**
 * The admin server over real HTTP: the live actor tree with UDP and WebSocket sessions on two
 * workers, stopping a session by actor id, health, the bearer token, and `l7mp-ts actors`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import type { WebSocket } from 'ws';
import { freePort, freeTcpPort, startProxy, tmpDir, udpEcho, UdpClient, waitFor, wsClient, wsEcho, wsRecv } from '../helpers.ts';
import { startAdmin } from '../../runtime/main/admin/index.ts';
import { makeLogger } from '../../common/log.ts';
import { WorkerRing } from '../../runtime/ring.ts';
import type { ActorNode } from '../../actors/tree.ts';
import { BIN, startProcess } from '../e2e/proc.ts';
import { spawnSync } from 'node:child_process';

function get(port: number, p: string, opts: { method?: string; token?: string } = {}): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method: opts.method ?? 'GET', headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type'] ?? '') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Session nodes with the worker node they hang under. */
function sessionsByWorker(tree: ActorNode): Array<{ worker: number; node: ActorNode }> {
  const out: Array<{ worker: number; node: ActorNode }> = [];
  for (const w of tree.children) {
    assert.equal(w.kind, 'worker');
    const walk = (n: ActorNode): void => {
      if (n.kind === 'session') out.push({ worker: w.worker as number, node: n });
      n.children.forEach(walk);
    };
    walk(w);
  }
  return out;
}

test('GET /api/v1/actors: UDP and WebSocket sessions under the worker that owns them, on 2 workers; DELETE stops one', async () => {
  const echo = await udpEcho('u:');
  const wsUp = await wsEcho('w:');
  const udpPort = await freePort();
  const wsPort = await freeTcpPort();
  const rt = await startProxy(
    {
      listeners: [
        { name: 'udp', spec: { protocol: 'UDP', port: udpPort, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'udp-up' } } }] },
        { name: 'ws', spec: { protocol: 'WebSocket', port: wsPort, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'ws-up' } } }] },
      ],
      clusters: [
        { name: 'udp-up', spec: { protocol: 'UDP', port: echo.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] },
        { name: 'ws-up', spec: { protocol: 'WebSocket', port: wsUp.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] },
      ],
    },
    2,
  );
  const admin = await startAdmin(rt, { host: '127.0.0.1', port: 0, log: makeLogger('silent') });
  const clients: UdpClient[] = [];
  const sockets: WebSocket[] = [];
  try {
    for (let i = 0; i < 12; i++) clients.push(await UdpClient.open());
    await Promise.all(clients.map((c, i) => c.request(`m${i}`, udpPort).then((r) => assert.equal(r.toString(), `u:m${i}`))));
    for (let i = 0; i < 6; i++) {
      const w = await wsClient(`ws://127.0.0.1:${wsPort}/s${i}`);
      sockets.push(w);
      w.send(`x${i}`);
      assert.equal((await wsRecv(w)).toString(), `w:x${i}`);
    }
    const r = await get(admin.port, '/api/v1/actors');
    assert.equal(r.status, 200);
    const tree = JSON.parse(r.body) as ActorNode;
    assert.equal(tree.kind, 'process');
    assert.deepEqual(tree.children.map((w) => w.worker).sort(), [0, 1]);
    const list = sessionsByWorker(tree);
    const udp = list.filter((s) => s.node.listener === 'udp');
    const ws = list.filter((s) => s.node.listener === 'ws');
    assert.equal(udp.length, 12);
    assert.equal(ws.length, 6);
    const ring = new WorkerRing([0, 1]);
    for (const s of udp) {
      const peer = /^UDP:([^-]+)-/.exec(s.node.name)?.[1] as string;
      assert.equal(s.worker, ring.owner(peer), `UDP session ${s.node.name} is on the ring owner of its peer`);
      assert.equal(s.node.status, 'CONNECTED');
    }
    for (const s of ws) assert.equal(s.node.worker, s.worker, 'a WebSocket session lives on the worker that accepted it');
    // Each session node carries its traffic.
    const first = udp[0]?.node.downstream as { rx_packets: number; tx_packets: number };
    assert.deepEqual([first.rx_packets, first.tx_packets], [1, 1]);

    const text = await get(admin.port, '/api/v1/actors?format=text');
    assert.match(text.type, /text\/plain/);
    assert.match(text.body, /^process l7mp-ts/);
    assert.equal((text.body.match(/^\s+session /gm) ?? []).length, 18);

    // Stop one WebSocket session by its actor id: its client sees the close.
    const victim = ws[0]?.node as ActorNode;
    const del = await get(admin.port, `/api/v1/actors/${victim.id}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    await waitFor(async () => sessionsByWorker(JSON.parse((await get(admin.port, '/api/v1/actors')).body) as ActorNode).length === 17, 3000, 'the session to go');
    assert.equal((await get(admin.port, `/api/v1/actors/${victim.id}`, { method: 'DELETE' })).status, 404);
    const listenerId = tree.children[0]?.children.find((c) => c.kind === 'listener')?.id as string;
    assert.equal((await get(admin.port, `/api/v1/actors/${listenerId}`, { method: 'DELETE' })).status, 400, 'only sessions can be stopped');

    assert.equal((await get(admin.port, '/healthz')).status, 200);
    assert.equal(JSON.parse((await get(admin.port, '/readyz')).body).status, 'ready');
  } finally {
    clients.forEach((c) => c.close());
    sockets.forEach((s) => s.terminate());
    await admin.close();
    await rt.shutdown();
    await echo.close();
    await wsUp.close();
  }
});

test('the bearer token guards every admin route', async () => {
  const rt = await startProxy({ clusters: [{ name: 'e', spec: { protocol: 'Echo' } }] });
  const admin = await startAdmin(rt, { host: '127.0.0.1', port: 0, log: makeLogger('silent'), token: 's3cret' });
  try {
    for (const p of ['/healthz', '/api/v1/actors', '/api/v1/listeners', '/metrics']) {
      const r = await get(admin.port, p);
      assert.equal(r.status, 401, p);
      assert.equal(JSON.parse(r.body).status, 401);
      assert.equal((await get(admin.port, p, { token: 'wrong' })).status, 401, p);
      assert.equal((await get(admin.port, p, { token: 's3cret' })).status, 200, p);
    }
  } finally {
    await admin.close();
    await rt.shutdown();
  }
});

test('`l7mp-ts actors --admin` prints the tree of a running proxy; a bad address is a clear error', async () => {
  const dir = tmpDir();
  const port = await freePort();
  const adminPort = await freeTcpPort();
  const p = await startProcess(
    { listeners: [{ name: 'u', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }] },
    path.join(dir, 'c.yaml'),
    ['--workers', '2', '--admin', `127.0.0.1:${adminPort}`],
  );
  try {
    const c = await UdpClient.open();
    assert.equal((await c.request('hi', port)).toString(), 'hi');
    c.close();
    const r = spawnSync(BIN, ['actors', '--admin', `127.0.0.1:${adminPort}`], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^process l7mp-ts/);
    assert.equal((r.stdout.match(/^  worker /gm) ?? []).length, 2);
    assert.match(r.stdout, /session UDP:127\.0\.0\.1:\d+-127\.0\.0\.1:\d+-\d+ .*status=CONNECTED/);
    const bad = spawnSync(BIN, ['actors', '--admin', 'nope'], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--admin: must be \[HOST:\]PORT/);
  } finally {
    assert.equal((await p.stop()).code, 0);
  }
});
