/**
 * The NATS fleet bus end to end: a real nats-server with JetStream, three `l7mp-ts --nats`
 * processes, the `apply` / `fleet` CLI as processes (issue 5, tests of item 6).
 *
 * Every node's `-c` base holds only a UDP listener on its own port whose rules name the rulelist
 * `main`; the fleet config (applied to the selector tier=edge) brings `main` and the clusters.
 * So traffic passes through a node only once the fleet config reached it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, freeTcpPort, freeUdpPort, streamEcho, tmpDir, udpEcho, UdpClient, waitFor } from '../helpers.ts';
import { cli, spawnTracked, startNats, startNode, type NatsServer, type Node } from './nats.ts';
import { execFile, type ChildProcess } from 'node:child_process';
import { BIN } from './proc.ts';
import { openBucket } from '../../fleet/agent.ts';
import { fleetNames } from '../../fleet/names.ts';
import type { Heartbeat } from '../../fleet/telemetry.ts';

const root = path.resolve(import.meta.dirname, '..', '..');

/**
 * The fleet config: rulelist `main` → UDP cluster `up-<tag>` → the echo server at `port`. A new
 * tag renames the cluster, so sessions through the old one end and the next datagram takes the
 * new route (sessions keep the route they started with). `extra` adds an unused Echo cluster: a
 * change that leaves the data path alone.
 */
function fleetConfig(port: number | string, tag: string, extra?: string): unknown {
  return {
    rulelists: [{ name: 'main', rules: [{ name: 'all', action: { route: { destination: `up-${tag}` } } }] }],
    clusters: [
      { name: `up-${tag}`, spec: { protocol: 'UDP', port }, endpoints: [{ spec: { address: '127.0.0.1' } }] },
      ...(extra !== undefined ? [{ name: extra, spec: { protocol: 'Echo' } }] : []),
    ],
  };
}

/** Every node's heartbeat, as answered to `discover` within `ms`. */
async function heartbeats(nc: NatsConnection, fleet: string, ms = 300): Promise<Heartbeat[]> {
  const it = await nc.requestMany(fleetNames(fleet).discover, '', { strategy: 'timer', maxWait: ms }).catch(() => null);
  const out: Heartbeat[] = [];
  try {
    if (it !== null) for await (const m of it) out.push(m.json<Heartbeat>());
  } catch {
    // no responders (yet): none
  }
  return out;
}

describe('fleet over NATS', () => {
  let nats: NatsServer;
  let dir: string;
  const nodes = new Map<string, Node>();
  const ports = new Map<string, number>();
  const echoes: Array<Awaited<ReturnType<typeof udpEcho>>> = [];
  let client: UdpClient;
  let nc: NatsConnection;
  const fleet = 'f1';

  const nodeArgs = (id: string): string[] => {
    const base = path.join(dir, `${id}.yaml`);
    return ['-c', base, '--nats', nats.url, '--fleet', fleet, '--labels', `tier=edge,name=${id}`, '--advertise-address', '127.0.0.1', '--state-dir', path.join(dir, `state-${id}`)];
  };
  const apply = (config: unknown, ...target: string[]) => {
    const f = path.join(dir, `apply-${Date.now()}.yaml`);
    fs.writeFileSync(f, YAML.stringify(config));
    return cli(['apply', '-f', f, '--nats', nats.url, '--fleet', fleet, ...target, '--wait-s', '15']);
  };
  /** The reply through node `id` (one try: a loss would show). */
  const via = async (id: string, msg: string, tries = 1, c = client): Promise<string> => (await c.request(msg, ports.get(id) as number, '127.0.0.1', 1000, tries)).toString();

  before(async () => {
    dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'empty.yaml'), '{}\n');
    nats = await startNats();
    for (const prefix of ['A:', 'B:', 'C:']) echoes.push(await udpEcho(prefix));
    for (const id of ['n1', 'n2', 'n3']) {
      const port = await freePort();
      ports.set(id, port);
      fs.writeFileSync(path.join(dir, `${id}.yaml`), YAML.stringify({ listeners: [{ name: 'in', spec: { protocol: 'UDP', port }, rules: 'main' }] }));
    }
    const started = await Promise.all(['n1', 'n2', 'n3'].map((id) => startNode(id, nodeArgs(id))));
    for (const n of started) nodes.set(n.id, n);
    client = await UdpClient.open();
    nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  });

  after(async () => {
    client?.close();
    await nc?.close().catch(() => {});
    await Promise.all([...nodes.values()].map((n) => n.stop()));
    await Promise.all(echoes.map((e) => e.close()));
    await nats?.stop();
  });

  test('3 nodes converge on a config applied to a selector and pass traffic; fleet status lists them', async () => {
    const r = await apply(fleetConfig(echoes[0]!.port, 'A'), '--selector', 'tier=edge');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 3, r.stdout);
    for (const [i, id] of ['n1', 'n2', 'n3'].entries()) assert.match(lines[i] as string, new RegExp(`^${id} ACK revision \\d+$`));
    for (const id of ['n1', 'n2', 'n3']) assert.equal(await via(id, `hello ${id}`), `A:hello ${id}`);

    const st = await cli(['fleet', 'status', '--nats', nats.url, '--fleet', fleet, '--json']);
    assert.equal(st.code, 0, st.stderr);
    const rows = JSON.parse(st.stdout) as Heartbeat[];
    assert.deepEqual(rows.map((x) => x.nodeId), ['n1', 'n2', 'n3']);
    const rev = Number(/revision (\d+)/.exec(lines[0] as string)?.[1]);
    for (const row of rows) {
      assert.deepEqual(row.labels, { tier: 'edge', name: row.nodeId });
      assert.equal(row.revision, rev);
      assert.equal(row.health, 'ok');
      assert.equal(typeof row.stats.sessions, 'number');
    }
    const text = await cli(['fleet', 'status', '--nats', nats.url, '--fleet', fleet]);
    assert.match(text.stdout, /^NODE\s+LABELS\s+ADDRESS\s+REVISION\s+HEALTH/);
    assert.match(text.stdout, /\nn2\s+name=n2,tier=edge\s+127\.0\.0\.1\s+\d+\s+ok/);

    // Telemetry: heartbeats and stats on their subjects; the stats count the traffic above.
    const names = fleetNames(fleet);
    const stats = await new Promise<{ listeners: Array<{ name: string; sessions: number; packets: number; bytes: number; drops: number; pps: number }> }>((resolve) => {
      const sub = nc.subscribe(names.stats('n1'), {
        callback: (_e, m) => {
          sub.unsubscribe();
          resolve(m.json());
        },
      });
    });
    const inL = stats.listeners.find((l) => l.name === 'in');
    assert.ok(inL && inL.sessions >= 1 && inL.packets >= 2 && inL.bytes > 0, JSON.stringify(stats));
    const tree = await cli(['fleet', 'actors', 'n2', '--nats', nats.url, '--fleet', fleet]);
    assert.equal(tree.code, 0, tree.stderr);
    assert.match(tree.stdout, /^process l7mp-ts/);
    assert.match(tree.stdout, /listener in .* UDP/);
  });

  test('a bad config is NACKed with the field named; the old config keeps serving', async () => {
    const r = await apply(fleetConfig('not-a-port', 'X'), '--selector', 'tier=edge');
    assert.equal(r.code, 1, r.stdout);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 3, r.stdout);
    for (const line of lines) assert.match(line, /^n\d NACK revision \d+: L7_ERR_CONFIG_INVALID selector\.[A-Za-z0-9_-]+: clusters\[0\]\.spec\.port: must be an integer .*got "not-a-port"$/);
    for (const id of ['n1', 'n2', 'n3']) assert.equal(await via(id, 'still'), 'A:still');
    const good = await apply(fleetConfig(echoes[1]!.port, 'B'), '--selector', 'tier=edge');
    assert.equal(good.code, 0, good.stdout);
    for (const id of ['n1', 'n2', 'n3']) assert.equal(await via(id, 'b', 3), 'B:b');

    // A config that validates but cannot be applied (its port is taken): NACKed by that node,
    // rolled back on every worker; the node keeps serving.
    const busy = net.createServer();
    const taken = await freeTcpPort();
    await new Promise<void>((r) => busy.listen({ port: taken, host: '127.0.0.1', exclusive: true }, () => r()));
    try {
      const r = await apply({ listeners: [{ name: 'extra', spec: { protocol: 'TCP', port: taken, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }] }, '--node', 'n1');
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stdout, new RegExp(`^n1 NACK revision \\d+: L7_ERR_LISTENER_BIND .*${taken}`));
      assert.equal(await via('n1', 'bound'), 'B:bound');
    } finally {
      await new Promise<void>((r) => busy.close(() => r()));
    }
    const cleared = await cli(['apply', '-f', path.join(dir, 'empty.yaml'), '--nats', nats.url, '--fleet', fleet, '--node', 'n1']);
    assert.equal(cleared.code, 0, cleared.stdout);
  });

  test('nats-server down 10 s: no data-plane loss, a node restarted meanwhile serves its state dir, re-converged (resync, then a new change) within 2 s each', async (t) => {
    const names = fleetNames(fleet);
    // Each node's revision before the outage (n1's is higher: it also watches node.n1).
    const before = new Map((await heartbeats(nc, fleet)).map((h) => [h.nodeId, h.revision]));
    assert.equal(before.size, 3);
    // Steady traffic through two nodes during the outage, one datagram at a time, no retries.
    let stop = false;
    let sent = 0;
    const lost: string[] = [];
    const own = await UdpClient.open();
    const traffic = (async () => {
      for (let i = 0; !stop && i < 5000; i++) {
        for (const id of ['n1', 'n2']) {
          sent++;
          try {
            const reply = await via(id, `t${i}`, 1, own);
            if (reply !== `B:t${i}`) lost.push(`${id}: ${reply}`);
          } catch (e) {
            lost.push(`${id}: ${(e as Error).message}`);
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
    const t0 = Date.now();
    await nats.stop('SIGKILL');
    // n3 restarts while the bus is away: it serves the config kept in its state dir.
    await nodes.get('n3')!.stop();
    nodes.set('n3', await startNode('n3', nodeArgs('n3')));
    assert.equal(await via('n3', 'from state', 3), 'B:from state');
    await new Promise((r) => setTimeout(r, Math.max(0, 10_000 - (Date.now() - t0))));
    // Any KV read finished after this moment is a resync (the server was down until now).
    const restarted = new Date().toISOString();
    await nats.start();
    const back = Date.now();
    // Every node reconnects and resyncs from KV: it re-announces its revision (status published
    // before the outage, or during it, is not relied on).
    await waitFor(async () => (await heartbeats(nc, fleet, 200)).filter((h) => h.revision === before.get(h.nodeId) && h.last?.ok && (h.synced ?? '') > restarted).length === 3, 2000, 'all nodes resynced from KV within 2 s');
    const reconnected = Date.now() - back;
    // A change written after the restart: every node picks it up (a change that keeps the data path).
    const kv = (await waitFor(async () => openBucket(nc, names).catch(() => null), 10_000, 'KV after the restart')) as Awaited<ReturnType<typeof openBucket>>;
    const { formatLabels } = await import('../../fleet/labels.ts');
    const written = Date.now();
    const rev = await kv.put(names.selectorKey(formatLabels({ tier: 'edge' })), JSON.stringify({ selector: { matchLabels: { tier: 'edge' } }, config: fleetConfig(echoes[1]!.port, 'B', 'marker') }));
    await waitFor(async () => (await heartbeats(nc, fleet, 150)).filter((h) => h.revision >= rev && h.last?.ok).length === 3, 2000, 'all nodes at the new revision within 2 s');
    const converged = Date.now() - written;
    stop = true;
    await traffic;
    t.diagnostic(`outage: ${sent} datagrams through 2 proxies over 10 s down + restart, ${lost.length} lost; all 3 nodes resynced ${reconnected} ms after nats-server was back; a change written then applied by all 3 in ${converged} ms`);
    assert.deepEqual(lost, []);
    assert.ok(sent > 100, `only ${sent} datagrams sent`);
    for (const id of ['n1', 'n2', 'n3']) assert.equal(await via(id, 'c'), 'B:c');
    } finally {
      stop = true;
      await traffic;
      own.close();
    }
  });

  test('a node restarted with an empty state dir gets its config back from KV', async () => {
    const rev = (await heartbeats(nc, fleet)).find((h) => h.nodeId === 'n2')?.revision;
    assert.ok(rev !== undefined && rev > 0);
    await nodes.get('n2')!.stop();
    fs.rmSync(path.join(dir, 'state-n2'), { recursive: true, force: true });
    nodes.set('n2', await startNode('n2', nodeArgs('n2')));
    const reply = await waitFor(() => via('n2', 'again').catch(() => ''), 10_000, 'n2 serving again');
    assert.equal(reply, 'B:again');
    const n2 = (await waitFor(async () => (await heartbeats(nc, fleet)).find((h) => h.nodeId === 'n2' && h.last !== null), 5000, 'n2 to report')) as Heartbeat;
    assert.equal(n2.revision, rev);
    assert.equal(n2.last?.ok, true);
    assert.ok(fs.existsSync(path.join(dir, 'state-n2', 'applied.json')));
  });

  test('one config queue: a REST change on a fleet node is local until the next fleet change replaces it; an endpoint the fleet removes moves its sessions', async () => {
    const a = await udpEcho('A:', '127.0.0.1');
    const b = await udpEcho('B:', '127.0.0.2', a.port);
    const port = await freePort();
    const adminPort = await freeTcpPort();
    const api = async (method: string, p: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
      const res = await fetch(`http://127.0.0.1:${adminPort}${p}`, {
        method,
        ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(10_000),
      });
      return { status: res.status, json: await res.json() };
    };
    const names = async (p: string): Promise<string[]> => ((await api('GET', p)).json as Array<{ name: string }>).map((x) => x.name);
    const config = (...eps: Array<[string, string]>) => ({
      listeners: [{ name: 'lab', spec: { protocol: 'UDP', port }, rules: [{ action: { route: { destination: 'up', retry: { retry_on: 'disconnect', num_retries: 2, timeout: 1000 } } } }] }],
      clusters: [{ name: 'up', spec: { protocol: 'UDP', port: a.port }, endpoints: eps.map(([name, address]) => ({ name, spec: { address } })) }],
    });
    const own = await UdpClient.open();
    try {
      // Not tier=edge: only its node key configures it.
      nodes.set('n4', await startNode('n4', ['-c', path.join(dir, 'empty.yaml'), '--nats', nats.url, '--fleet', fleet, '--labels', 'tier=lab', '--advertise-address', '127.0.0.1', '--admin', `127.0.0.1:${adminPort}`]));
      const first = await apply(config(['ep-a', '127.0.0.1'], ['ep-b', '127.0.0.2']), '--node', 'n4');
      assert.equal(first.code, 0, first.stdout + first.stderr);
      assert.equal((await own.request('1', port, '127.0.0.1', 1000, 3)).toString(), 'A:1');
      const sessions = await names('/api/v1/sessions');
      assert.equal(sessions.length, 1);

      // A REST change on the node: served, and shown by the API next to the fleet's objects.
      const added = await api('POST', '/api/v1/clusters', { cluster: { name: 'local', spec: { protocol: 'Echo' } } });
      assert.equal(added.status, 200, JSON.stringify(added.json));
      assert.deepEqual(await names('/api/v1/clusters'), ['up', 'local']);

      // The next fleet change replaces the whole config (the REST change goes), and ep-a, gone
      // from it, has its session moved to ep-b: the same session answers from B.
      const second = await apply(config(['ep-b', '127.0.0.2']), '--node', 'n4');
      assert.equal(second.code, 0, second.stdout + second.stderr);
      assert.match(second.stdout, /^n4 ACK revision \d+$/m);
      assert.deepEqual(await names('/api/v1/clusters'), ['up']);
      assert.deepEqual(await names('/api/v1/endpoints'), ['ep-b']);
      assert.equal((await own.request('2', port, '127.0.0.1', 1000, 1)).toString(), 'B:2');
      assert.deepEqual(await names('/api/v1/sessions'), sessions, 'it is the same session');
    } finally {
      own.close();
      await nodes.get('n4')?.stop();
      nodes.delete('n4');
      await a.close();
      await b.close();
    }
  });
});

describe('the seed task as l7mp CRDs over a fleet of 3', () => {
  let nats: NatsServer;
  const nodes: Node[] = [];
  let controller: ChildProcess | undefined;
  after(async () => {
    if (controller && controller.exitCode === null) {
      const c = controller;
      await new Promise((r) => {
        const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
        c.once('exit', () => {
          clearTimeout(t);
          r(undefined);
        });
        c.kill('SIGTERM');
      });
    }
    await Promise.all(nodes.map((n) => n.stop()));
    await nats?.stop();
  });

  test('app=l7mp-ingress, app=transcoder, app=worker: UDP → WebSocket → UDS transcoder → UDP worker and back; the controller follows a worker that is replaced', async (t) => {
    const t0 = Date.now();
    nats = await startNats();
    const dir = tmpDir();
    const sock = path.join(dir, 'uds-echo.sock');
    const gwPort = await freePort();
    const wsPort = await freeTcpPort();
    const workerPort = await freeUdpPort('127.0.0.2');
    const worker = await udpEcho('Echo on worker-1: ', '127.0.0.2', workerPort);
    const app = await streamEcho({ path: sock }, 'Transcoded on transcoder-1: ');
    const crds = fs
      .readFileSync(path.join(root, 'examples', 'seed-task', 'crds.yaml'), 'utf8')
      .replaceAll('port: 9001', `port: ${gwPort}`)
      .replaceAll('port: 8888', `port: ${wsPort}`)
      .replaceAll('port: 9999', `port: ${workerPort}`)
      .replaceAll('/tmp/uds-echo.sock', sock);
    const file = path.join(dir, 'crds.yaml');
    fs.writeFileSync(file, crds);
    const common = ['--nats', nats.url, '--fleet', 'seed'];
    nodes.push(
      ...(await Promise.all([
        startNode('ingress', [...common, '--labels', 'app=l7mp-ingress', '--advertise-address', '127.0.0.1']),
        startNode('transcoder', [...common, '--labels', 'app=transcoder', '--advertise-address', '127.0.0.1']),
        startNode('worker', [...common, '--labels', 'app=worker', '--advertise-address', '127.0.0.2']),
      ])),
    );
    controller = spawnTracked(['fleet', 'controller', ...common, '--interval-s', '0.5', '--expire-s', '3']);
    let clog = '';
    controller.stderr?.on('data', (d: Buffer) => (clog += d.toString()));
    await waitFor(() => clog.includes('fleet controller connected'), 30_000, 'the controller');
    const client = await UdpClient.open();
    t.diagnostic(`fleet of 3 and the controller up after ${Date.now() - t0} ms`);
    try {
      const r = await cli(['apply', '-f', file, ...common, '--wait-s', '15']);
      t.diagnostic(`apply done after ${Date.now() - t0} ms`);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^ingress ACK revision \d+\ntranscoder ACK revision \d+\nworker ACK revision \d+\n$/);
      for (let i = 0; i < 3; i++) {
        const reply = (await client.request(`message ${i}`, gwPort, '127.0.0.1', 2000, 3)).toString();
        assert.equal(reply, `Echo on worker-1: Transcoded on transcoder-1: message ${i}`);
      }
      t.diagnostic(`traffic passed after ${Date.now() - t0} ms`);
      // The controller follows the inventory: the worker node goes, another one (another id and
      // address) comes; the ingress's udp-cluster endpoints follow, new sessions reach the new worker.
      const w2 = await udpEcho('Echo on worker-2: ', '127.0.0.3', workerPort);
      try {
        await Promise.all(nodes.splice(2, 1).map((n) => n.stop()));
        nodes.push(await startNode('worker-2', [...common, '--labels', 'app=worker', '--advertise-address', '127.0.0.3']));
        const reply = await waitFor(
          async () => {
            const c = await UdpClient.open();
            try {
              const r = (await c.request('moved', gwPort, '127.0.0.1', 1000, 1)).toString();
              return r.startsWith('Echo on worker-2: ') ? r : null;
            } catch {
              return null;
            } finally {
              c.close();
            }
          },
          30_000,
          'the ingress to reach worker-2',
        );
        assert.equal(reply, 'Echo on worker-2: Transcoded on transcoder-1: moved');
        t.diagnostic(`controller moved the endpoint after ${Date.now() - t0} ms`);
      } finally {
        await w2.close();
      }
      // A bad CRD is refused by the compiler before anything is written, naming the field.
      fs.writeFileSync(file, crds.replace('destinationRef: /apis/l7mp.io/v1/namespaces/default/targets/uds-cluster', 'destinationRef: /apis/l7mp.io/v1/namespaces/default/targets/nope'));
      const bad = await cli(['apply', '-f', file, ...common, '--wait-s', '5']);
      t.diagnostic(`bad apply refused after ${Date.now() - t0} ms`);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /VirtualService default\/transcoder-vsvc: spec\.listener\.rules\[0\]\.action\.route\.destinationRef: Target "default\/nope" is not defined/);
    } finally {
      client.close();
      // The proxies first: the app's server.close() waits for the transcoder's connection to end.
      await Promise.all(nodes.splice(0).map((n) => n.stop()));
      await Promise.all([worker.close(), app.close()]);
    }
  });
});

test('fleet flags: clear errors, exit 1', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['-c', 'x.yaml', '--fleet', 'a'], /--fleet needs --nats/],
    [['--nats', 'nats://127.0.0.1:1', '--node-id', 'a.b'], /--node-id: must be 1\.\.64 letters, digits, '_' or '-', got "a\.b"/],
    [['--nats', 'nats://127.0.0.1:1', '--labels', 'app'], /--labels: each item must be key=value/],
    [['--nats', 'nats://127.0.0.1:1', '--nats-user', 'u', '--nats-token', 't'], /exclude each other/],
    [['apply', '-f', 'x.yaml', '--nats', 'nats://127.0.0.1:1', '--node', 'a', '--selector', 'b=c'], /--node and --selector exclude each other/],
    [['apply', '--nats', 'nats://127.0.0.1:1'], /-f FILE is required/],
    [['fleet', 'actors', '--nats', 'nats://127.0.0.1:1'], /actors: the NODE argument is required/],
    [['fleet', 'status', '--nats', 'nats://127.0.0.1:1'], /cannot connect to NATS/],
  ];
  const results = await Promise.all(cases.map(([args]) => cli(args, 30_000)));
  results.forEach((r, i) => {
    assert.equal(r.code, 1, `${cases[i]![0].join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, cases[i]![1]);
  });
});

test('NATS user/password: a node with the right credentials joins; a wrong password leaves the node serving its local config', async () => {
  const nats = await startNats(['--user', 'l7', '--pass', 's3cret']);
  const dir = tmpDir();
  const port = await freePort();
  const base = path.join(dir, 'base.yaml');
  fs.writeFileSync(base, YAML.stringify({ listeners: [{ name: 'e', spec: { protocol: 'UDP', port }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }] }));
  const started: Node[] = [];
  const client = await UdpClient.open();
  try {
    const [good, bad] = (await Promise.all([
      startNode('authed', ['--nats', nats.url, '--nats-user', 'l7', '--nats-password', 's3cret']),
      startNode('denied', ['-c', base, '--nats', nats.url, '--nats-user', 'l7', '--nats-password', 'wrong']),
    ])) as [Node, Node];
    started.push(good, bad);
    const env = { ...process.env, L7MP_NATS_PASSWORD: 's3cret' };
    const st = await waitFor(
      async () => {
        const r = await new Promise<{ code: number; stdout: string }>((resolve) =>
          execFile(BIN, ['fleet', 'status', '--json', '--nats', nats.url, '--nats-user', 'l7'], { env, timeout: 30_000 }, (e, stdout) => resolve({ code: e ? 1 : 0, stdout })),
        );
        return r.code === 0 && (JSON.parse(r.stdout) as Heartbeat[]).length > 0 ? r : null;
      },
      20_000,
      'the authenticated node in fleet status',
    );
    assert.deepEqual((JSON.parse(st!.stdout) as Heartbeat[]).map((h) => h.nodeId), ['authed']);
    const anon = await cli(['fleet', 'status', '--nats', nats.url]);
    assert.equal(anon.code, 1);
    assert.match(anon.stderr, /Authorization Violation/i);
    assert.equal((await client.request('local', port, '127.0.0.1', 1000, 3)).toString(), 'local');
    await waitFor(() => /"err":"Authorization Violation"[^\n]*NATS connect failed/.test(bad.stderr()), 20_000, 'the denied node to log the auth error');
    assert.doesNotMatch(good.stderr() + bad.stderr(), /s3cret|wrong/);
  } finally {
    client.close();
    await Promise.all(started.map((n) => n.stop()));
    await nats.stop();
  }
});
