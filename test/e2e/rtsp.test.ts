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
import type { Runtime } from '../../runtime/runtime.ts';
import type { ActorNode } from '../../actors/tree.ts';

const missing = rtspLabMissing();
const skip = missing !== null && process.env.CI !== 'true' ? missing : false;

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
