/**
 * RTSP proxy end to end (issue 14): a real RTSP server (gst-rtsp-server, test/fixtures/rtsp-server.py)
 * and a real client (ffmpeg), each in a network namespace of its own.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { NetLab, rtspLabMissing } from './rtsp-env.ts';
import { freeTcpPort, freeUdpPort, waitFor } from '../helpers.ts';
import { proxy } from '../integration/proto-helpers.ts';
import type { Runtime } from '../../runtime/main/runtime.ts';
import type { ActorNode } from '../../actors/tree.ts';

const missing = rtspLabMissing();
const skip = missing !== null && process.env.L7MP_RTSP_REQUIRED !== '1' ? missing : false;

test('lab: ffmpeg in one namespace plays the gst-rtsp-server of another over RTP/UDP and interleaved TCP', { skip }, async (t) => {
  const lab = new NetLab();
  t.after(() => lab.close());
  const a = lab.ns('A');
  const b = lab.ns('B');
  const l = lab.link(a, b);
  const srv = await lab.rtspServer(b, l.b, 8554);
  for (const tr of ['udp', 'tcp'] as const) {
    const r = await lab.ffmpeg(a, srv.url, tr, 30);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.frames >= 30, `${tr}: ${r.frames} frames`);
  }
  assert.equal(srv.plays(), 2);
});

/** Every node of an actor tree. */
function nodes(n: ActorNode): ActorNode[] {
  return [n, ...n.children.flatMap(nodes)];
}

/** The RTSP listener nodes' pinhole pairs and the child sessions (RTP/RTCP relays) in the tree. */
async function pinholes(rt: Runtime): Promise<{ pairs: number; relays: ActorNode[] }> {
  const all = nodes(await rt.tree());
  const pairs = all.filter((n) => n.kind === 'listener' && n.protocol === 'RTSP').reduce((s, n) => s + Number(n.pinhole_pairs ?? 0), 0);
  const relays = all.filter((n) => n.kind === 'session' && /^RTC?P:/.test(n.name));
  return { pairs, relays };
}

/**
 * A lab with three parties: the client's namespace (A), the server's (B), the proxy in the root
 * namespace with a leg in each. A and B have no route to each other: media can only take the proxy.
 */
async function threeParty(t: TestContext, options: Record<string, unknown> = {}, serverOpts: { shared?: boolean } = {}) {
  const lab = new NetLab();
  t.after(() => lab.close());
  const a = lab.ns('A');
  const b = lab.ns('B');
  const la = lab.link(a, null);
  const lb = lab.link(null, b);
  const srv = await lab.rtspServer(b, lb.b, 8554, serverOpts);
  const port = await freeTcpPort(la.b);
  const base = 2 * Math.floor((await freeUdpPort()) / 2);
  const rt = await proxy(t, {
    admin: { log_level: 'warn' },
    clusters: [{ name: 'camera', spec: { protocol: 'RTSP', port: 8554 }, endpoints: [{ spec: { address: lb.b } }] }],
    listeners: [
      {
        name: 'rtsp',
        spec: { protocol: 'RTSP', port, address: la.b, options: { rtp_ports: { min: base, max: Math.min(31999, base + 399) }, ...options } },
        rules: [{ action: { route: { destination: 'camera' } } }],
      },
    ],
  });
  // The client reaches the proxy, not the server.
  assert.throws(() => execFileSync('ip', ['netns', 'exec', a, 'ping', '-c', '1', '-W', '1', lb.b], { stdio: 'ignore' }));
  return { lab, a, b, srv, rt, url: `rtsp://${la.b}:${port}/test`, base };
}

test('proxy: PLAY over UDP through the proxy (client and server in separate namespaces); TEARDOWN releases every pinhole', { skip }, async (t) => {
  const { lab, a, srv, rt, url, base } = await threeParty(t);
  const run = lab.ffmpeg(a, url, 'udp', 100);
  // While it plays: an RTP and an RTCP relay, children of the RTSP session, and RTP flowing in the RTP one.
  const live = await waitFor(async () => {
    const p = await pinholes(rt);
    const rtp = p.relays.find((n) => n.name.startsWith('RTP:'));
    const stages = (rtp?.stages ?? []) as Array<{ rx_packets: number }>;
    return p.pairs === 2 && p.relays.length === 2 && (stages[0]?.rx_packets ?? 0) > 10 ? p : null;
  }, 20_000, 'two relays carrying RTP');
  assert.ok(live?.relays.every((n) => n.status === 'CONNECTED'));
  const r = await run;
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.frames >= 100, `${r.frames} frames`);
  // The server was asked to send to the proxy's server-side pinholes, not to the client.
  const setup = srv.lines.find((l) => l.startsWith('REQUEST SETUP'));
  const m = /client_port=(\d+)-(\d+)/.exec(setup ?? '');
  assert.ok(m !== null, `${setup}`);
  assert.ok(Number(m[1]) >= base && Number(m[1]) % 2 === 0 && Number(m[2]) === Number(m[1]) + 1, `${setup}`);
  assert.equal(srv.plays(), 1);
  // ffmpeg sent TEARDOWN on its way out: no pinhole socket and no relay is left.
  await waitFor(async () => {
    const p = await pinholes(rt);
    return p.pairs === 0 && p.relays.length === 0;
  }, 10_000, 'pinholes released');
});

for (const [client, upstream] of [
  ['tcp', 'udp'],
  ['udp', 'tcp'],
  ['tcp', 'same'],
] as const) {
  test(`proxy: ${client === 'tcp' ? 'interleaved' : 'UDP'} client, upstream_transport ${upstream}: the client plays, the server sees the transport asked`, { skip }, async (t) => {
    const { lab, a, srv, rt, url } = await threeParty(t, { upstream_transport: upstream });
    const r = await lab.ffmpeg(a, url, client, 50);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.frames >= 50, `${r.frames} frames`);
    const setup = srv.lines.find((l) => l.startsWith('REQUEST SETUP')) ?? '';
    const serverSide = upstream === 'same' ? client : upstream;
    if (serverSide === 'udp') assert.match(setup, /RTP\/AVP;unicast;client_port=\d+-\d+/);
    else assert.match(setup, /RTP\/AVP\/TCP;unicast;interleaved=\d+-\d+/);
    assert.equal(srv.plays(), 1);
    await waitFor(async () => {
      const p = await pinholes(rt);
      return p.pairs === 0 && p.relays.length === 0;
    }, 10_000, 'pinholes released');
  });
}

/** The RTSP listener's fan-out counters from the actor tree. */
async function fanout(rt: Runtime): Promise<{ hubs: number; readers: number; shared_readers: number; reader_drops: number }> {
  const l = nodes(await rt.tree()).find((n) => n.kind === 'listener' && n.protocol === 'RTSP');
  return (l?.fanout ?? { hubs: 0, readers: 0, shared_readers: 0, reader_drops: 0 }) as never;
}

for (const ownerLeavesFirst of [false, true]) {
  test(`fan-out: two viewers, one upstream PLAY (asserted at the server); ${ownerLeavesFirst ? 'the first viewer leaves first and the second keeps playing' : 'the second viewer leaves first'}; the last one's exit tears the upstream down`, { skip }, async (t) => {
    const { lab, a, srv, rt, url } = await threeParty(t, { fanout: true });
    const n1 = ownerLeavesFirst ? 125 : 200;
    const n2 = ownerLeavesFirst ? 250 : 40;
    const first = lab.ffmpeg(a, url, 'udp', n1);
    await waitFor(async () => (await fanout(rt)).readers === 1 && srv.plays() === 1, 20_000, 'the first viewer playing');
    const second = lab.ffmpeg(a, url, 'udp', n2);
    await waitFor(async () => (await fanout(rt)).readers === 2, 20_000, 'both viewers reading one hub');
    const [r1, r2] = await Promise.all([first, second]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok(r1.frames >= n1 && r2.frames >= n2, `${r1.frames} ${r2.frames}`);
    assert.equal(srv.plays(), 1, srv.lines.join('\n'));
    assert.equal(srv.lines.filter((l) => l.startsWith('REQUEST SETUP')).length, 1, 'one upstream SETUP');
    assert.equal((await fanout(rt)).shared_readers, 1);
    await waitFor(async () => {
      const p = await pinholes(rt);
      return p.pairs === 0 && p.relays.length === 0 && srv.lines.some((l) => l.startsWith('TEARDOWN'));
    }, 10_000, 'pinholes released and the upstream torn down');
    assert.equal((await fanout(rt)).hubs, 0);
  });
}
