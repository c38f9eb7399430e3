/**
 * Graceful drain (issue 15 item 1), with real processes: SIGTERM drains in-flight TCP and UDP
 * exchanges to completion before the process exits; a session that never finishes is cut at
 * `admin.drain_timeout_s`; a second SIGTERM ends at once; `POST /api/v1/admin {"drain": ...}`
 * drains without exiting, and HTTP keep-alive answers carry `Connection: close`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { freePort, freeTcpPort, streamClient, tmpDir, UdpClient, waitFor } from '../helpers.ts';
import { startProcess, type Proxy } from './proc.ts';

/** A TCP and a UDP upstream that answer `re:<request>`, holding every answer until {@link release}. */
async function gatedUpstream(): Promise<{ tcpPort: number; udpPort: number; requests: () => number; release(): void; close(): Promise<void> }> {
  let released = false;
  let requests = 0;
  const held: Array<() => void> = [];
  const hold = (reply: () => void): void => {
    if (released) reply();
    else held.push(reply);
  };
  const conns = new Set<net.Socket>();
  const tcp = net.createServer({ allowHalfOpen: true }, (s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      requests++;
      hold(() => s.write(`re:${d.toString()}`));
    });
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const udp = dgram.createSocket('udp4');
  udp.on('message', (m: Buffer, r: dgram.RemoteInfo) => {
    requests++;
    hold(() => udp.send(`re:${m.toString()}`, r.port, r.address));
  });
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  return {
    tcpPort: (tcp.address() as net.AddressInfo).port,
    udpPort: udp.address().port,
    requests: () => requests,
    release: () => {
      released = true;
      for (const f of held.splice(0)) f();
    },
    close: async () => {
      for (const s of conns) s.destroy();
      udp.close();
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

/** GET/POST on the admin API; the body parsed as JSON when it is. */
async function admin(port: number, method: string, url: string, body?: unknown): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${url}`, {
    method,
    signal: AbortSignal.timeout(5000),
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // metrics: text
  }
  return { status: res.status, body: parsed, text };
}

/** Try a TCP connect: 'refused' (ECONNREFUSED) or 'accepted' (then closed at once). */
function tryConnect(port: number): Promise<'refused' | 'accepted'> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve('accepted');
    });
    s.once('error', () => resolve('refused'));
  });
}

function exited(p: Proxy): Promise<{ code: number | null; at: number }> {
  return new Promise((resolve) => {
    if (p.proc.exitCode !== null) resolve({ code: p.proc.exitCode, at: Date.now() });
    else p.proc.once('exit', (code) => resolve({ code, at: Date.now() }));
  });
}

const echoRule = (destination: string) => [{ action: { route: { destination } } }];

test('SIGTERM with 10 TCP and 10 UDP exchanges in flight: /readyz 503, new sessions refused (counted), all 20 answered, exit 0 before the drain timeout', async (t) => {
  const gate = await gatedUpstream();
  t.after(() => gate.close());
  const [tcpPort, udpPort, adminPort] = [await freePort(), await freePort(), await freeTcpPort()];
  const dir = tmpDir();
  const timeoutS = 10;
  const proxy = await startProcess(
    {
      admin: { drain_timeout_s: timeoutS },
      listeners: [
        { name: 'tcp', spec: { protocol: 'TCP', port: tcpPort, address: '127.0.0.1' }, rules: echoRule('up-tcp') },
        { name: 'udp', spec: { protocol: 'UDP', port: udpPort, address: '127.0.0.1' }, rules: echoRule('up-udp') },
      ],
      clusters: [
        { name: 'up-tcp', spec: { protocol: 'TCP', port: gate.tcpPort }, endpoints: [{ spec: { address: '127.0.0.1' } }] },
        { name: 'up-udp', spec: { protocol: 'UDP', port: gate.udpPort }, endpoints: [{ spec: { address: '127.0.0.1' } }] },
      ],
    },
    path.join(dir, 'drain.yaml'),
    ['--workers', '2', '--admin', `127.0.0.1:${adminPort}`],
  );
  t.after(() => proxy.stop('SIGKILL'));
  const tcp = await Promise.all(Array.from({ length: 10 }, () => streamClient({ port: tcpPort, host: '127.0.0.1' })));
  const udp = await Promise.all(Array.from({ length: 10 }, () => UdpClient.open()));
  t.after(() => udp.forEach((u) => u.close()));
  tcp.forEach((c, i) => c.sock.write(`t${i}`));
  udp.forEach((u, i) => u.send(`u${i}`, udpPort));
  await waitFor(() => gate.requests() === 20, 5000, 'all 20 requests at the upstream');
  assert.equal((await admin(adminPort, 'GET', '/readyz')).status, 200);

  const exit = exited(proxy);
  const t0 = Date.now();
  proxy.proc.kill('SIGTERM');
  const ready = (await waitFor(async () => {
    const r = await admin(adminPort, 'GET', '/readyz');
    return r.status === 503 ? r : null;
  }, 5000, '/readyz 503')) as { body: { status: string; sessions_left: number } };
  assert.equal(ready.body.status, 'draining');
  assert.equal(ready.body.sessions_left, 20);
  // Stream listeners stop listening: a new connection is refused by the kernel (every worker's socket closed).
  await waitFor(async () => (await tryConnect(tcpPort)) === 'refused', 5000, 'a new TCP connection refused');
  // A new UDP peer is refused and counted; its datagram never reaches the upstream.
  const late = await UdpClient.open();
  t.after(() => late.close());
  late.send('late', udpPort);
  await waitFor(async () => /l7mp_listener_dropped_packets_total\{[^}]*listenerName="udp"[^}]*reason="draining"[^}]*\} [1-9]/.test((await admin(adminPort, 'GET', '/metrics')).text), 5000, 'a draining drop');
  assert.match((await admin(adminPort, 'GET', '/metrics')).text, /^l7mp_process_draining 1$/m);
  assert.equal(gate.requests(), 20);
  const held = Date.now() - t0;
  t.diagnostic(`SIGTERM to release: ${held} ms`);

  gate.release();
  const replies = await Promise.all([
    ...tcp.map(async (c, i) => {
      const r = (await c.recv(5000)).toString();
      c.sock.end();
      return r === `re:t${i}`;
    }),
    ...udp.map(async (u, i) => (await u.recv(5000)).toString() === `re:u${i}`),
  ]);
  assert.equal(replies.filter(Boolean).length, 20, 'all 20 exchanges completed');
  const { code, at } = await exit;
  assert.equal(code, 0, proxy.stderr());
  const ms = at - t0;
  t.diagnostic(`SIGTERM to exit: ${ms} ms`);
  assert.ok(ms < timeoutS * 1000, `exited ${ms} ms after SIGTERM, not before the drain timeout`);
  assert.match(proxy.stderr(), /drained: no session left/);
  assert.doesNotMatch(proxy.stderr(), /cutting the/);
});

test('a session that never finishes is cut at admin.drain_timeout_s (an active UDP flow keeps going until then); exit 0', async (t) => {
  const [tcpPort, udpPort] = [await freePort(), await freePort()];
  const timeoutS = 3;
  const proxy = await startProcess(
    {
      admin: { drain_timeout_s: timeoutS },
      listeners: [
        { name: 'tcp', spec: { protocol: 'TCP', port: tcpPort, address: '127.0.0.1' }, rules: echoRule('echo') },
        { name: 'udp', spec: { protocol: 'UDP', port: udpPort, address: '127.0.0.1' }, rules: echoRule('echo') },
      ],
      clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }],
    },
    path.join(tmpDir(), 'cut.yaml'),
    ['--workers', '2'],
  );
  t.after(() => proxy.stop('SIGKILL'));
  const c = await streamClient({ port: tcpPort, host: '127.0.0.1' });
  c.sock.write('x');
  assert.equal((await c.recv(5000)).toString(), 'x');
  const closed = new Promise<number>((resolve) => c.sock.once('close', () => resolve(Date.now())));
  const u = await UdpClient.open();
  t.after(() => u.close());
  assert.equal((await u.request('p', udpPort)).toString(), 'p');
  // An active flow: a datagram every 100 ms (at most 100), each answered, for as long as the session lives.
  let lastReply = 0;
  u.sock.on('message', () => (lastReply = Date.now()));
  let sent = 0;
  const flow = setInterval(() => {
    if (++sent > 100) clearInterval(flow);
    else u.send('p', udpPort);
  }, 100);
  t.after(() => clearInterval(flow));

  const exit = exited(proxy);
  const t0 = Date.now();
  proxy.proc.kill('SIGTERM');
  const { code, at } = await exit;
  clearInterval(flow);
  assert.equal(code, 0, proxy.stderr());
  const ms = at - t0;
  t.diagnostic(`SIGTERM to exit: ${ms} ms; last UDP reply ${lastReply - t0} ms after SIGTERM`);
  assert.ok(ms >= timeoutS * 1000 - 100, `exited ${ms} ms after SIGTERM: before the drain timeout`);
  assert.ok(ms < timeoutS * 1000 + 2500, `exited ${ms} ms after SIGTERM: long after the drain timeout`);
  // The flow outlived the 2 s quiet grace: only the deadline ended it.
  assert.ok(lastReply - t0 > 2500, `the active UDP flow was answered until ${lastReply - t0} ms after SIGTERM`);
  assert.ok((await closed) - t0 >= timeoutS * 1000 - 100, 'the TCP session was cut at the deadline');
  assert.match(proxy.stderr(), /drain deadline: cutting the 2 sessions left/);
});

test('a second SIGTERM during a drain ends it at once', async (t) => {
  const tcpPort = await freePort();
  const proxy = await startProcess(
    { listeners: [{ name: 'tcp', spec: { protocol: 'TCP', port: tcpPort, address: '127.0.0.1' }, rules: echoRule('echo') }], clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }] },
    path.join(tmpDir(), 'twice.yaml'),
    ['--workers', '1'],
  );
  t.after(() => proxy.stop('SIGKILL'));
  const c = await streamClient({ port: tcpPort, host: '127.0.0.1' });
  c.sock.write('x');
  assert.equal((await c.recv(5000)).toString(), 'x');
  const exit = exited(proxy);
  proxy.proc.kill('SIGTERM');
  await waitFor(() => /draining: no new sessions; live ones may finish within 30 s/.test(proxy.stderr()), 5000, 'the drain to start');
  assert.equal(proxy.proc.exitCode, null);
  const t0 = Date.now();
  proxy.proc.kill('SIGTERM');
  const { code, at } = await exit;
  assert.equal(code, 0, proxy.stderr());
  assert.ok(at - t0 < 2000, `exited ${at - t0} ms after the second SIGTERM`);
  assert.match(proxy.stderr(), /second SIGTERM: ending the drain now/);
});

test('POST /api/v1/admin {"drain": ...}: readyz 503, status in GET /api/v1/admin, HTTP answers Connection: close, the node stays up drained; SIGTERM then exits at once', async (t) => {
  const [tcpPort, httpPort, adminPort] = [await freePort(), await freePort(), await freeTcpPort()];
  const proxy = await startProcess(
    {
      listeners: [
        { name: 'tcp', spec: { protocol: 'TCP', port: tcpPort, address: '127.0.0.1' }, rules: echoRule('echo') },
        { name: 'http', spec: { protocol: 'HTTP', port: httpPort, address: '127.0.0.1' }, rules: echoRule('echo') },
      ],
      clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }],
    },
    path.join(tmpDir(), 'api.yaml'),
    ['--workers', '2', '--admin', `127.0.0.1:${adminPort}`],
  );
  t.after(() => proxy.stop('SIGKILL'));
  assert.equal((await admin(adminPort, 'GET', '/api/v1/admin')).body.drain.state, 'serving');
  assert.equal((await admin(adminPort, 'POST', '/api/v1/admin', { drain: false })).status, 400);
  assert.equal((await admin(adminPort, 'POST', '/api/v1/admin', { drain: { timeout_s: -1 } })).status, 400);
  assert.equal((await admin(adminPort, 'POST', '/api/v1/admin', { admin: { drain_timeout_s: 1e9 } })).status, 400);

  // A live TCP session; two HTTP keep-alive connections with one exchange done, one of them with
  // the head of its next request in (its answer begins after the drain started).
  const c = await streamClient({ port: tcpPort, host: '127.0.0.1' });
  c.sock.write('x');
  assert.equal((await c.recv(5000)).toString(), 'x');
  const request = (body: string, sendBody = true): string => `POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${sendBody ? body : ''}`;
  const keepAlive = async (): Promise<{ sock: net.Socket; got: () => string; closed: Promise<void> }> => {
    const sock = net.connect({ port: httpPort, host: '127.0.0.1' });
    t.after(() => sock.destroy());
    let got = '';
    sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
    sock.on('error', () => {});
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    sock.write(request('one'));
    await waitFor(() => /\r\n\r\n(?:3\r\n)?one/.test(got), 5000, 'the first HTTP answer');
    assert.match(got, /^connection: keep-alive/im);
    return { sock, got: () => got, closed };
  };
  const idle = await keepAlive();
  const busy = await keepAlive();
  const before = busy.got().length;
  busy.sock.write(request('two', false));
  await waitFor(async () => (await admin(adminPort, 'GET', '/api/v1/admin')).body.drain.sessions_left === 2, 5000, 'the second HTTP request under way');

  const r = await admin(adminPort, 'POST', '/api/v1/admin', { drain: { timeout_s: 20 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.drain.state, 'draining');
  assert.equal(r.body.drain.exit, false);
  assert.equal((await admin(adminPort, 'GET', '/readyz')).status, 503);
  const st = (await admin(adminPort, 'GET', '/api/v1/admin')).body.drain;
  assert.equal(st.state, 'draining');
  assert.equal(st.source, 'api');
  assert.equal(st.timeout_s, 20);
  assert.equal(st.sessions_left, 2);
  assert.equal(Date.parse(st.deadline) - Date.parse(st.started), 20_000);
  await waitFor(async () => (await tryConnect(tcpPort)) === 'refused', 5000, 'a new TCP connection refused');
  await waitFor(async () => (await tryConnect(httpPort)) === 'refused', 5000, 'a new HTTP connection refused');
  // The idle keep-alive connection is closed; the busy one is answered with Connection: close, then closed.
  await idle.closed;
  busy.sock.write('two');
  await busy.closed;
  const second = busy.got().slice(before);
  assert.match(second, /^HTTP\/1\.1 200/);
  assert.match(second, /^connection: close/im);
  assert.match(second, /two/);

  // The live session still works; once it ends the node is drained, and stays up.
  c.sock.write('y');
  assert.equal((await c.recv(5000)).toString(), 'y');
  c.sock.end();
  const done = await waitFor(async () => {
    const d = (await admin(adminPort, 'GET', '/api/v1/admin')).body.drain;
    return d.state === 'drained' ? d : null;
  }, 5000, 'drained');
  assert.equal(done.cut, 0);
  assert.equal(done.sessions_left, 0);
  assert.equal((await admin(adminPort, 'GET', '/readyz')).body.status, 'drained');
  assert.equal(proxy.proc.exitCode, null, 'an API drain does not exit');
  // Another drain request reports the drain done.
  assert.equal((await admin(adminPort, 'POST', '/api/v1/admin', { drain: true })).body.drain.state, 'drained');

  const exit = exited(proxy);
  const t0 = Date.now();
  proxy.proc.kill('SIGTERM');
  const { code, at } = await exit;
  assert.equal(code, 0, proxy.stderr());
  assert.ok(at - t0 < 2000, `exited ${at - t0} ms after SIGTERM`);
});
