/**
 * JSONSocket v1 (docs/l7mp-compat.md §5) over real sockets: the listener over UDP, TCP, Unix stream
 * sockets and WebSocket (header → metadata.JSONSocket, 200 after the route is up, 400/505 for bad
 * headers, l7mp's 404 for no route, a header timeout), and the cluster (header built from the
 * session metadata, reply checked) chained into a JSONSocket listener of the same proxy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WebSocket } from 'ws';
import { freePort, freeTcpPort, tmpDir, udpEcho, waitFor, wsRecv } from '../helpers.ts';
import type { Runtime } from '../../runtime/main/runtime.ts';
import { closing, listenerCounter, proxy, StreamPeer, udpClient } from './proto-helpers.ts';

/** Ended sessions of a listener by reason, summed over workers. */
async function endedBy(rt: Runtime, listener: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of (await rt.metrics()).slots) {
    for (const l of s.metrics?.listeners ?? []) {
      if (l.name !== listener) continue;
      for (const [k, n] of Object.entries(l.ended)) out[k] = (out[k] ?? 0) + n;
    }
  }
  return out;
}

const OK = '{"JSONSocketVersion":1,"JSONSocketStatus":200,"JSONSocketMessage":"OK"}';
const hdr = (h: Record<string, unknown>) => JSON.stringify({ JSONSocketVersion: 1, ...h });

/** Rules: /JSONSocket/service == "echo" → Echo; == "up" → the UDP upstream at `upPort`; else no route. */
function rules(upPort = 9): unknown[] {
  return [
    { match: { op: 'test', path: '/JSONSocket/service', value: 'echo' }, action: { route: { destination: { spec: { protocol: 'Echo' } } } } },
    {
      match: { op: 'test', path: '/JSONSocket/service', value: 'up' },
      action: { route: { destination: { spec: { protocol: 'UDP', port: upPort }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } },
    },
  ];
}

const jsl = (transport: Record<string, unknown>, r: unknown[] = rules(), options?: Record<string, unknown>) => ({
  listeners: [{ name: 'js', spec: { protocol: 'JSONSocket', transport, ...(options ? { options } : {}) }, rules: r }],
});

test('JSONSocket over UDP: 200 after the route is up, then payload both ways; header values route the session', async (t) => {
  const up = closing(t, await udpEcho('up: '), (e) => e.close());
  const port = await freePort();
  await proxy(t, jsl({ protocol: 'UDP', port, address: '127.0.0.1' }, rules(up.port)));
  const c = await udpClient(t);
  assert.equal((await c.request(hdr({ service: 'up', user: 'alice' }), port)).toString(), OK);
  assert.equal((await c.request('hello', port)).toString(), 'up: hello');
  // The header is not passed on as data: the upstream saw the payload only.
  assert.equal(up.received, 1);

  const e = await udpClient(t);
  assert.equal((await e.request(hdr({ service: 'echo' }), port)).toString(), OK);
  assert.equal((await e.request('ping', port)).toString(), 'ping');
});

test('JSONSocket over UDP: no route is l7mp\'s 404 reply; bad headers are 400 and 505', async (t) => {
  const port = await freePort();
  const rt = await proxy(t, jsl({ protocol: 'UDP', port, address: '127.0.0.1' }));
  const ask = async (msg: string) => {
    const c = await udpClient(t);
    return JSON.parse((await c.request(msg, port)).toString()) as { JSONSocketVersion: number; JSONSocketStatus: number; JSONSocketMessage: string };
  };
  const nr = await ask(hdr({ service: 'nowhere' }));
  assert.equal(nr.JSONSocketVersion, 1);
  assert.equal(nr.JSONSocketStatus, 404);
  assert.match(nr.JSONSocketMessage, /^Not Found: No route for session "JSONSocket:js-\d+"$/);

  const notJson = await ask('hello');
  assert.equal(notJson.JSONSocketStatus, 400);
  assert.match(notJson.JSONSocketMessage, /^Bad Request: /);
  assert.equal((await ask('{"service":"echo"}')).JSONSocketStatus, 400, 'no version');
  assert.equal((await ask('{"JSONSocketVersion":"a"}')).JSONSocketStatus, 400, 'version not a number');
  assert.equal((await ask('{"JSONSocketVersion":0.4}')).JSONSocketStatus, 400, 'version not an integer');
  const v2 = await ask('{"JSONSocketVersion":2}');
  assert.equal(v2.JSONSocketStatus, 505);
  assert.match(v2.JSONSocketMessage, /Unsupported JSONSocket version 2/);
  // Rejected headers are counted as malformed drops; the no-route one reached routing.
  assert.equal(await listenerCounter(rt, 'js', 'malformed'), 5);
  assert.equal(await listenerCounter(rt, 'js', 'sessions'), 1);
});

test('JSONSocket over TCP: header and payload in one write, then more payload; the reply comes first', async (t) => {
  const port = await freeTcpPort();
  await proxy(t, jsl({ protocol: 'TCP', port, address: '127.0.0.1' }));
  const c = await StreamPeer.open(t, { host: '127.0.0.1', port });
  c.sock.write(`${hdr({ service: 'echo', nested: { a: '{"}' } })}first`);
  await c.expect(`${OK}first`);
  c.sock.write('second');
  await c.expect(`${OK}firstsecond`);
});

test('JSONSocket over TCP: a header split over several writes; no header in time is a 408 and a close', async (t) => {
  const port = await freeTcpPort();
  await proxy(t, jsl({ protocol: 'TCP', port, address: '127.0.0.1' }, rules(), { header_timeout: 0.3 }));
  const c = await StreamPeer.open(t, { host: '127.0.0.1', port });
  const h = hdr({ service: 'echo' });
  c.sock.write(h.slice(0, 5));
  await new Promise((r) => setTimeout(r, 20));
  c.sock.write(h.slice(5));
  await c.expect(OK);
  c.sock.write('x');
  await c.expect(`${OK}x`);

  const silent = await StreamPeer.open(t, { host: '127.0.0.1', port });
  await waitFor(() => silent.closed, 5000, 'the silent connection to be closed');
  const r = JSON.parse(silent.received) as { JSONSocketStatus: number };
  assert.equal(r.JSONSocketStatus, 408);
});

test('JSONSocket over a Unix stream socket', async (t) => {
  const dir = closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
  const file = path.join(dir, 'js.sock');
  await proxy(t, jsl({ protocol: 'UnixDomainSocket', filename: file }));
  const c = await StreamPeer.open(t, { path: file });
  c.sock.write(hdr({ service: 'echo' }));
  await c.expect(OK);
  c.sock.write('over unix');
  await c.expect(`${OK}over unix`);
});

test('JSONSocket over WebSocket: one message per header, reply and payload', async (t) => {
  const port = await freeTcpPort();
  await proxy(t, jsl({ protocol: 'WebSocket', port, address: '127.0.0.1' }));
  const w = closing(t, new WebSocket(`ws://127.0.0.1:${port}/x`), (x) => x.terminate());
  await new Promise<void>((resolve, reject) => {
    w.once('open', () => resolve());
    w.once('error', reject);
  });
  const first = wsRecv(w);
  w.send(hdr({ service: 'echo' }));
  assert.equal((await first).toString(), OK);
  const second = wsRecv(w);
  w.send('ws payload');
  assert.equal((await second).toString(), 'ws payload');
});

test('JSONSocket cluster → JSONSocket listener: header from metadata and constants, boundaries kept', async (t) => {
  const port = await freePort();
  const jsPort = await freePort();
  await proxy(t, {
    listeners: [
      {
        name: 'front',
        spec: { protocol: 'UDP', port, address: '127.0.0.1' },
        rules: [
          {
            action: {
              route: {
                destination: {
                  name: 'to-js',
                  spec: {
                    protocol: 'JSONSocket',
                    transport: { protocol: 'UDP', port: jsPort },
                    header: [{ path: { from: '/IP', to: '/client/ip' } }, { set: { key: '/service', value: 'echo' } }, { set: { key: 'count', value: 0 } }],
                  },
                  endpoints: [{ spec: { address: '127.0.0.1' } }],
                },
              },
            },
          },
        ],
      },
      {
        name: 'js',
        spec: { protocol: 'JSONSocket', transport: { protocol: 'UDP', port: jsPort, address: '127.0.0.1' } },
        rules: [
          {
            // The header carried the client address (copied from /IP) and a falsy constant (0).
            match: { op: 'and', apply: [{ op: 'test', path: '/JSONSocket/client/ip/src_addr', value: '127.0.0.1' }, { op: 'test', path: '/JSONSocket/count', value: 0 }] },
            action: { route: { destination: { spec: { protocol: 'Echo' } } } },
          },
        ],
      },
    ],
  });
  const c = await udpClient(t);
  assert.equal((await c.request('through', port, '127.0.0.1', 2000)).toString(), 'through');
  for (const d of [Buffer.from('a'), Buffer.alloc(1400, 0x62)]) {
    const r = await c.request(d, port);
    assert.ok(r.equals(d), `datagram of ${d.length} bytes changed`);
  }
});

test('JSONSocket cluster: a 404 reply fails the stage, and the session ends with L7_ERR_UPSTREAM_CONNECT', async (t) => {
  const port = await freePort();
  const jsPort = await freePort();
  const rt = await proxy(t, {
    listeners: [
      {
        name: 'front',
        spec: { protocol: 'UDP', port, address: '127.0.0.1' },
        rules: [{ action: { route: { destination: { spec: { protocol: 'JSONSocket', transport: { protocol: 'UDP', port: jsPort } }, endpoints: [{ spec: { address: '127.0.0.1' } }] }, retry: { retry_on: 'never', timeout: 1000 } } } }],
      },
      { name: 'js', spec: { protocol: 'JSONSocket', transport: { protocol: 'UDP', port: jsPort, address: '127.0.0.1' } }, rules: [] },
    ],
  });
  const c = await udpClient(t);
  c.send('x', port);
  await waitFor(async () => (await endedBy(rt, 'front')).L7_ERR_UPSTREAM_CONNECT === 1, 5000, 'the front session to fail with L7_ERR_UPSTREAM_CONNECT');
  assert.equal(await listenerCounter(rt, 'js', 'sessions'), 1, 'the JSONSocket listener routed (and refused) one session');
});
