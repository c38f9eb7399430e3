/**
 * The seed task (the l7mp walk-through of README, "Fleet walk-through", as static configs) end to end with two l7mp-ts processes started from
 * the static configs in examples/seed-task/ (ports and socket path rewritten to free ones):
 * UDP gateway → ingress chain through a WebSocket cluster to the transcoder sidecar (WebSocket
 * listener → Unix socket cluster → a Unix-socket echo app) → UDP cluster of 2 worker echo servers
 * (ConsistentHash) → reply to the client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { freePort, freeTcpPort, freeUdpPort, streamEcho, tmpDir, udpEcho, UdpClient } from '../helpers.ts';
import { readExample, startProcess, type Proxy } from './proc.ts';

async function seedTask(workers: number): Promise<void> {
  const dir = tmpDir();
  const sock = path.join(dir, 'uds-echo.sock');
  const gwPort = await freePort();
  const wsPort = await freeTcpPort();
  // Two worker echo servers on 127.0.0.2 and 127.0.0.3, one port (a UDP cluster has one port).
  let workerPort = await freeUdpPort('127.0.0.2');
  const w1 = await udpEcho('Echo on worker-1: ', '127.0.0.2', workerPort);
  const w2 = await udpEcho('Echo on worker-2: ', '127.0.0.3', workerPort).catch(async () => {
    await w1.close();
    throw new Error('port clash on 127.0.0.3; rerun');
  });
  workerPort = w1.port;
  const app = await streamEcho({ path: sock }, 'Transcoded on transcoder-1: ');

  const gw = readExample('seed-task/gateway.yaml');
  gw.listeners[0].spec.port = gwPort;
  gw.clusters[0].spec.port = wsPort;
  gw.clusters[1].spec.port = workerPort;
  const tc = readExample('seed-task/transcoder.yaml');
  tc.listeners[0].spec.port = wsPort;
  tc.clusters[0].endpoints[0].spec.address = sock;

  const procs: Proxy[] = [];
  const clients: UdpClient[] = [];
  try {
    procs.push(await startProcess(tc, path.join(dir, 'transcoder.yaml'), ['--workers', String(workers)]));
    procs.push(await startProcess(gw, path.join(dir, 'gateway.yaml'), ['--workers', String(workers)]));
    for (let i = 0; i < 10; i++) clients.push(await UdpClient.open());
    const workerOf = new Map<number, string>();
    // 10 concurrent clients, 3 messages each, one in flight per client (UDS is a byte stream).
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = 0; k < 3; k++) {
          const msg = `client ${i} message ${k}`;
          const reply = (await c.request(msg, gwPort, '127.0.0.1', 2000, 3)).toString();
          const m = /^Echo on (worker-[12]): Transcoded on transcoder-1: (.*)$/s.exec(reply);
          assert.ok(m, `unexpected reply ${JSON.stringify(reply)}`);
          assert.equal(m[2], msg);
          const w = m[1] as string;
          if (!workerOf.has(i)) workerOf.set(i, w);
          assert.equal(w, workerOf.get(i), `client ${i} moved from ${workerOf.get(i)} to ${w}`);
        }
      }),
    );
    assert.equal(workerOf.size, 10);
    assert.equal(w1.received + w2.received, 30);
    assert.equal(app.connections, 10, 'one transcoder connection per session');
  } finally {
    clients.forEach((c) => c.close());
    const exits = await Promise.all(procs.map((p) => p.stop()));
    for (const e of exits) assert.equal(e.code, 0);
    await Promise.all([w1.close(), w2.close(), app.close()]);
  }
}

test('seed task end to end, --workers 1', () => seedTask(1));
test('seed task end to end, --workers 2', () => seedTask(2));
