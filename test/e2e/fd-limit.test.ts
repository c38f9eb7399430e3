/**
 * The open-file limit end to end (issue 12: a UDP flood from many sources used to exhaust the fds,
 * and TCP connections filling the fd table stopped every listener silently). The proxy runs with
 * `ulimit -n 500` and `admin.fd_reserve: 200`: at most (500 - 200) / 2 = 150 sessions. Floods of
 * UDP peers and of TCP connections past that are refused and counted, the process stays up, the
 * admin API answers throughout, and the fds come back when the peers leave.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { freePort, tmpDir, udpEcho, streamEcho, waitFor } from '../helpers.ts';
import { startProcess } from './proc.ts';

/** The proxy's /metrics as name{labels} → value. */
async function metrics(admin: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${admin}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

function sum(m: Map<string, number>, prefix: string): number {
  let n = 0;
  for (const [k, v] of m) if (k.startsWith(prefix)) n += v;
  return n;
}

test('with ulimit -n 500 the session cap holds 150 sessions: a UDP and a TCP flood past it are counted drops, the admin API answers, fds come back', async (t) => {
  const echo = await udpEcho('echo: ');
  const tcpUp = await streamEcho({ port: 0, host: '127.0.0.1' });
  t.after(() => Promise.all([echo.close(), tcpUp.close()]));
  const [uport, tport, admin] = [await freePort(), await freePort(), await freePort()];
  const config = {
    admin: { address: '127.0.0.1', port: admin, fd_reserve: 200 },
    listeners: [
      { name: 'udp', spec: { protocol: 'UDP', port: uport, address: '127.0.0.1', options: { idle_timeout: 3 } }, rules: [{ action: { route: { destination: { spec: { protocol: 'UDP', port: echo.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }] },
      { name: 'tcp', spec: { protocol: 'TCP', port: tport, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'TCP', port: tcpUp.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }] },
    ],
  };
  const p = await startProcess(config, path.join(tmpDir(), 'fd.yaml'), ['--workers', '2'], 30_000, { nofile: 500 });
  t.after(() => p.stop());
  assert.match(p.stderr(), /"fd_soft_limit":500,"fd_hard_limit":500,"max_sessions":150/);

  // 300 UDP peers from 300 source addresses, one datagram each.
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  t.after(() => sock.close());
  const peers: dgram.Socket[] = [];
  t.after(() => peers.forEach((s) => s.close()));
  for (let i = 0; i < 300; i++) {
    const s = dgram.createSocket('udp4');
    s.on('error', () => {});
    await new Promise<void>((r) => s.bind(0, `127.3.${i >> 8}.${i & 255}`, () => r()));
    s.send('x', uport, '127.0.0.1');
    peers.push(s);
  }
  let m = await waitFor(async () => {
    const x = await metrics(admin);
    return (x.get('l7mp_process_sessions') ?? 0) + sum(x, 'l7mp_listener_dropped_packets_total{listenerName="udp"') >= 300 ? x : undefined;
  }, 10_000, '300 UDP peers admitted or refused') as Map<string, number>;
  assert.ok((m.get('l7mp_process_sessions') ?? 0) <= 150 + 1, `${m.get('l7mp_process_sessions')} sessions`);
  assert.ok(sum(m, 'l7mp_listener_dropped_packets_total{listenerName="udp",protocol="UDP",worker') >= 149);
  assert.ok((m.get('l7mp_process_open_fds') ?? 1e9) < 500, 'fds stay under the limit');

  // While the UDP sessions hold the cap, 100 TCP connections: each is closed at once and counted.
  const conns: net.Socket[] = [];
  t.after(() => conns.forEach((c) => c.destroy()));
  let closed = 0;
  for (let i = 0; i < 100; i++) {
    const c = net.connect(tport, '127.0.0.1');
    c.on('error', () => {});
    c.on('close', () => closed++);
    conns.push(c);
  }
  await waitFor(() => closed === 100, 10_000, 'refused TCP connections closed');
  await waitFor(async () => sum(await metrics(admin), 'l7mp_listener_dropped_packets_total{listenerName="tcp",protocol="TCP",worker') === 100, 5000, '100 TCP refusals counted');
  // The admin API answers with the fd table near its cap.
  const api = await fetch(`http://127.0.0.1:${admin}/api/v1/listeners`, { signal: AbortSignal.timeout(5000) });
  assert.equal(api.status, 200);

  // The UDP sessions idle out (3 s): the fds come back and a new peer is served.
  await waitFor(async () => ((await metrics(admin)).get('l7mp_process_sessions') ?? 1) === 0, 15_000, 'UDP sessions idled out');
  m = await metrics(admin);
  assert.ok((m.get('l7mp_process_open_fds') ?? 1e9) < 60, `${m.get('l7mp_process_open_fds')} fds after`);
  let reply = '';
  sock.on('message', (d) => (reply = d.toString()));
  await waitFor(() => {
    sock.send('back', uport, '127.0.0.1');
    return reply !== '';
  }, 5000, 'a reply to a new peer');
  assert.equal(reply, 'echo: back');
  assert.equal(p.proc.exitCode, null, 'the process is up');
});
