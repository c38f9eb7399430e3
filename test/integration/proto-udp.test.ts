/**
 * UDP listener specifics (docs/l7mp-compat.md §3.2): singleton mode, the server-mode connect filter,
 * exactly one session for a burst from a new peer (also across two workers), and the idle timeout
 * (l7mp bug B10 fixed: `options.idle_timeout`, seconds) which traffic keeps from firing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, freeUdpPort, udpEcho, waitFor } from '../helpers.ts';
import { closing, listenerCounter, nothingBefore, proxy, sessions, totals, udpClient, waitTotals, workerNodes } from './proto-helpers.ts';

const toUdp = (port: number) => [{ action: { route: { destination: { spec: { protocol: 'UDP', port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }];

test('singleton mode: one session at startup, connected to the remote; its traffic flows both ways', async (t) => {
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const remote = await udpClient(t);
  const lport = await freePort();
  const rt = await proxy(t, {
    listeners: [{ name: 'single', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1', connect: { address: '127.0.0.1', port: remote.port } }, rules: toUdp(echo.port) }],
  }, 2);
  // The session exists before any datagram, on exactly one worker.
  const before = await sessions(rt);
  assert.equal(before.length, 1);
  // Session numbers are unique across workers: slot + k * workers, so the first one on worker N is N.
  const slot = /^worker:worker-(\d)$/.exec(before[0]?.workerNode ?? '')?.[1];
  assert.ok(slot !== undefined);
  assert.equal(before[0]?.name, `UDP:127.0.0.1:${remote.port}-127.0.0.1:${lport}-${slot}`);
  const listeners = (await workerNodes(rt)).flatMap((w) => w.children.filter((c) => c.kind === 'listener'));
  assert.equal(listeners.length, 1, 'a singleton listener lives on one worker');
  assert.equal(listeners[0]?.mode, 'singleton');
  assert.equal((await remote.request('ping', lport)).toString(), 'echo: ping');
  assert.equal((await remote.request('pong', lport)).toString(), 'echo: pong');
  // Still the one session; the upstream saw one peer.
  assert.deepEqual((await sessions(rt)).map((s) => s.name), before.map((s) => s.name));
  assert.equal(echo.peers.size, 1);
});

test('singleton mode: a datagram from another peer never reaches the session', async (t) => {
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const remote = await udpClient(t);
  const stranger = await udpClient(t);
  const lport = await freePort();
  const rt = await proxy(t, {
    listeners: [{ name: 'single', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1', connect: { address: '127.0.0.1', port: remote.port } }, rules: toUdp(echo.port) }],
  });
  stranger.send('intruder', lport);
  await nothingBefore(remote, lport, 'sentinel', '127.0.0.1', 'echo: sentinel');
  assert.equal(echo.received, 1);
  assert.equal((await sessions(rt)).length, 1);
});

test('server mode connect filter: a peer whose port does not match gets nothing and is counted as filtered', async (t) => {
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const allowed = await udpClient(t);
  const intruder = await udpClient(t);
  const lport = await freePort();
  const rt = await proxy(t, {
    // Only the port is set: server mode with a filter (singleton needs both fields).
    listeners: [{ name: 'filt', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1', connect: { port: allowed.port } }, rules: toUdp(echo.port) }],
  });
  intruder.send('let me in', lport);
  intruder.send('please', lport);
  await waitFor(async () => (await listenerCounter(rt, 'filt', 'filtered')) === 2, 3000, 'filtered == 2');
  assert.equal((await allowed.request('hi', lport)).toString(), 'echo: hi');
  const all = await sessions(rt);
  assert.deepEqual(all.map((s) => s.name), [`UDP:127.0.0.1:${allowed.port}-127.0.0.1:${lport}-0`]);
  assert.equal(echo.received, 1);
  await assert.rejects(intruder.recv(50));
  assert.equal(await listenerCounter(rt, 'filt', 'sessions'), 1);
});

for (const workers of [1, 2]) {
  test(`a burst of 50 datagrams from a new peer gives exactly one session, and all 50 reach the upstream (${workers} worker${workers > 1 ? 's' : ''}, 4 peers at once)`, async (t) => {
    const echo = closing(t, await udpEcho(''), (e) => e.close());
    const lport = await freeUdpPort();
    const rt = await proxy(t, { listeners: [{ name: 'burst', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1' }, rules: toUdp(echo.port) }] }, workers);
    // Several peers, so that with 2 workers some bursts land on a worker that does not own them (hand-off).
    const peers = await Promise.all([0, 1, 2, 3].map(() => udpClient(t)));
    for (let i = 0; i < 50; i++) for (const c of peers) c.send(`d${i}`, lport);
    await waitFor(() => echo.received >= 200, 5000, `200 datagrams at the upstream (got ${echo.received})`);
    for (const c of peers) {
      const replies = new Set<string>();
      for (let i = 0; i < 50; i++) replies.add((await c.recv(3000)).toString());
      assert.equal(replies.size, 50);
    }
    assert.equal(echo.received, 200);
    assert.equal(echo.peers.size, 4, 'one upstream socket per peer: one session each');
    const names = (await sessions(rt)).map((s) => s.name.replace(/-\d+$/, '')).sort();
    assert.deepEqual(names, peers.map((c) => `UDP:127.0.0.1:${c.port}-127.0.0.1:${lport}`).sort());
    assert.equal(await listenerCounter(rt, 'burst', 'sessions'), 4);
    assert.deepEqual(await totals(rt), { active: 4, ended: 0 });
  });
}

test('idle timeout: a silent session ends after idle_timeout; one with traffic stays', async (t) => {
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const lport = await freePort();
  const rt = await proxy(t, { listeners: [{ name: 'idle', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1', options: { idle_timeout: 0.5 } }, rules: toUdp(echo.port) }] });
  const quiet = await udpClient(t);
  const chatty = await udpClient(t);
  const start = Date.now();
  assert.equal((await quiet.request('once', lport)).toString(), 'echo: once');
  assert.equal((await chatty.request('hello', lport)).toString(), 'echo: hello');
  let sent = 0;
  const keepAlive = setInterval(() => {
    chatty.send(`k${sent++}`, lport);
  }, 100);
  closing(t, keepAlive, (k) => clearInterval(k));
  await waitTotals(rt, { active: 1, ended: 1 }, 2000);
  const took = Date.now() - start;
  assert.ok(took >= 450 && took < 2000, `the quiet session ended after ${took} ms`);
  const chattyName = `UDP:127.0.0.1:${chatty.port}-127.0.0.1:${lport}-1`;
  assert.deepEqual((await sessions(rt)).map((s) => s.name), [chattyName]);
  // Keep talking for well past the timeout: the session stays.
  await waitFor(() => Date.now() - start > 1500, 3000);
  assert.deepEqual((await sessions(rt)).map((s) => s.name), [chattyName]);
  assert.deepEqual(await totals(rt), { active: 1, ended: 1 });
  clearInterval(keepAlive);
  const silentFrom = Date.now();
  await waitTotals(rt, { active: 0, ended: 2 }, 2000);
  assert.ok(Date.now() - silentFrom < 2000);
  assert.ok(sent >= 10, `keep-alive sent ${sent}`);
  // The peer may come back: a new session.
  assert.equal((await quiet.request('back', lport)).toString(), 'echo: back');
  await waitTotals(rt, { active: 1, ended: 2 });
});

test('UDP cluster spec.bind: the upstream socket is bound to the address (and port) given; the endpoint sees that source', async (t) => {
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const lport = await freePort();
  const bport = await freeUdpPort();
  const rt = await proxy(t, {
    listeners: [
      { name: 'fixed', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { name: 'up', spec: { protocol: 'UDP', port: echo.port, bind: { address: '127.0.0.2', port: bport } }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }] },
    ],
  });
  const c = await udpClient(t);
  assert.equal((await c.request('x', lport)).toString(), 'echo: x');
  assert.deepEqual([...echo.peers], [`127.0.0.2:${bport}`], 'the endpoint saw the bound address and port');
  assert.equal((await c.request('z', lport)).toString(), 'echo: z');
  assert.equal((await totals(rt)).active, 1);
});

test('UDP cluster spec.bind with an address only: an ephemeral port on that address', async (t) => {
  const echo = closing(t, await udpEcho('echo: '), (e) => e.close());
  const lport = await freePort();
  await proxy(t, {
    listeners: [
      { name: 'addr', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { name: 'up', spec: { protocol: 'UDP', port: echo.port, bind: { address: '127.0.0.3' } }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }] },
    ],
  });
  for (let i = 0; i < 2; i++) {
    const c = await udpClient(t);
    assert.equal((await c.request('x', lport)).toString(), 'echo: x');
  }
  const seen = [...echo.peers];
  assert.equal(seen.length, 2, 'two sessions, two upstream sockets');
  for (const p of seen) assert.match(p, /^127\.0\.0\.3:\d+$/);
});
