/**
 * Session names and metadata per listener (docs/l7mp-compat.md §3.1). Names are read from the actor
 * tree (sessions are children of listener nodes under worker nodes); metadata is not in the tree,
 * so it is checked through routing: JSONPredicate rules on /IP, /UDP, /TCP, /HTTP, /UNIX and /name
 * select between two clusters that answer differently.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WebSocket } from 'ws';
import { freePort, freeTcpPort, freeUdpPort, tmpDir, udpEcho, wsRecv } from '../helpers.ts';
import { closing, proxy, sessions, StreamPeer, udpClient, waitTotals } from './proto-helpers.ts';

/** Rules: `match` → inline cluster A (replies "A:"), anything else → B ("B:"). */
async function twoWay(t: import('node:test').TestContext): Promise<{ a: number; b: number }> {
  const a = closing(t, await udpEcho('A:'), (e) => e.close());
  const b = closing(t, await udpEcho('B:'), (e) => e.close());
  return { a: a.port, b: b.port };
}
const toUdp = (port: number) => ({ destination: { spec: { protocol: 'UDP', port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } });

function rules(match: unknown, ports: { a: number; b: number }): unknown[] {
  return [
    { match, action: { route: toUdp(ports.a) } },
    { action: { route: toUdp(ports.b) } },
  ];
}

async function ws(t: import('node:test').TestContext, url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const w = new WebSocket(url, { headers });
  await new Promise<void>((resolve, reject) => {
    w.once('open', () => resolve());
    w.once('error', reject);
  });
  return closing(t, w, (x) => x.terminate());
}

test('UDP session names are UDP:<raddr>:<rport>-<bindaddr>:<port>-<n>, under the listener node of a worker', async (t) => {
  const port = await freePort();
  const rt = await proxy(t, { listeners: [{ name: 'udp-l', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }] });
  const c1 = await udpClient(t);
  const c2 = await udpClient(t);
  await c1.request('x', port);
  await c2.request('y', port);
  const all = await sessions(rt);
  assert.deepEqual(all.map((s) => [s.workerNode, s.listenerNode, s.kind, s.name]).sort(), [
    ['worker:worker-0', 'listener:udp-l', 'session', `UDP:127.0.0.1:${c1.port}-127.0.0.1:${port}-0`],
    ['worker:worker-0', 'listener:udp-l', 'session', `UDP:127.0.0.1:${c2.port}-127.0.0.1:${port}-1`],
  ].sort());
  for (const s of all) {
    assert.equal(s.status, 'CONNECTED');
    assert.equal(s.listener, 'udp-l');
  }
});

test('UDP on ::1, TCP, WebSocket and UnixDomainSocket session names', async (t) => {
  const dir = closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
  const sock = path.join(dir, 'l.sock');
  const [u6, tcp4, tcpDual, wsPort] = [await freeUdpPort('::1'), await freeTcpPort(), await freeTcpPort('::'), await freeTcpPort()];
  const echo = [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }];
  const rt = await proxy(t, {
    listeners: [
      { name: 'u6', spec: { protocol: 'UDP', port: u6, address: '::1' }, rules: echo },
      { name: 'tcp4', spec: { protocol: 'TCP', port: tcp4, address: '127.0.0.1' }, rules: echo },
      { name: 'tcpdual', spec: { protocol: 'TCP', port: tcpDual }, rules: echo },
      { name: 'ws', spec: { protocol: 'WebSocket', port: wsPort, address: '127.0.0.1' }, rules: echo },
      { name: 'unix', spec: { protocol: 'UnixDomainSocket', filename: sock }, rules: echo },
    ],
  });
  const c6 = await udpClient(t, '::1');
  assert.equal((await c6.request('v6', u6, '::1')).toString(), 'v6');
  const ct = await StreamPeer.open(t, { host: '127.0.0.1', port: tcp4 });
  ct.sock.write('a');
  await ct.expect('a');
  // The default TCP bind is the dual-stack `::`: an IPv4 peer shows as ::ffff:127.0.0.1 (as l7mp).
  const cd = await StreamPeer.open(t, { host: '127.0.0.1', port: tcpDual });
  cd.sock.write('b');
  await cd.expect('b');
  const cw = await ws(t, `ws://127.0.0.1:${wsPort}/p`);
  cw.send('c');
  assert.equal((await wsRecv(cw)).toString(), 'c');
  const cu = await StreamPeer.open(t, { path: sock });
  cu.sock.write('d');
  await cu.expect('d');
  const byListener = new Map((await sessions(rt)).map((s) => [s.listenerNode, s.name]));
  assert.equal(byListener.size, 5);
  assert.equal(byListener.get('listener:u6'), `UDP:::1:${c6.port}-::1:${u6}-0`);
  assert.equal(byListener.get('listener:tcp4'), `TCP:127.0.0.1:${ct.sock.localPort}-127.0.0.1:${tcp4}`);
  assert.equal(byListener.get('listener:tcpdual'), `TCP:::ffff:127.0.0.1:${cd.sock.localPort}-::ffff:127.0.0.1:${tcpDual}`);
  assert.match(byListener.get('listener:ws') ?? '', new RegExp(`^WS:127\\.0\\.0\\.1:\\d+-127\\.0\\.0\\.1:${wsPort}-0$`));
  assert.equal(byListener.get('listener:unix'), 'UNIX:unix-0');
});

test('UDP metadata: /IP/src_addr, /UDP/src_port, /IP/dst_addr (the bind address), /UDP/dst_port, /name', async (t) => {
  const ports = await twoWay(t);
  const lport = await freePort();
  const chosen = await udpClient(t);
  const other = await udpClient(t);
  await proxy(t, {
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'UDP', port: lport, address: '127.0.0.1' },
        rules: rules(
          {
            op: 'and',
            apply: [
              { op: 'test', path: '/IP/src_addr', value: '127.0.0.1' },
              { op: 'test', path: '/UDP/src_port', value: chosen.port },
              { op: 'test', path: '/IP/dst_addr', value: '127.0.0.1' },
              { op: 'test', path: '/UDP/dst_port', value: lport },
              { op: 'test', path: '/name', value: `UDP:127.0.0.1:${chosen.port}-127.0.0.1:${lport}-0` },
            ],
          },
          ports,
        ),
      },
    ],
  });
  // `chosen` must be the first session (-0) for /name to match.
  assert.equal((await chosen.request('m', lport)).toString(), 'A:m');
  assert.equal((await other.request('m', lport)).toString(), 'B:m');
});

test('TCP metadata: /IP/src_addr, /TCP/src_port and /TCP/dst_port', async (t) => {
  const ports = await twoWay(t);
  const lport = await freeTcpPort();
  await proxy(t, {
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'TCP', port: lport, address: '127.0.0.1' },
        rules: rules(
          {
            op: 'and',
            apply: [
              { op: 'test', path: '/IP/src_addr', value: '127.0.0.1' },
              { op: 'test', path: '/IP/dst_addr', value: '127.0.0.1' },
              { op: 'type', path: '/TCP/src_port', value: 'number' },
              { op: 'test', path: '/TCP/dst_port', value: lport },
              { op: 'starts', path: '/name', value: 'TCP:127.0.0.1:' },
            ],
          },
          ports,
        ),
      },
    ],
  });
  const c = await StreamPeer.open(t, { host: '127.0.0.1', port: lport });
  c.sock.write('x');
  await c.expect('A:x');
});

test('WebSocket metadata: /HTTP/url/path (path and query), /HTTP/url/query, /HTTP/method, /HTTP/headers', async (t) => {
  const ports = await twoWay(t);
  const lport = await freeTcpPort();
  await proxy(t, {
    listeners: [
      {
        name: 'l',
        spec: { protocol: 'WebSocket', port: lport, address: '127.0.0.1' },
        rules: rules(
          {
            op: 'and',
            apply: [
              { op: 'test', path: '/HTTP/url/path', value: '/foo?x=1' },
              { op: 'test', path: '/HTTP/url/query', value: 'x=1' },
              { op: 'test', path: '/HTTP/method', value: 'GET' },
              { op: 'test', path: '/HTTP/version', value: '1.1' },
              { op: 'test', path: '/HTTP/headers/x-id', value: 'abc' },
              { op: 'defined', path: '/HTTP/headers/sec-websocket-key' },
              { op: 'test', path: '/TCP/dst_port', value: lport },
            ],
          },
          ports,
        ),
      },
    ],
  });
  const a = await ws(t, `ws://127.0.0.1:${lport}/foo?x=1`, { 'x-id': 'abc' });
  a.send('1');
  assert.equal((await wsRecv(a)).toString(), 'A:1');
  const b = await ws(t, `ws://127.0.0.1:${lport}/foo?x=2`, { 'x-id': 'abc' });
  b.send('2');
  assert.equal((await wsRecv(b)).toString(), 'B:2');
  const c = await ws(t, `ws://127.0.0.1:${lport}/foo?x=1`);
  c.send('3');
  assert.equal((await wsRecv(c)).toString(), 'B:3');
});

test('UnixDomainSocket metadata: /UNIX/filename is the socket path (l7mp bug B8 fixed)', async (t) => {
  const ports = await twoWay(t);
  const dir = closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
  const file = path.join(dir, 'm.sock');
  await proxy(t, { listeners: [{ name: 'l', spec: { protocol: 'UnixDomainSocket', filename: file }, rules: rules({ op: 'test', path: '/UNIX/filename', value: file }, ports) }] });
  const c = await StreamPeer.open(t, { path: file });
  c.sock.write('u');
  await c.expect('A:u');
});

test('a session with no matching rule ends at once: no reply, counted as ended', async (t) => {
  const lport = await freePort();
  const rt = await proxy(t, { listeners: [{ name: 'l', spec: { protocol: 'UDP', port: lport, address: '127.0.0.1' }, rules: [{ match: { op: 'test', path: '/UDP/src_port', value: 1 }, action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] }] });
  const c = await udpClient(t);
  c.send('lost', lport);
  await waitTotals(rt, { active: 0, ended: 1 });
  assert.equal((await sessions(rt)).length, 0);
  // Unlike l7mp (bug B9), the peer is not black-holed: its next datagram opens a new session.
  c.send('again', lport);
  await waitTotals(rt, { active: 0, ended: 2 });
});
