/**
 * `offload.establish` (issue 14 item 4): a one-way UDP flow (a camera's RTP: the upstream never
 * answers) is spliced after N datagrams with `{packets: N}`, stays in userspace with `reply`, and
 * its counters stay exact while spliced. Real BPF on loopback, like offload.test.ts: skipped with
 * the probe's reason, unless L7MP_OFFLOAD_REQUIRED=1 (then a failed probe fails them).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { freeUdpPort, offloadGate, waitFor } from '../helpers.ts';
import { closing, proxy, sessions } from './proto-helpers.ts';
import { normalize } from '../../cluster-config/normalize.ts';
import type { Runtime } from '../../runtime/main/runtime.ts';

const { skip, check: checkProbe } = offloadGate();

interface Offload {
  spliced: boolean;
  kernel_packets: number;
  js_packets_since_splice: number;
}

/** A UDP sink that counts and never answers (the viewer of a one-way flow). */
async function sink(t: TestContext): Promise<{ port: number; got: number; bytes: number }> {
  const s = dgram.createSocket('udp4');
  const st = { port: 0, got: 0, bytes: 0 };
  s.on('message', (m) => {
    st.got++;
    st.bytes += m.length;
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  st.port = s.address().port;
  closing(t, s, (x) => x.close());
  return st;
}

function config(port: number, upstream: number, establish: unknown): unknown {
  return {
    admin: { offload: 'init' },
    listeners: [
      {
        name: 'cam',
        spec: { protocol: 'UDP', port, address: '127.0.0.1', options: { offload: { establish } } },
        rules: [{ action: { route: { destination: { name: 'viewer', spec: { protocol: 'UDP', port: upstream }, endpoints: [{ name: 'v', spec: { address: '127.0.0.1' } }] } } } }],
      },
    ],
  };
}

async function only(rt: Runtime): Promise<{ offload: Offload; downstream: { rx_packets: number; rx_bytes: number }; stages: Array<{ tx_packets: number }> }> {
  const list = await sessions(rt);
  assert.equal(list.length, 1, 'one session');
  return list[0] as never;
}

/** Send `n` datagrams of `size` bytes, pacing one per ms (a camera, not a flood). */
async function send(c: dgram.Socket, port: number, n: number, size = 200): Promise<number> {
  for (let i = 0; i < n; i++) {
    c.send(Buffer.alloc(size, i & 0xff), port, '127.0.0.1');
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 10));
  }
  return n * size;
}

test('offload.establish {packets: 5}: a one-way flow is spliced after 5 datagrams; every later one goes through the kernel, counted exactly', { skip }, async (t) => {
  checkProbe();
  const viewer = await sink(t);
  const port = await freeUdpPort();
  const rt = await proxy(t, config(port, viewer.port, { packets: 5 }));
  const cam = closing(t, dgram.createSocket('udp4'), (s) => s.close());
  await new Promise<void>((r) => cam.bind(0, '127.0.0.1', () => r()));
  // Four datagrams: not yet.
  let bytes = await send(cam, port, 4);
  await waitFor(() => viewer.got === 4, 3000, 'four datagrams at the viewer');
  assert.equal((await only(rt)).offload.spliced, false, 'not spliced before the 5th datagram');
  bytes += await send(cam, port, 1);
  await waitFor(async () => (await only(rt)).offload.spliced, 3000, 'the session spliced after the 5th datagram');
  const at = await only(rt);
  assert.equal(at.offload.js_packets_since_splice, 0);
  const N = 300;
  bytes += await send(cam, port, N);
  const total = 5 + N;
  await waitFor(() => viewer.got === total, 5000, `all ${total} datagrams at the viewer`);
  // Counters keep counting while spliced: the kernel's share is read into the session.
  const s = (await waitFor(async () => {
    const x = await only(rt);
    return x.downstream.rx_packets === total ? x : null;
  }, 3000, 'the kernel counters read into the session')) as Awaited<ReturnType<typeof only>>;
  assert.equal(s.offload.spliced, true);
  assert.equal(s.offload.js_packets_since_splice, 0, 'JavaScript saw none of the spliced datagrams');
  assert.equal(s.offload.kernel_packets - at.offload.kernel_packets, N, 'the kernel relayed every later datagram');
  assert.equal(s.downstream.rx_bytes, bytes);
  assert.equal(s.stages[0]?.tx_packets, total);
  assert.equal(viewer.bytes, bytes);
  // Metrics read the same counts (live session: scraped through record()).
  const w = (await rt.metrics()).slots[0]?.metrics;
  assert.equal(w?.listeners.find((l) => l.name === 'cam')?.traffic.rxBytes, bytes);
  assert.equal(w?.clusters.find((c) => c.name === 'viewer')?.traffic.txPackets, total);
  assert.equal(w?.clusters.find((c) => c.name === 'viewer')?.traffic.rxPackets, 0, 'nothing came back');
});

test('offload.establish reply (the default): a one-way flow stays in userspace', { skip }, async (t) => {
  checkProbe();
  const viewer = await sink(t);
  const port = await freeUdpPort();
  const rt = await proxy(t, config(port, viewer.port, 'reply'));
  const cam = closing(t, dgram.createSocket('udp4'), (s) => s.close());
  await new Promise<void>((r) => cam.bind(0, '127.0.0.1', () => r()));
  await send(cam, port, 100);
  await waitFor(() => viewer.got === 100, 3000, 'the datagrams at the viewer');
  // Two idle sweeps (250 ms each) for a splice that is not wanted to show up if it were.
  await new Promise((r) => setTimeout(r, 600));
  const s = await only(rt);
  assert.equal(s.offload.spliced, false);
  assert.equal(s.offload.kernel_packets, 0);
  assert.equal(s.downstream.rx_packets, 100);
});

test('offload.establish: the schema takes reply or {packets: 1..1000000}, and names the field of a bad value', () => {
  for (const ok of ['reply', { packets: 1 }, { packets: 1_000_000 }]) normalize(config(9000, 9001, ok));
  for (const [bad, what] of [
    [{ packets: 0 }, /listeners\[0\]\.spec\.options\.offload\.establish/],
    ['always', /listeners\[0\]\.spec\.options\.offload\.establish/],
    [{ packets: 2.5 }, /listeners\[0\]\.spec\.options\.offload\.establish/],
  ] as const) {
    assert.throws(() => normalize(config(9000, 9001, bad)), what, JSON.stringify(bad));
  }
  const rtsp = { listeners: [{ name: 'r', spec: { protocol: 'RTSP', port: 9554, options: { offload: { establish: { packets: 0 } } } }, rules: [{ action: { route: { destination: 'c' } } }] }], clusters: [{ name: 'c', spec: { protocol: 'RTSP' }, endpoints: [{ spec: { address: '127.0.0.1' } }] }] };
  assert.throws(() => normalize(rtsp), /listeners\[0\]\.spec\.options\.offload\.establish/);
});
