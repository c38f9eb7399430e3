/**
 * Unix datagram sockets (UnixDomainSocket `type: dgram`): message boundaries kept end to end
 * across SOCK_DGRAM sockets on both sides, a session per sending path, UDP ↔ Unix datagram
 * conversion, JSONSocket over a Unix datagram transport, stale and live socket files.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadDgramSocket } from '../../protocols/uds/dgram-lib.ts';

const DgramSocket = loadDgramSocket();
import { freePort, tmpDir, waitFor } from '../helpers.ts';
import { closing, listenerCounter, nothingBefore, proxy, sessions, startFailure, udpClient } from './proto-helpers.ts';

/** A bound SOCK_DGRAM socket that queues what it receives (with the sender's path). */
class DgramPeer {
  readonly sock = new DgramSocket();
  readonly path: string;
  readonly queue: Array<{ data: Buffer; from: string }> = [];

  constructor(t: TestContext, file: string | null) {
    this.path = file ?? '';
    if (file !== null) this.sock.bind(file);
    this.sock.on('data', (data: Buffer, from: string) => this.queue.push({ data, from }));
    closing(t, this, (p) => p.sock.close());
  }

  send(data: Buffer | string, to: string): void {
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    this.sock.sendTo(b, 0, b.length, to);
  }

  async recv(timeoutMs = 3000): Promise<{ data: Buffer; from: string }> {
    await waitFor(() => this.queue.length > 0, timeoutMs, `a datagram on ${this.path || 'an unbound socket'}`);
    return this.queue.shift() as { data: Buffer; from: string };
  }
}

/** A SOCK_DGRAM echo server at `file` that prefixes every datagram and answers its sender. */
function dgramEcho(t: TestContext, file: string, prefix = ''): { got: Array<{ data: Buffer; from: string }> } {
  const s = new DgramSocket();
  const state = { got: [] as Array<{ data: Buffer; from: string }> };
  s.bind(file);
  s.on('data', (data: Buffer, from: string) => {
    state.got.push({ data, from });
    if (from !== '') {
      const out = Buffer.concat([Buffer.from(prefix), data]);
      s.sendTo(out, 0, out.length, from);
    }
  });
  closing(t, s, (x) => x.close());
  return state;
}

function dir(t: TestContext): string {
  return closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
}

const dgramRoute = (listenFile: string, upFile: string) => ({
  listeners: [
    {
      name: 'l',
      spec: { protocol: 'UnixDomainSocket', type: 'dgram', filename: listenFile },
      rules: [{ action: { route: { destination: { spec: { protocol: 'UnixDomainSocket', type: 'dgram' }, endpoints: [{ spec: { address: upFile } }] } } } }],
    },
  ],
});

test('Unix dgram → Unix dgram: 1, 1400 and 60000-byte datagrams arrive as exactly those datagrams, both ways', async (t) => {
  const d = dir(t);
  const up = dgramEcho(t, path.join(d, 'up.sock'));
  const rt = await proxy(t, dgramRoute(path.join(d, 'l.sock'), path.join(d, 'up.sock')));
  const c = new DgramPeer(t, path.join(d, 'c.sock'));
  const sent = [Buffer.from('a'), Buffer.alloc(1400, 0x62), Buffer.from(Array.from({ length: 60000 }, (_, i) => i % 251))];
  // All three go out before the session exists: held, then forwarded in order.
  for (const b of sent) c.send(b, path.join(d, 'l.sock'));
  for (const b of sent) {
    const r = await c.recv();
    assert.equal(r.data.length, b.length);
    assert.ok(r.data.equals(b), `datagram of ${b.length} bytes changed`);
    assert.equal(r.from, path.join(d, 'l.sock'), 'replies come from the listener path');
  }
  assert.equal(up.got.length, 3, 'the upstream got one datagram per datagram');
  assert.deepEqual(up.got.map((g) => g.data.length), [1, 1400, 60000]);
  assert.equal(new Set(up.got.map((g) => g.from)).size, 1, 'one session stage socket');
  assert.equal(await listenerCounter(rt, 'l', 'framing_lost'), 0);
});

test('Unix dgram listener: a session per sending path; an unbound sender is heard but cannot be answered', async (t) => {
  const d = dir(t);
  const up = dgramEcho(t, path.join(d, 'up.sock'), 'up: ');
  const rt = await proxy(t, dgramRoute(path.join(d, 'l.sock'), path.join(d, 'up.sock')));
  const a = new DgramPeer(t, path.join(d, 'a.sock'));
  const b = new DgramPeer(t, path.join(d, 'b.sock'));
  a.send('from a', path.join(d, 'l.sock'));
  b.send('from b', path.join(d, 'l.sock'));
  assert.equal((await a.recv()).data.toString(), 'up: from a');
  assert.equal((await b.recv()).data.toString(), 'up: from b');
  assert.equal(await listenerCounter(rt, 'l', 'sessions'), 2);
  const anon = new DgramPeer(t, null);
  anon.send('anonymous', path.join(d, 'l.sock'));
  await waitFor(() => up.got.some((g) => g.data.toString() === 'anonymous'), 3000, 'the anonymous datagram upstream');
  assert.equal(await listenerCounter(rt, 'l', 'sessions'), 3);
});

test('UDP → Unix dgram cluster and Unix dgram listener → UDP cluster keep boundaries', async (t) => {
  const d = dir(t);
  dgramEcho(t, path.join(d, 'up.sock'), 'u: ');
  const port = await freePort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'udp',
        spec: { protocol: 'UDP', port, address: '127.0.0.1' },
        rules: [{ action: { route: { destination: { spec: { protocol: 'UnixDomainSocket', type: 'dgram' }, endpoints: [{ spec: { address: path.join(d, 'up.sock') } }] } } } }],
      },
      {
        name: 'unix',
        spec: { protocol: 'UnixDomainSocket', type: 'dgram', filename: path.join(d, 'l.sock') },
        rules: [{ action: { route: { destination: { spec: { protocol: 'UDP', port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }],
      },
    ],
  });
  const c = await udpClient(t);
  assert.equal((await c.request('one', port)).toString(), 'u: one');
  assert.equal((await c.request('two', port)).toString(), 'u: two');
  await nothingBefore(c, port, 'three', '127.0.0.1', 'u: three');
  // Unix dgram client → proxy → UDP listener of the same proxy → Unix dgram upstream, and back.
  const u = new DgramPeer(t, path.join(d, 'c.sock'));
  u.send('loop', path.join(d, 'l.sock'));
  assert.equal((await u.recv()).data.toString(), 'u: loop');
  assert.equal(await listenerCounter(rt, 'udp', 'framing_lost'), 0);
  assert.equal(await listenerCounter(rt, 'unix', 'framing_lost'), 0);
});

test('JSONSocket over a Unix datagram transport', async (t) => {
  const d = dir(t);
  const file = path.join(d, 'js.sock');
  await proxy(t, {
    listeners: [{ name: 'js', spec: { protocol: 'JSONSocket', transport: { protocol: 'UnixDomainSocket', type: 'dgram', filename: file } }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }],
  });
  const c = new DgramPeer(t, path.join(d, 'c.sock'));
  c.send('{"JSONSocketVersion":1}', file);
  assert.equal((await c.recv()).data.toString(), '{"JSONSocketVersion":1,"JSONSocketStatus":200,"JSONSocketMessage":"OK"}');
  c.send('payload', file);
  assert.equal((await c.recv()).data.toString(), 'payload');
});

test('Unix dgram listener: a stale file is replaced; a live datagram socket on the path is a bind error', async (t) => {
  const d = dir(t);
  const stale = path.join(d, 'stale.sock');
  const s = new DgramSocket();
  s.bind(stale);
  s.close(); // the file stays, nobody is bound
  assert.ok(fs.existsSync(stale));
  dgramEcho(t, path.join(d, 'up.sock'));
  await proxy(t, dgramRoute(stale, path.join(d, 'up.sock')));
  const c = new DgramPeer(t, path.join(d, 'c.sock'));
  c.send('x', stale);
  assert.equal((await c.recv()).data.toString(), 'x');

  const live = path.join(d, 'live.sock');
  dgramEcho(t, live);
  const err = await startFailure(dgramRoute(live, path.join(d, 'up.sock')));
  assert.equal(err.code, 'L7_ERR_WORKER_START');
  assert.match(err.message, /listener "l": .*live\.sock is in use by another process/);
});

test('Unix dgram cluster: an endpoint path that is not a socket fails the connect', async (t) => {
  const d = dir(t);
  const port = await freePort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'UDP', port, address: '127.0.0.1' },
        rules: [{ action: { route: { destination: { spec: { protocol: 'UnixDomainSocket', type: 'dgram' }, endpoints: [{ spec: { address: path.join(d, 'missing.sock') } }] } } } }],
      },
    ],
  });
  const c = await udpClient(t);
  c.send('x', port);
  await waitFor(
    async () => {
      for (const s of (await rt.metrics()).slots) for (const l of s.metrics?.listeners ?? []) if (l.name === 'l' && (l.ended.L7_ERR_UPSTREAM_CONNECT ?? 0) === 1) return true;
      return false;
    },
    3000,
    'the session to fail with L7_ERR_UPSTREAM_CONNECT',
  );
});

test('2 workers: a worker killed while both carry Unix datagram stages; the other keeps working, the replacement serves new peers, shutdown is clean', async (t) => {
  const d = dir(t);
  dgramEcho(t, path.join(d, 'up.sock'), 'u: ');
  const port = await freePort();
  const rt = await proxy(
    t,
    {
      listeners: [
        {
          name: 'udp',
          spec: { protocol: 'UDP', port, address: '127.0.0.1' },
          rules: [{ action: { route: { destination: { spec: { protocol: 'UnixDomainSocket', type: 'dgram' }, endpoints: [{ spec: { address: path.join(d, 'up.sock') } }] } } } }],
        },
      ],
    },
    2,
  );
  // Peers until both workers have sessions (the ring spreads peers over the workers).
  const byWorker = new Map<string, Array<Awaited<ReturnType<typeof udpClient>>>>();
  for (let i = 0; i < 40 && byWorker.size < 2; i++) {
    const c = await udpClient(t);
    assert.equal((await c.request(`p${i}`, port)).toString(), `u: p${i}`);
    const s = (await sessions(rt)).find((x) => x.name.startsWith(`UDP:127.0.0.1:${c.port}-`));
    assert.ok(s !== undefined);
    const list = byWorker.get(s.workerNode) ?? [];
    list.push(c);
    byWorker.set(s.workerNode, list);
  }
  assert.equal(byWorker.size, 2, 'sessions on both workers');
  const victim = [...byWorker.keys()].find((w) => w.endsWith('1')) as string;
  const survivor = [...byWorker.keys()].find((w) => w !== victim) as string;
  await rt.thread(1)?.terminate();
  for (const c of byWorker.get(survivor) ?? []) assert.equal((await c.request('still', port)).toString(), 'u: still');
  await waitFor(() => rt.liveSlots().length === 2, 10000, 'the replacement worker');
  const fresh = await udpClient(t);
  assert.equal((await fresh.request('new', port)).toString(), 'u: new');
  await rt.shutdown();
});
