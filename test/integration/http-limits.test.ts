/**
 * Timeouts and size limits of the HTTP listener (issue 12 item 3; docs/threat-model.md): a
 * request-head deadline against slowloris (408, close), a whole-request deadline, 431 for a large
 * head, 413 for a large body (by Content-Length, and counted as a chunked body streams), the
 * keep-alive timeout. Real sockets on 127.0.0.1, short configured deadlines, bounded waits on
 * counters and closes (no fixed sleeps).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Runtime } from '../../runtime/main/runtime.ts';
import { freeTcpPort, waitFor } from '../helpers.ts';
import { closing, listenerCounter, proxy } from './proto-helpers.ts';

/** A raw client socket: what it read, and whether it is closed. */
interface Raw {
  sock: net.Socket;
  data: string;
  closed: boolean;
  closedAt: number;
}

async function raw(t: TestContext, port: number): Promise<Raw> {
  const sock = net.createConnection({ host: '127.0.0.1', port });
  const r: Raw = { sock, data: '', closed: false, closedAt: 0 };
  sock.on('data', (d: Buffer) => {
    r.data += d.toString('latin1');
  });
  sock.on('error', () => {});
  sock.on('close', () => {
    r.closed = true;
    r.closedAt = Date.now();
  });
  closing(t, r, (x) => x.sock.destroy());
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  return r;
}

/** An HTTP listener with `options`, routed to `destination` (a cluster spec). */
async function httpProxy(t: TestContext, options: Record<string, unknown>, destination: Record<string, unknown> = { protocol: 'Echo' }): Promise<{ rt: Runtime; port: number }> {
  const port = await freeTcpPort();
  const rt = await proxy(t, {
    listeners: [{ name: 'h', spec: { protocol: 'HTTP', port, address: '127.0.0.1', options }, rules: [{ action: { route: { destination: { spec: destination } } } }] }],
  });
  return { rt, port };
}

async function endedWith(rt: Runtime, code: string): Promise<number> {
  let n = 0;
  for (const s of (await rt.metrics()).slots) for (const l of s.metrics?.listeners ?? []) if (l.name === 'h') n += l.ended[code] ?? 0;
  return n;
}

test('slowloris: 200 connections sending one header byte at a time all get 408 and are closed by the header deadline; a legitimate request is served meanwhile', { timeout: 60_000 }, async (t) => {
  const HEADER_S = 0.6;
  const { rt, port } = await httpProxy(t, { header_timeout: HEADER_S });
  const N = 200;
  const line = 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(4000);
  const peers: Raw[] = [];
  for (let i = 0; i < N; i++) peers.push(await raw(t, port));
  const start = Date.now();
  // One byte per connection every 50 ms: each stays active, none completes its head.
  let pos = 0;
  const drip = setInterval(() => {
    const b = line[pos++ % line.length] as string;
    for (const p of peers) if (!p.closed) p.sock.write(b);
  }, 50);
  closing(t, drip, (x) => clearInterval(x));

  const res = await fetch(`http://127.0.0.1:${port}/legit`, { method: 'POST', body: 'legit', signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'legit');

  // Deadline + check interval (deadline / 4) + slack for a loaded 2-core machine.
  await waitFor(() => peers.every((p) => p.closed), 10_000, 'every slowloris connection to be closed');
  clearInterval(drip);
  const last = Math.max(...peers.map((p) => p.closedAt)) - start;
  const first = Math.min(...peers.map((p) => p.closedAt)) - start;
  assert.ok(first >= HEADER_S * 1000 - 100, `none closed before the deadline (first at ${first} ms)`);
  assert.ok(last < 8000, `all closed within the bound (last at ${last} ms)`);
  const with408 = peers.filter((p) => p.data.startsWith('HTTP/1.1 408 ')).length;
  assert.equal(with408, N, `every one got 408 (${with408}/${N})`);
  assert.equal(await listenerCounter(rt, 'h', 'header_timeout'), N);
  assert.equal(await listenerCounter(rt, 'h', 'sessions'), 1, 'only the legitimate request made a session');
});

test('a connection that sends nothing is closed by the header deadline too', async (t) => {
  const { rt, port } = await httpProxy(t, { header_timeout: 0.3 });
  const p = await raw(t, port);
  await waitFor(() => p.closed, 5000, 'the silent connection to close');
  assert.match(p.data, /^HTTP\/1\.1 408 /);
  assert.equal(await listenerCounter(rt, 'h', 'header_timeout'), 1);
});

test('413: a Content-Length over max_body_size is refused before any session; a body under it is served', async (t) => {
  const { rt, port } = await httpProxy(t, { max_body_size: 1000 });
  const ok = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: 'x'.repeat(1000), signal: AbortSignal.timeout(10_000) });
  assert.equal(ok.status, 200);
  assert.equal((await ok.text()).length, 1000);
  const p = await raw(t, port);
  p.sock.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n');
  await waitFor(() => p.closed, 5000, 'the connection to close');
  assert.match(p.data, /^HTTP\/1\.1 413 Payload Too Large\r\n/);
  assert.match(p.data, /"status": 413/);
  assert.equal(await listenerCounter(rt, 'h', 'body_too_large'), 1);
  assert.equal(await listenerCounter(rt, 'h', 'sessions'), 1);
});

test('413 with Expect: 100-continue: the 413 comes instead of the 100; under the limit the 100 comes and the body is served', async (t) => {
  const { rt, port } = await httpProxy(t, { max_body_size: 1000 });
  const p = await raw(t, port);
  p.sock.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n');
  await waitFor(() => p.closed, 5000, 'the connection to close');
  assert.match(p.data, /^HTTP\/1\.1 413 /);
  assert.doesNotMatch(p.data, /100 Continue/);
  const q = await raw(t, port);
  q.sock.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
  await waitFor(() => q.data.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), 5000, 'the 100');
  q.sock.write('hello');
  await waitFor(() => q.data.includes('hello'), 5000, 'the echo');
  assert.match(q.data, /HTTP\/1\.1 200 /);
  assert.equal(await listenerCounter(rt, 'h', 'body_too_large'), 1);
});

test('413: a chunked body is counted as it streams; over max_body_size the session ends with L7_ERR_DOWNSTREAM_LIMIT', async (t) => {
  // Discard answers nothing before the body ends: the 413 can still be sent.
  const { rt, port } = await httpProxy(t, { max_body_size: 1000 }, { protocol: 'Discard' });
  const p = await raw(t, port);
  p.sock.write('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
  const chunk = `${(300).toString(16)}\r\n${'y'.repeat(300)}\r\n`;
  for (let i = 0; i < 10 && !p.closed && p.data === ''; i++) {
    p.sock.write(chunk);
    await waitFor(async () => (await listenerCounter(rt, 'h', 'sessions')) === 1, 3000, 'the session');
    await new Promise((r) => setImmediate(r));
  }
  await waitFor(() => p.data.length > 0, 5000, 'the 413');
  assert.match(p.data, /^HTTP\/1\.1 413 Payload Too Large\r\n/);
  await waitFor(() => p.closed, 5000, 'the connection to close');
  assert.equal(await listenerCounter(rt, 'h', 'body_too_large'), 1);
  await waitFor(async () => (await endedWith(rt, 'L7_ERR_DOWNSTREAM_LIMIT')) === 1, 5000, 'the session to end with L7_ERR_DOWNSTREAM_LIMIT');
});

test('a slow body hits request_timeout: 408 and close, counted as request_timeout', async (t) => {
  const { rt, port } = await httpProxy(t, { header_timeout: 0.3, request_timeout: 0.8 }, { protocol: 'Discard' });
  const p = await raw(t, port);
  p.sock.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n');
  const drip = setInterval(() => p.closed || p.sock.write('z'), 50);
  closing(t, drip, (x) => clearInterval(x));
  await waitFor(() => p.closed, 5000, 'the slow body to be cut');
  assert.match(p.data, /^HTTP\/1\.1 408 /);
  assert.equal(await listenerCounter(rt, 'h', 'request_timeout'), 1);
  assert.equal(await listenerCounter(rt, 'h', 'header_timeout'), 0);
});

test('431: a request head over max_header_size', async (t) => {
  const { rt, port } = await httpProxy(t, { max_header_size: 2048 });
  const p = await raw(t, port);
  p.sock.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(4000)}\r\n\r\n`);
  await waitFor(() => p.closed, 5000, 'the connection to close');
  assert.match(p.data, /^HTTP\/1\.1 431 /);
  assert.equal(await listenerCounter(rt, 'h', 'header_too_large'), 1);
});

test('a kept-alive connection idle past keepalive_timeout is closed and counted', async (t) => {
  const { rt, port } = await httpProxy(t, { keepalive_timeout: 0.2 });
  const p = await raw(t, port);
  p.sock.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi');
  await waitFor(() => p.data.endsWith('hi') || p.data.includes('\r\n0\r\n\r\n'), 5000, 'the response');
  await waitFor(() => p.closed, 5000, 'the idle connection to close');
  assert.equal(await listenerCounter(rt, 'h', 'keepalive_timeout'), 1);
});
