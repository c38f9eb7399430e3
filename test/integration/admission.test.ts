/**
 * Admission control (README, Limits; docs/threat-model.md): per-listener and process-wide session
 * caps, per-source caps and new-session rates, the UDP per-session rate limit, and that a session
 * holds the file descriptors README says. Real sockets on 127.0.0.0/8; every refusal must be
 * counted under its reason while admitted sessions keep flowing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { freePort, udpEcho, UdpClient, waitFor } from '../helpers.ts';
import { closing, listenerCounter, proxy, streamServer, totals, udpClient, waitTotals } from './proto-helpers.ts';
import { openFds, fdLimit } from '../../common/fd-limit.ts';

const toUdp = (port: number) => [{ action: { route: { destination: { spec: { protocol: 'UDP', port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }];
const toTcp = (port: number) => [{ action: { route: { destination: { spec: { protocol: 'TCP', port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }];

test('UDP max_sessions: exactly that many sessions, the rest dropped and counted; admitted sessions keep flowing', async (t) => {
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const lport = await freePort();
  const rt = await proxy(t, { listeners: [{ name: 'capped', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1' }, options: { max_sessions: 5 }, rules: toUdp(echo.port) }] });
  const clients: UdpClient[] = [];
  for (let i = 0; i < 8; i++) clients.push(await udpClient(t));
  const admitted = clients.slice(0, 5);
  for (const c of admitted) assert.equal((await c.request('hi', lport)).toString(), 'echo: hi');
  for (const c of clients.slice(5)) c.send('let me in', lport);
  await waitFor(async () => (await listenerCounter(rt, 'capped', 'listener_sessions')) >= 3, 3000, 'three refusals');
  assert.equal((await totals(rt)).active, 5);
  assert.equal(await listenerCounter(rt, 'capped', 'sessions'), 5);
  await assert.rejects(clients[5]!.recv(300), /no UDP reply/);
  // The admitted ones are untouched.
  for (const c of admitted) assert.equal((await c.request('again', lport)).toString(), 'echo: again');
  const m = await rt.metrics();
  assert.equal(m.process?.sessions, 5);
});

test('a session that ends gives its place back', async (t) => {
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const lport = await freePort();
  const rt = await proxy(t, {
    listeners: [{ name: 'short', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1', options: { idle_timeout: 0.3 } }, options: { max_sessions: 1 }, rules: toUdp(echo.port) }],
  });
  const a = await udpClient(t);
  const b = await udpClient(t);
  assert.equal((await a.request('a', lport)).toString(), 'echo: a');
  b.send('b', lport);
  await waitFor(async () => (await listenerCounter(rt, 'short', 'listener_sessions')) >= 1, 3000, 'b refused');
  await waitTotals(rt, { active: 0, ended: 1 }, 5000);
  assert.equal((await rt.metrics()).process?.sessions, 0);
  assert.equal((await b.request('b', lport)).toString(), 'echo: b');
});

test('TCP max_sessions: C connections served, the excess closed at once and counted', async (t) => {
  const up = await streamServer(t, { port: 0, host: '127.0.0.1' }, 'up: ');
  const lport = await freePort();
  const rt = await proxy(t, { listeners: [{ name: 'tcpcap', spec: { protocol: 'TCP', port: lport, address: '127.0.0.1' }, options: { max_sessions: 20 }, rules: toTcp(up.port) }] });
  const socks: net.Socket[] = [];
  const closedEarly: number[] = [];
  for (let i = 0; i < 25; i++) {
    const s = closing(t, net.connect(lport, '127.0.0.1'), (x) => x.destroy());
    s.on('error', () => {});
    s.on('close', () => closedEarly.push(i));
    socks.push(s);
    await new Promise<void>((r) => s.once('connect', () => r()));
    // One at a time, so that the first 20 are the ones admitted.
    await waitFor(async () => (await listenerCounter(rt, 'tcpcap', 'sessions')) + (await listenerCounter(rt, 'tcpcap', 'listener_sessions')) >= i + 1, 3000, `connection ${i} decided`);
  }
  await waitFor(() => closedEarly.length >= 5, 3000, 'five refused connections closed');
  assert.deepEqual(closedEarly.sort((a, b) => a - b), [20, 21, 22, 23, 24]);
  assert.equal(await listenerCounter(rt, 'tcpcap', 'listener_sessions'), 5);
  // An admitted connection still relays.
  const got = new Promise<string>((r) => socks[0]!.once('data', (d) => r(d.toString())));
  socks[0]!.write('ping');
  assert.equal(await got, 'up: ping');
});

test('max_sessions_per_source counts a source address over its ports; other sources are not affected', async (t) => {
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const lport = await freePort();
  const rt = await proxy(t, {
    listeners: [{ name: 'persrc', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1' }, options: { max_sessions_per_source: 3 }, rules: toUdp(echo.port) }],
  });
  const same: UdpClient[] = [];
  for (let i = 0; i < 4; i++) same.push(await udpClient(t, '127.0.0.1'));
  for (const c of same.slice(0, 3)) assert.equal((await c.request('x', lport)).toString(), 'echo: x');
  same[3]!.send('fourth', lport);
  await waitFor(async () => (await listenerCounter(rt, 'persrc', 'source_sessions')) >= 1, 3000, 'the fourth refused');
  // Every 127/8 address is local on lo: another source address.
  const other = await udpClient(t, '127.0.0.2');
  assert.equal((await other.request('y', lport)).toString(), 'echo: y');
  assert.equal((await totals(rt)).active, 4);
});

test('source_session_rate: past the burst a source waits for tokens; the bucket refills', async (t) => {
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const lport = await freePort();
  const rt = await proxy(t, {
    listeners: [
      { name: 'rate', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1' }, options: { source_session_rate: 4, source_session_burst: 2 }, rules: toUdp(echo.port) },
    ],
  });
  const cs: UdpClient[] = [];
  for (let i = 0; i < 3; i++) cs.push(await udpClient(t));
  assert.equal((await cs[0]!.request('1', lport)).toString(), 'echo: 1');
  assert.equal((await cs[1]!.request('2', lport)).toString(), 'echo: 2');
  // The third within the same instant is over the burst; 4 tokens/s bring it in after ~250 ms
  // (the client resends every 1 s up to 3 times).
  cs[2]!.send('3', lport);
  await waitFor(async () => (await listenerCounter(rt, 'rate', 'source_rate')) >= 1, 3000, 'a rate refusal');
  assert.equal((await cs[2]!.request('3', lport)).toString(), 'echo: 3');
});

test('admin.max_sessions caps the whole process over every listener', async (t) => {
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const p1 = await freePort();
  const p2 = await freePort();
  const rt = await proxy(
    t,
    {
      admin: { max_sessions: 3 },
      listeners: [
        { name: 'l1', spec: { protocol: 'UDP', port: p1, address: '127.0.0.1' }, rules: toUdp(echo.port) },
        { name: 'l2', spec: { protocol: 'UDP', port: p2, address: '127.0.0.1' }, rules: toUdp(echo.port) },
      ],
    },
    2,
  );
  const cs: UdpClient[] = [];
  for (let i = 0; i < 4; i++) cs.push(await udpClient(t));
  assert.equal((await cs[0]!.request('a', p1)).toString(), 'echo: a');
  assert.equal((await cs[1]!.request('b', p2)).toString(), 'echo: b');
  assert.equal((await cs[2]!.request('c', p1)).toString(), 'echo: c');
  cs[3]!.send('d', p2);
  await waitFor(async () => (await listenerCounter(rt, 'l2', 'process_sessions')) >= 1, 3000, 'the process cap refusal');
  assert.equal(rt.sessionCap(), 3);
  assert.equal(rt.sessionCount(), 3);
});

test('UDP max_pps: a session past its rate loses the excess, counted as session_rate', async (t) => {
  const echo = closing(t, await udpEcho(''), (e) => e.close());
  const lport = await freePort();
  const rt = await proxy(t, { listeners: [{ name: 'pps', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1', options: { max_pps: 20 } }, rules: toUdp(echo.port) }] });
  const c = await udpClient(t);
  assert.equal((await c.request('warm', lport)).toString(), 'warm');
  for (let i = 0; i < 200; i++) c.send(`m${i}`, lport);
  await waitFor(async () => (await listenerCounter(rt, 'pps', 'session_rate')) >= 150, 3000, 'rate drops');
  // The bucket holds one second (20); the burst of 200 takes well under a second to send.
  const drops = await listenerCounter(rt, 'pps', 'session_rate');
  assert.ok(drops <= 200 - 10, `${drops} dropped: the bucket's datagrams went through`);
  await waitFor(() => echo.received >= 1 + 200 - drops, 3000, 'the admitted datagrams at the upstream');
  assert.equal(echo.received, 1 + 200 - drops);
});

test('the open-file limit is read and the session cap derives from it; a UDP session holds the documented fds (1 by default with one worker, 2 with connected sockets) and admission charges it those', async (t) => {
  const lim = fdLimit();
  assert.ok(lim !== null, '/proc/self/limits is readable');
  // Node raised the soft limit to the hard one when this process started.
  assert.equal(lim.soft, lim.hard);
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const dport = await freePort();
  const cport = await freePort();
  const rt = await proxy(t, {
    listeners: [
      { name: 'default', spec: { protocol: 'UDP', port: dport, address: '127.0.0.1' }, rules: toUdp(echo.port) },
      { name: 'connected', spec: { protocol: 'UDP', port: cport, address: '127.0.0.1', options: { session_sockets: 'connected' } }, rules: toUdp(echo.port) },
    ],
  });
  // The cap is the most sessions the fd budget holds: at the fewest fds a session of the config holds (1).
  assert.equal(rt.sessionCap(), lim.soft - 256);
  let active = 0;
  for (const [lport, fds] of [[dport, 1], [cport, 2]] as const) {
    const cs: UdpClient[] = [];
    for (let i = 0; i < 10; i++) cs.push(await udpClient(t));
    await cs[0]!.request('warm', lport);
    active++;
    const before = openFds();
    for (const c of cs.slice(1)) assert.equal((await c.request('x', lport)).toString(), 'echo: x');
    active += 9;
    await waitTotals(rt, { active });
    // The proxy runs in this process (worker threads): 9 new sessions; by default its upstream
    // socket each (answered from the listening socket), else a socket connected to the peer too.
    assert.equal(openFds() - before, 9 * fds, `port ${lport}: ${fds} fd(s) per session`);
  }
  const m = await rt.metrics();
  assert.equal(m.process?.maxFds, lim.soft);
  // Charged as held: 10 sessions of 1 fd, 10 of 2.
  assert.equal(m.process?.sessionFds, 10 * 1 + 10 * 2);
});

test('one worker whose UDP listeners answer from their listening sockets: the session cap counts 1 fd per session, and the metrics show it', async (t) => {
  const lim = fdLimit();
  assert.ok(lim !== null);
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const rt = await proxy(t, { listeners: [{ name: 'gw', spec: { protocol: 'UDP', port: await freePort(), address: '127.0.0.1' }, rules: toUdp(echo.port) }] });
  assert.equal(rt.sessionCap(), lim.soft - 256);
  const m = await rt.metrics();
  assert.equal(m.process?.sessionLimit, lim.soft - 256);
});

test('session_sockets: listener serves sessions through the listening sockets: 1 fd per session, replies from the listener port, peers on both workers', async (t) => {
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const lport = await freePort();
  const rt = await proxy(
    t,
    { listeners: [{ name: 'shared', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1', options: { session_sockets: 'listener' } }, rules: toUdp(echo.port) }] },
    2,
  );
  const cs: UdpClient[] = [];
  for (let i = 0; i < 12; i++) cs.push(await udpClient(t));
  await cs[0]!.request('warm', lport);
  const before = openFds();
  const from = new Set<number>();
  for (const c of cs.slice(1)) {
    c.sock.once('message', (_m, rinfo) => from.add(rinfo.port));
    assert.equal((await c.request('x', lport)).toString(), 'echo: x');
  }
  await waitTotals(rt, { active: 12 });
  // 11 new sessions, one upstream socket each: nothing bound to the listener's port.
  assert.equal(openFds() - before, 11);
  assert.deepEqual([...from], [lport], 'every reply comes from the listener port');
  // Every datagram of a session keeps reaching it, whichever worker the kernel picks.
  for (const c of cs) assert.equal((await c.request('again', lport)).toString(), 'echo: again');
  assert.equal((await totals(rt)).active, 12);
  const perWorker = (await rt.stats()).map((w) => w.sessionsActive);
  assert.ok(perWorker.every((n) => n > 0), `sessions on both workers: ${perWorker}`);
});
