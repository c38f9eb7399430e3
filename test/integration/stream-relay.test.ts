/**
 * Byte streams through the session's hops with recycled read buffers (protocols/stream/read-buffer.ts):
 * bulk data comes through intact while writes queue behind a receiver that stopped reading (a
 * buffer under a queued write must not be read into again), backpressure bounds what the proxy
 * takes in meanwhile, the byte counters are exact, and the FIN still follows the data. TCP and
 * Unix stream sockets (both read through the same code).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { freeTcpPort, tmpDir, waitFor } from '../helpers.ts';
import { closing, proxy, sessions, waitTotals } from './proto-helpers.ts';

/** Offered by the client, in chunks of varied sizes (1 B .. 200 KiB). Unit: bytes. */
const TOTAL = 32 * 1024 * 1024;
/** What the proxy may have taken in while the upstream reads nothing: kernel buffers plus its own high-water mark. */
const IN_FLIGHT_BOUND = 16 * 1024 * 1024;

interface Side {
  rx_bytes: number;
  tx_bytes: number;
}

/** An upstream that reads nothing until `start()`, then echoes slowly with backpressure and answers a FIN with its own. */
async function pausedEcho(t: import('node:test').TestContext, listen: net.ListenOptions): Promise<{ server: net.Server; start(): void; received: number }> {
  let sock: net.Socket | null = null;
  let started = false;
  const state = {
    server: net.createServer({ allowHalfOpen: true }, (s) => {
      sock = s;
      s.on('error', () => {});
      s.pause();
      if (started) state.start();
    }),
    received: 0,
    start(): void {
      started = true;
      const s = sock;
      if (s === null) return;
      // A slow reader: a pause of 1 ms after every 64 KiB, so that the proxy's writes towards it
      // keep going out in parts while the proxy reads on.
      let burst = 0;
      let waiting = 0;
      const resume = (): void => {
        if (--waiting === 0) s.resume();
      };
      s.on('data', (d: Buffer) => {
        state.received += d.length;
        burst += d.length;
        if (!s.write(d)) {
          waiting++;
          s.pause();
          s.once('drain', resume);
        }
        if (burst >= 65536) {
          burst = 0;
          waiting++;
          s.pause();
          setTimeout(resume, 1);
        }
      });
      s.on('end', () => s.end());
      s.resume();
    },
  };
  await new Promise<void>((resolve) => state.server.listen(listen, resolve));
  return closing(t, state, (x) => {
    (sock as net.Socket | null)?.destroy();
    return new Promise<void>((r) => x.server.close(() => r()));
  });
}

function chunks(): Buffer[] {
  const out: Buffer[] = [];
  const rnd = crypto.randomBytes(TOTAL);
  let off = 0;
  let i = 0;
  while (off < TOTAL) {
    const size = Math.min(TOTAL - off, [1, 100, 4096, 4097, 65536, 200_000, 70_000, 3000][i++ % 8] as number);
    out.push(rnd.subarray(off, off + size));
    off += size;
  }
  return out;
}

for (const kind of ['TCP', 'UnixDomainSocket'] as const) {
  test(`${kind} → ${kind}: 32 MiB echoed intact while the upstream first reads nothing; backpressure bounds the proxy's intake; exact byte counters; the FIN follows the data`, async (t) => {
    const dir = tmpDir();
    const upListen: net.ListenOptions = kind === 'TCP' ? { port: 0, host: '127.0.0.1' } : { path: path.join(dir, 'up.sock') };
    const up = await pausedEcho(t, upListen);
    const upPort = kind === 'TCP' ? (up.server.address() as net.AddressInfo).port : 0;
    const lport = kind === 'TCP' ? await freeTcpPort() : 0;
    const lpath = path.join(dir, 'l.sock');
    const listener = kind === 'TCP' ? { protocol: 'TCP', port: lport, address: '127.0.0.1' } : { protocol: 'UnixDomainSocket', filename: lpath };
    const cluster = kind === 'TCP' ? { spec: { protocol: 'TCP', port: upPort }, endpoints: [{ spec: { address: '127.0.0.1' } }] } : { spec: { protocol: 'UnixDomainSocket' }, endpoints: [{ spec: { address: upListen.path } }] };
    const rt = await proxy(t, { listeners: [{ name: 'l', spec: listener, rules: [{ action: { route: { destination: cluster } } }] }] });

    const data = chunks();
    const want = crypto.createHash('sha256');
    for (const c of data) want.update(c);
    const got = crypto.createHash('sha256');
    let gotBytes = 0;
    const client = closing(t, net.createConnection(kind === 'TCP' ? { port: lport, host: '127.0.0.1', allowHalfOpen: true } : { path: lpath, allowHalfOpen: true }), (s) => s.destroy());
    client.on('data', (d: Buffer) => {
      got.update(d);
      gotBytes += d.length;
    });
    const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    // Everything is offered at once: the client's own stream queues what the proxy does not take.
    for (const c of data) client.write(c);
    client.end();

    // The upstream reads nothing: the proxy's intake stops (backpressure), below the bound.
    const rxBytes = async (): Promise<number | undefined> => ((await sessions(rt))[0]?.downstream as Side | undefined)?.rx_bytes;
    let last = -1;
    const stalledAt = (await waitFor(async () => {
      const n = await rxBytes();
      if (n === undefined) return undefined;
      const same = n === last && n > 0;
      last = n;
      if (!same) await new Promise((r) => setTimeout(r, 200)); // a stall is a counter that stops moving
      return same ? n : undefined;
    }, 20_000, 'the proxy stops reading from the client')) as number;
    assert.ok(stalledAt < IN_FLIGHT_BOUND, `the proxy took in ${stalledAt} bytes with the upstream reading nothing`);
    assert.equal(up.received, 0);

    up.start();
    await Promise.race([ended, new Promise((_, reject) => setTimeout(() => reject(new Error(`the echo ended after ${gotBytes} of ${TOTAL} bytes`)), 60_000))]);
    assert.equal(gotBytes, TOTAL);
    assert.equal(got.digest('hex'), want.digest('hex'), 'the bytes came back unchanged');
    assert.equal(up.received, TOTAL);
    // Exact counters: the ended session's totals, on the listener (downstream) and the cluster (upstream).
    await waitTotals(rt, { active: 0, ended: 1 }, 10_000);
    const m = (await rt.metrics()).slots[0]?.metrics;
    const lt = m?.listeners.find((l) => l.name === 'l')?.traffic;
    const ct = m?.clusters[0]?.traffic;
    assert.equal(lt?.rxBytes, TOTAL);
    assert.equal(lt?.txBytes, TOTAL);
    assert.equal(ct?.txBytes, TOTAL);
    assert.equal(ct?.rxBytes, TOTAL);
  });
}
