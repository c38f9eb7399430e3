/**
 * Sync broadcast domains over real UDP sockets on 2 workers: fan-out to every other member (never
 * back to the sender), separate domains, a session with no value at `query` fails, removing the
 * cluster ends its members, and a domain survives its owner worker being killed and replaced.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startProxy, UdpClient, waitFor } from '../helpers.ts';
import { normalize } from '../../cluster-config/normalize.ts';
import { WorkerRing } from '../../runtime/ring.ts';
import type { Runtime } from '../../runtime/main/runtime.ts';
import type { ActorNode } from '../../actors/tree.ts';

/** A UDP listener on `port` whose sessions get `labels/room = room` and go to the Sync cluster `sync`. */
function room(name: string, port: number, value: unknown): unknown {
  return {
    name,
    spec: { protocol: 'UDP', port, address: '127.0.0.1' },
    rules: [{ action: { rewrite: value === undefined ? [] : [{ path: 'labels/room', value }], route: { destination: 'sync' } } }],
  };
}

function config(listeners: unknown[]): unknown {
  return { listeners, clusters: [{ name: 'sync', spec: { protocol: 'Sync', query: '/labels/room' } }] };
}

function sessions(tree: ActorNode): Array<{ id: string; name: string; worker: number; status: string }> {
  const out: Array<{ id: string; name: string; worker: number; status: string }> = [];
  const walk = (n: ActorNode): void => {
    if (n.kind === 'session') out.push({ id: n.id, name: n.name, worker: n.worker as number, status: String(n.status) });
    n.children.forEach(walk);
  };
  walk(tree);
  return out;
}

async function connected(rt: Runtime, n: number): Promise<void> {
  await waitFor(async () => {
    const s = sessions(await rt.tree());
    return s.length === n && s.every((x) => x.status === 'CONNECTED');
  }, 5000, `${n} connected sessions`);
}

/** Sum of a cluster counter over the workers. */
async function clusterCount(rt: Runtime, cluster: string, counter: string): Promise<number> {
  return (await rt.stats()).reduce((a, s) => a + (s.clusters[cluster]?.[counter] ?? 0), 0);
}

/** A client whose peer address the ring gives to `worker` (of 2). */
async function clientOn(worker: number): Promise<UdpClient> {
  const ring = new WorkerRing([0, 1]);
  for (let i = 0; i < 64; i++) {
    const c = await UdpClient.open();
    if (ring.owner(`127.0.0.1:${c.port}`) === worker) return c;
    c.close();
  }
  throw new Error(`no client port for worker ${worker}`);
}

test('Sync: every other member of the domain gets each message, across workers; the sender never does; domains are separate', async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  const rt = await startProxy(config([room('r1', p1, 'one'), room('r2', p2, 'two')]), 2);
  const x = await clientOn(0);
  const y = await clientOn(1);
  const z = await clientOn(0);
  const other = await clientOn(1);
  try {
    x.send('x joins', p1);
    await connected(rt, 1);
    y.send('y joins', p1);
    assert.equal((await x.recv()).toString(), 'y joins');
    await connected(rt, 2);
    z.send('z joins', p1);
    assert.equal((await x.recv()).toString(), 'z joins');
    assert.equal((await y.recv()).toString(), 'z joins');
    other.send('other room', p2);
    await connected(rt, 4);
    for (const [from, to] of [[x, [y, z]], [y, [x, z]], [z, [x, y]]] as const) {
      for (let i = 0; i < 10; i++) from.send(`from ${from.port} #${i}`, p1);
      for (const c of to) for (let i = 0; i < 10; i++) assert.equal((await c.recv()).toString(), `from ${from.port} #${i}`);
    }
    other.send('anyone?', p2);
    await assert.rejects(Promise.any([x.recv(300), y.recv(300), z.recv(300), other.recv(300)]));
    assert.ok((await clusterCount(rt, 'sync', 'sync_forwarded')) > 0, 'messages crossed workers');
    assert.ok((await clusterCount(rt, 'sync', 'sync_unheard')) >= 2, 'alone-in-domain messages counted');
  } finally {
    [x, y, z, other].forEach((c) => c.close());
    await rt.shutdown();
  }
});

test('Sync: a session with no value at query fails; removing the cluster ends its members', async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  const rt = await startProxy(config([room('r1', p1, 7), room('none', p2, undefined)]), 2);
  const a = await clientOn(0);
  const b = await clientOn(1);
  const c = await UdpClient.open();
  try {
    c.send('no label', p2);
    await waitFor(async () => {
      const m = await rt.metrics();
      return m.slots.some((s) => (s.metrics?.listeners.find((l) => l.name === 'none')?.ended.L7_ERR_UPSTREAM_CONNECT ?? 0) > 0);
    }, 3000, 'the unlabelled session failed');
    a.send('a', p1);
    await connected(rt, 1);
    b.send('b', p1);
    assert.equal((await a.recv()).toString(), 'b');
    await connected(rt, 2);
    // A new config without the Sync cluster (and its routes' destination now a Discard) ends both.
    const next = normalize({
      listeners: [room('r1', p1, 7), room('none', p2, undefined)],
      clusters: [{ name: 'sync2', spec: { protocol: 'Sync', query: '/labels/room' } }],
    });
    await rt.apply(next);
    await waitFor(async () => sessions(await rt.tree()).length === 0, 3000, 'members ended');
    const ended = (await rt.metrics()).slots.reduce((n, s) => n + (s.metrics?.listeners.find((l) => l.name === 'r1')?.ended.L7_ERR_SESSION_STOPPED ?? 0), 0);
    assert.equal(ended, 2);
  } finally {
    [a, b, c].forEach((x) => x.close());
    await rt.shutdown();
  }
});

test('Sync: the domain owner worker is killed and replaced; members on the other worker are bridged to new members on it', async () => {
  const port = await freePort();
  const ring = new WorkerRing([0, 1]);
  // A room value whose domain worker 0 owns.
  let value = '';
  for (let i = 0; i < 100 && value === ''; i++) if (ring.owner(`sync/${JSON.stringify(`room${i}`)}`) === 0) value = `room${i}`;
  assert.notEqual(value, '');
  const rt = await startProxy(config([room('r', port, value)]), 2);
  const x = await clientOn(1);
  const y = await clientOn(0);
  try {
    x.send('x joins', port);
    await connected(rt, 1);
    y.send('y joins', port);
    assert.equal((await x.recv()).toString(), 'y joins');
    x.send('hello y', port);
    assert.equal((await y.recv()).toString(), 'hello y');

    const replaced = new Promise<number>((resolve) => rt.once('workerReady', (slot: number) => resolve(slot)));
    await rt.thread(0)?.terminate();
    assert.equal(await replaced, 0);
    // Each worker takes control calls in order: once stats answer, both run on the new ring.
    await rt.stats();
    const y2 = await clientOn(0);
    y2.send('y2 joins', port);
    assert.equal((await x.recv()).toString(), 'y2 joins');
    const s = sessions(await rt.tree());
    assert.deepEqual(s.map((n) => n.worker).sort(), [0, 1], 'one member on each worker');
    x.send('hello y2', port);
    assert.equal((await y2.recv()).toString(), 'hello y2');
    y2.close();
  } finally {
    x.close();
    y.close();
    await rt.shutdown();
  }
});

test('Sync over WebSocket (l7mp-sync-test.yaml): clients with the same id header are cross-connected, a third is not', async () => {
  const { WebSocket } = await import('ws');
  const port = await freePort();
  const rt = await startProxy(
    {
      listeners: [{ name: 'ws', spec: { protocol: 'WebSocket', port }, rules: [{ action: { route: { destination: 'sync' } } }] }],
      clusters: [{ name: 'sync', spec: { protocol: 'Sync', query: '/HTTP/headers/id' } }],
    },
    2,
  );
  const open = async (id: string) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { id } });
    const got: string[] = [];
    ws.on('message', (d: Buffer) => got.push(d.toString()));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return { ws, got };
  };
  const clients = [await open('a'), await open('a'), await open('b')];
  try {
    await connected(rt, 3);
    const [c1, c2, c3] = clients as [(typeof clients)[0], (typeof clients)[0], (typeof clients)[0]];
    c1.ws.send('one');
    c2.ws.send('two');
    c3.ws.send('three');
    await waitFor(() => c1.got.length === 1 && c2.got.length === 1, 3000, 'the two a clients to hear each other');
    assert.deepEqual([c1.got, c2.got], [['two'], ['one']]);
    // b is alone in its domain: its message is counted as heard by no one, and nobody got it.
    await waitFor(async () => (await clusterCount(rt, 'sync', 'sync_unheard')) === 1, 3000, "b's message counted as unheard");
    assert.deepEqual([c1.got, c2.got, c3.got], [['two'], ['one'], []]);
  } finally {
    clients.forEach((c) => c.ws.close());
    await rt.shutdown();
  }
});
