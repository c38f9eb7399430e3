/**
 * l7mp's UDP back-to-back example (examples/l7mp-udp-udp.yaml, the scenario of l7mp's
 * config/l7mp-udp-udp.yaml) run by `bin/l7mp-ts --workers 2`, with only the ports and the access
 * log path rewritten: two UDP peers whose sessions live on different workers (pinned by the hash
 * ring) are bridged through the Sync cluster both ways, byte for byte; a member that leaves stops
 * receiving, and a peer that comes back joins again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { freePort, freeTcpPort, tmpDir, UdpClient, waitFor } from '../helpers.ts';
import { readExample, startProcess } from './proc.ts';
import { WorkerRing } from '../../runtime/ring.ts';
import type { ActorNode } from '../../actors/tree.ts';

interface SessionNode {
  id: string;
  name: string;
  worker: number;
  status: string;
}

function sessions(tree: ActorNode): SessionNode[] {
  const out: SessionNode[] = [];
  const walk = (n: ActorNode): void => {
    if (n.kind === 'session') out.push({ id: n.id, name: n.name, worker: n.worker as number, status: String(n.status) });
    n.children.forEach(walk);
  };
  walk(tree);
  return out;
}

/** Open UDP clients until one is owned by each of workers 0 and 1 (bounded). */
async function clientsOnBothWorkers(): Promise<[UdpClient, UdpClient]> {
  const ring = new WorkerRing([0, 1]);
  const found: Array<UdpClient | undefined> = [undefined, undefined];
  const spare: UdpClient[] = [];
  for (let i = 0; i < 64 && (found[0] === undefined || found[1] === undefined); i++) {
    const c = await UdpClient.open();
    const w = ring.owner(`127.0.0.1:${c.port}`);
    if (found[w] === undefined) found[w] = c;
    else spare.push(c);
  }
  spare.forEach((c) => c.close());
  assert.ok(found[0] !== undefined && found[1] !== undefined, 'found a client port for each worker');
  return [found[0], found[1]];
}

/** A datagram with every byte value, tagged. */
function payload(tag: string): Buffer {
  return Buffer.concat([Buffer.from(`${tag}:`), Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from([0, 0, 255])]);
}

test('l7mp-udp-udp example with --workers 2: peers on different workers are bridged both ways; a member leaves and rejoins', async () => {
  const dir = tmpDir();
  const [p1, p2, admin] = [await freePort(), await freePort(), await freeTcpPort()];
  const cfg = readExample('l7mp-udp-udp.yaml');
  cfg.listeners[0].spec.port = p1;
  cfg.listeners[1].spec.port = p2;
  cfg.admin.access_log_path = path.join(dir, 'access.log');
  const proxy = await startProcess(cfg, path.join(dir, 'udp-udp.yaml'), ['--workers', '2', '--admin', `127.0.0.1:${admin}`]);
  const api = async (method: string, p: string): Promise<any> => {
    const r = await fetch(`http://127.0.0.1:${admin}${p}`, { method });
    return r.headers.get('content-type')?.includes('json') ? r.json() : r.text();
  };
  const [a, b] = await clientsOnBothWorkers();
  try {
    // A joins alone (its first datagram reaches no one); then B's first datagram reaches A.
    const connected = async (n: number): Promise<SessionNode[]> =>
      (await waitFor(async () => {
        const s = sessions(await api('GET', '/api/v1/actors'));
        return s.length === n && s.every((x) => x.status === 'CONNECTED') ? s : null;
      }, 5000, `${n} connected sessions`)) as SessionNode[];
    a.send('join a', p1);
    await connected(1);
    b.send('join b', p2);
    assert.equal((await a.recv(2000)).toString(), 'join b');
    const live = await connected(2);
    const workerOf = (c: UdpClient): number => (live.find((s) => s.name.includes(`:${c.port}-`)) as SessionNode).worker;
    assert.equal(workerOf(a), 0);
    assert.equal(workerOf(b), 1);

    // Bridged both ways, byte for byte, several datagrams in order.
    for (let i = 0; i < 5; i++) {
      a.send(payload(`a${i}`), p1);
      assert.deepEqual(await b.recv(2000), payload(`a${i}`));
      b.send(payload(`b${i}`), p2);
      assert.deepEqual(await a.recv(2000), payload(`b${i}`));
    }
    for (let i = 0; i < 20; i++) a.send(`burst ${i}`, p1);
    for (let i = 0; i < 20; i++) assert.equal((await b.recv(2000)).toString(), `burst ${i}`);

    // The datagrams crossed between the workers through the Sync cluster messages.
    const metrics = await api('GET', '/metrics');
    assert.match(metrics, /l7mp_cluster_events_total\{[^}]*clusterName="sync"[^}]*event="sync_forwarded"[^}]*\} [1-9]/);
    assert.match(metrics, /l7mp_cluster_events_total\{[^}]*clusterName="sync"[^}]*event="sync_received"[^}]*\} [1-9]/);

    // B's session ends (deleted through the API): A now talks to nobody, and that is counted.
    const bs = live.find((s) => s.name.includes(`:${b.port}-`)) as SessionNode;
    const del = await api('DELETE', `/api/v1/actors/${bs.id}`);
    assert.equal(del.status, 200);
    await waitFor(async () => sessions(await api('GET', '/api/v1/actors')).length === 1, 3000, 'B session gone');
    a.send('to nobody', p1);
    await waitFor(async () => /l7mp_cluster_dropped_packets_total\{[^}]*clusterName="sync"[^}]*reason="sync_unheard"[^}]*\} [1-9]/.test(await api('GET', '/metrics')), 3000, 'an unheard datagram counted');
    await assert.rejects(b.recv(300), /no UDP reply/);

    // B comes back from the same port: a new session joins the domain and is bridged again.
    b.send('join b again', p2);
    assert.equal((await a.recv(2000)).toString(), 'join b again');
    await connected(2);
    a.send(payload('after'), p1);
    assert.deepEqual(await b.recv(2000), payload('after'));
    b.send(payload('back'), p2);
    assert.deepEqual(await a.recv(2000), payload('back'));
  } finally {
    a.close();
    b.close();
    const exit = await proxy.stop();
    assert.equal(exit.code, 0, proxy.stderr());
  }
});
