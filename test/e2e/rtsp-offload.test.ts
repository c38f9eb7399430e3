/**
 * RTSP under kernel offload (issue 14 items 4 and 5): ffmpeg PLAYs the gst-rtsp-server fixture
 * through the proxy with `-o init` (client, server and proxy in separate network namespaces, as in
 * rtsp.test.ts). The RTP relay is spliced in the kernel at the server's first datagram, the client
 * keeps getting frames, its counters keep counting from the kernel's, the RTCP relay stays in
 * userspace and reads the server's sender reports into /RTP, and TEARDOWN unsplices and closes
 * every pinhole.
 *
 * Needs root (namespaces, BPF), ffmpeg, python3-gi and the offload addon (`npm run build:offload`).
 * Without the lab the test is skipped as rtsp.test.ts is; without BPF it is skipped with the
 * probe's reason, unless L7MP_OFFLOAD_REQUIRED=1 (then a failed probe fails it).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { NetLab, rtspLabMissing } from './rtsp-env.ts';
import { freeTcpPort, freeUdpPort, offloadGate, tmpDir, waitFor } from '../helpers.ts';
import { proxy } from '../integration/proto-helpers.ts';
import type { Runtime } from '../../runtime/main/runtime.ts';
import type { ActorNode } from '../../actors/tree.ts';

const missing = rtspLabMissing();
const offload = offloadGate();
const skip = missing !== null && process.env.L7MP_RTSP_REQUIRED !== '1' ? missing : offload.skip;

interface Offload {
  spliced: boolean;
  splices: number;
  kernel_packets: number;
  js_packets_since_splice: number;
}
interface Stage {
  remote: string | null;
  rx_packets: number;
  tx_packets: number;
}
interface Rtp {
  SSRC?: number;
  packet_count?: number;
  octet_count?: number;
  sender_reports?: number;
}

/** {@link waitFor} for a value that is null until it is there. */
async function until<T>(cond: () => Promise<T | null>, ms: number, what: string): Promise<T> {
  return (await waitFor(cond, ms, what)) as T;
}

function nodes(n: ActorNode): ActorNode[] {
  return [n, ...n.children.flatMap(nodes)];
}

/** The RTP and RTCP relays (child sessions) and the listener's pinhole pairs. */
async function relays(rt: Runtime): Promise<{ pairs: number; rtp: ActorNode | undefined; rtcp: ActorNode | undefined; count: number }> {
  const all = nodes(await rt.tree());
  const pairs = all.filter((n) => n.kind === 'listener' && n.protocol === 'RTSP').reduce((s, n) => s + Number(n.pinhole_pairs ?? 0), 0);
  const rs = all.filter((n) => n.kind === 'session' && /^RTC?P:/.test(n.name));
  return { pairs, rtp: rs.find((n) => n.name.startsWith('RTP:')), rtcp: rs.find((n) => n.name.startsWith('RTCP:')), count: rs.length };
}

const stage = (n: ActorNode | undefined): Stage => ((n?.stages ?? []) as Stage[])[0] ?? { remote: null, rx_packets: 0, tx_packets: 0 };
const downstream = (n: ActorNode | undefined): { remote: string; rx_packets: number; tx_packets: number } => n?.downstream as never;
const rtpOf = (n: ActorNode | undefined): Rtp => ((n?.metadata as { RTP?: Rtp } | undefined)?.RTP ?? {}) as Rtp;

/** Client (A) and server (B) namespaces, the proxy in the root namespace with `-o init`. */
async function lab(t: TestContext): Promise<{ lab: NetLab; a: string; srv: Awaited<ReturnType<NetLab['rtspServer']>>; rt: Runtime; url: string; serverSide: string; log: string }> {
  const l = new NetLab();
  t.after(() => l.close());
  const a = l.ns('A');
  const b = l.ns('B');
  const la = l.link(a, null);
  const lb = l.link(null, b);
  const srv = await l.rtspServer(b, lb.b, 8554);
  const port = await freeTcpPort(la.b);
  const base = 2 * Math.floor((await freeUdpPort()) / 2);
  const log = path.join(tmpDir(), 'access.log');
  const rt = await proxy(t, {
    admin: { log_level: 'warn', offload: 'init', access_log_path: log },
    clusters: [{ name: 'camera', spec: { protocol: 'RTSP', port: 8554 }, endpoints: [{ spec: { address: lb.b } }] }],
    listeners: [
      {
        name: 'rtsp',
        spec: { protocol: 'RTSP', port, address: la.b, options: { rtp_ports: { min: base, max: Math.min(31999, base + 399) } } },
        rules: [{ action: { route: { destination: 'camera' } } }],
      },
    ],
  });
  return { lab: l, a, srv, rt, url: `rtsp://${la.b}:${port}/test`, serverSide: lb.a, log };
}

test('offload: RTSP PLAY with -o init: the RTP relay is spliced, ffmpeg gets every frame, counters count on; RTCP stays in userspace with /RTP/SSRC; TEARDOWN unsplices and closes the pinholes', { skip }, async (t) => {
  offload.check();
  const { lab: l, a, srv, rt, url, serverSide, log } = await lab(t);
  // 200 frames at 25 fps: 8 s of media, more than one RTCP report interval (RFC 3550: 5 s).
  const run = l.ffmpeg(a, url, 'udp', 200);
  const spliced = await until(async () => {
    const r = await relays(rt);
    return (r.rtp?.offload as Offload | undefined)?.spliced === true ? r : null;
  }, 20_000, 'the RTP relay spliced');
  const off0 = spliced.rtp?.offload as Offload;
  const rx0 = stage(spliced.rtp).rx_packets;
  assert.equal(off0.splices, 1);
  // Counters keep counting while spliced: the kernel's counts are read into the relay.
  const later = await until(async () => {
    const r = await relays(rt);
    const o = r.rtp?.offload as Offload | undefined;
    return o !== undefined && o.kernel_packets >= off0.kernel_packets + 100 && stage(r.rtp).rx_packets >= rx0 + 100 ? r : null;
  }, 20_000, 'the spliced relay counting on');
  const off1 = later.rtp?.offload as Offload;
  assert.equal(off1.spliced, true);
  assert.equal(off1.js_packets_since_splice, 0, 'JavaScript saw no RTP datagram after the splice');
  // Server to client: what the server-side pinhole received went out of the client-side one.
  assert.equal(downstream(later.rtp).tx_packets, stage(later.rtp).rx_packets);
  // The RTCP relay: not offloadable (its reports are read here), and paired with its RTP relay:
  // the same server address, the next port; the same client address, the next port.
  const r1 = await until(async () => {
    const r = await relays(rt);
    return (rtpOf(r.rtcp).sender_reports ?? 0) >= 1 ? r : null;
  }, 20_000, 'a sender report on the RTCP relay');
  assert.equal(r1.rtcp?.offload, undefined, 'the RTCP relay stays in userspace');
  const rtcpMeta = rtpOf(r1.rtcp);
  assert.ok(typeof rtcpMeta.SSRC === 'number' && (rtcpMeta.packet_count ?? 0) > 0 && (rtcpMeta.octet_count ?? 0) > 0, JSON.stringify(rtcpMeta));
  assert.equal(rtpOf(r1.rtp).SSRC, rtcpMeta.SSRC, 'the RTP relay shows the same /RTP');
  const [rtpUp, rtcpUp] = [stage(r1.rtp).remote ?? '', stage(r1.rtcp).remote ?? ''];
  const port = (hp: string): number => Number(hp.slice(hp.lastIndexOf(':') + 1));
  const host = (hp: string): string => hp.slice(0, hp.lastIndexOf(':'));
  assert.equal(host(rtcpUp), host(rtpUp), `${rtpUp} / ${rtcpUp}`);
  assert.equal(port(rtcpUp), port(rtpUp) + 1, `${rtpUp} / ${rtcpUp}`);
  const [rtpDown, rtcpDown] = [downstream(r1.rtp).remote, downstream(r1.rtcp).remote];
  assert.equal(host(rtcpDown), host(rtpDown));
  assert.equal(port(rtcpDown), port(rtpDown) + 1);

  const r = await run;
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.frames >= 200, `${r.frames} frames`);
  assert.equal(srv.plays(), 1);
  // ffmpeg sent TEARDOWN on its way out: both relays end, every pinhole closes.
  await waitFor(async () => {
    const x = await relays(rt);
    return x.pairs === 0 && x.count === 0;
  }, 10_000, 'the relays ended and the pinholes released');
  // The server-side pinhole ports (the client_port the server was given) are free again.
  const setup = srv.lines.find((x) => x.startsWith('REQUEST SETUP')) ?? '';
  const m = /client_port=(\d+)-(\d+)/.exec(setup);
  assert.ok(m !== null, setup);
  for (const p of [Number(m[1]), Number(m[2])]) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(p, serverSide, () => resolve());
    });
    s.close();
  }
  // The RTP relay's final record (access log) has the kernel's counts, read at its unsplice.
  const line = await waitFor(() => {
    const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    return text.split('\n').find((x) => x.includes('"session":"RTP:')) ?? '';
  }, 5000, 'the RTP relay in the access log');
  const rec = JSON.parse(line) as { tx_packets: number; stages: Array<{ rx_packets: number; remote: string }> };
  assert.ok((rec.stages[0]?.rx_packets ?? 0) >= stage(r1.rtp).rx_packets, `${line}`);
  assert.equal(rec.tx_packets, rec.stages[0]?.rx_packets, 'every RTP datagram from the server went to the client');
});
