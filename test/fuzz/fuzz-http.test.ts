/**
 * HTTP listener fuzz (issue 12 item 1): request heads with weird targets (absolute forms that
 * `new URL()` rejects), methods, versions and headers (`__proto__`, duplicate and broken lengths,
 * chunked bodies with garbage sizes), bare LF line ends, raw bytes, all split into arbitrary
 * chunks, over 127.0.0.1 and ::1. The listener routes to Echo. Afterwards: the worker never died,
 * `malformed` counted the rejects, every answer was a well-formed status line, and a real request
 * still gets its body echoed.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fc from 'fast-check';
import { freeTcpPort } from '../helpers.ts';
import { listenerCounter } from '../integration/proto-helpers.ts';
import { assertWorkersAlive, bytes, chunked, params, rawServer, shot, splitAt, target } from './fuzz-helpers.ts';

const echoRoute = [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }];

const targets = fc.oneof(
  fc.constantFrom('http://[/', 'http://[::1]:99999/', 'http://%zz/', 'HTTP://[fe80::1%25eth0]/', 'x://', 'http:///', '*', '/', '//[', '/a?b=%zz', 'http://u:p@h/?q#f'),
  fc.tuple(fc.constantFrom('http://', 'https://', '/', ''), fc.string({ unit: 'binary-ascii', maxLength: 40 })).map(([s, r]) => s + r.replace(/\s/g, '')),
);
const headerName = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'Content-Length', 'Transfer-Encoding', 'Host', 'Expect', 'Connection', 'Upgrade'), fc.string({ minLength: 1, maxLength: 12 }));
const headerValue = fc.oneof(fc.constantFrom('', '0', '-1', '5, 6', '99999999999999999999', 'chunked', 'gzip, chunked', '100-continue', 'close', 'a\u0000b'), fc.string({ unit: 'binary-ascii', maxLength: 40 }));
const body = fc.oneof(bytes(200), fc.constantFrom('5\r\nhello\r\n0\r\n\r\n', 'zz\r\nx\r\n', 'fffffffffffffffff\r\n', '5;ext=\u0000\r\nhello\r\n').map((s) => Buffer.from(s, 'latin1')));

/** Requests (one or two pipelined), mostly well-formed around the broken parts. */
const request = fc
  .record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'CONNECT', 'G\u00c9T', 'PRI', ''),
    target: targets,
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1x', ''),
    headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 5 }),
    eol: fc.constantFrom('\r\n', '\r\n', '\n'),
    body,
  })
  .map((r) => Buffer.concat([Buffer.from(`${r.method} ${r.target} ${r.version}${r.eol}Host: x${r.eol}${r.headers.map(([k, v]) => `${k}: ${v}${r.eol}`).join('')}${r.eol}`, 'latin1'), r.body]));

/** Every answer the proxy wrote starts with a status line. */
function wellFormed(data: Buffer): boolean {
  return data.length === 0 || /^HTTP\/1\.1 \d{3} /.test(data.toString('latin1'));
}

test('HTTP listener: fuzzed requests never kill the worker; malformed ones are 400/431 and counted; a real request still works', async (t) => {
  const port = await freeTcpPort();
  const x = await target(t, { listeners: [{ name: 'h', spec: { protocol: 'HTTP', port, address: '::' }, rules: echoRoute }] });
  const started = Date.now();

  // A target new URL() rejects: 400 with l7mp's JSON error body, never a session.
  for (const host of ['127.0.0.1', '::1']) {
    const r = await shot({ host, port }, [Buffer.from('GET http://[/ HTTP/1.1\r\nHost: x\r\n\r\n')], 3000, (d) => d.includes('}'), false);
    assert.match(r.data.toString(), /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*"content": "Malformed request target"/);
  }
  // Node's parser rejects: 400; a head over maxHeaderSize: 431. Both close the connection.
  const bad = await shot({ host: '127.0.0.1', port }, [Buffer.from('GET / HTTP/1.1\r\nBad Header\r\n\r\n')], 3000, undefined, false);
  assert.match(bad.data.toString(), /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.ok(bad.closed);
  const big = await shot({ host: '127.0.0.1', port }, [Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(17 * 1024)}\r\n\r\n`)], 3000, undefined, false);
  assert.match(big.data.toString(), /^HTTP\/1\.1 431 /);
  assert.equal(await listenerCounter(x.rt, 'h', 'malformed'), 3);
  assert.equal(await listenerCounter(x.rt, 'h', 'header_too_large'), 1);

  await fc.assert(
    fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 2 }), fc.array(fc.nat(), { maxLength: 5 }), fc.boolean(), async (reqs, cuts, v6) => {
      const r = await shot({ host: v6 ? '::1' : '127.0.0.1', port }, splitAt(Buffer.concat(reqs), cuts), 800);
      assert.ok(wellFormed(r.data), `answer ${JSON.stringify(r.data.subarray(0, 80).toString('latin1'))}`);
      assert.deepEqual(x.exits, []);
    }),
    params(t, 500),
  );
  await fc.assert(
    fc.asyncProperty(chunked(bytes(300)), async (chunks) => {
      const r = await shot({ host: '127.0.0.1', port }, chunks, 500, (d) => d.length > 0);
      assert.ok(wellFormed(r.data));
      assert.deepEqual(x.exits, []);
    }),
    params(t, 200),
  );

  assertWorkersAlive(x);
  const malformed = await listenerCounter(x.rt, 'h', 'malformed');
  assert.ok(malformed > 4, `fuzzed rejects were counted (${malformed})`);
  for (const host of ['127.0.0.1', '::1']) {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host, port, method: 'POST', path: '/legit', timeout: 3000, agent: false }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 3 s')));
      req.on('error', reject);
      req.end('still here');
    });
    assert.deepEqual(answer, { status: 200, body: 'still here' });
  }
  t.diagnostic(`ran in ${((Date.now() - started) / 1000).toFixed(1)} s; malformed=${malformed}`);
});

/** An upstream that answers every connection's first read with `reply.bytes`, then closes. */
async function rawUpstream(t: TestContext): Promise<{ port: number; reply: { bytes: Buffer } }> {
  const state = { port: 0, reply: { bytes: Buffer.alloc(0) } };
  state.port = await rawServer(t, (s) => s.once('data', () => s.end(state.reply.bytes)));
  return state;
}

const statusLine = fc.oneof(
  fc.constantFrom('HTTP/1.1 099 Weird', 'HTTP/1.1 000 Zero', 'HTTP/1.1 200 OK', 'HTTP/1.1 101 Switching Protocols', 'HTTP/1.1 204 No Content', 'HTTP/1.1 999 Max', 'HTTP/1.1 1000 Big', 'HTTP/1.0 200', 'HTTP/1.1 200 \u00ff\u0001', 'ICY 200 OK', ''),
  fc.tuple(fc.integer({ min: 0, max: 1200 }), fc.string({ unit: 'binary-ascii', maxLength: 12 })).map(([c, m]) => `HTTP/1.1 ${String(c).padStart(3, '0')} ${m.replace(/[\r\n]/g, '')}`),
);
const upstreamReply = fc
  .record({ status: statusLine, headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }), eol: fc.constantFrom('\r\n', '\n'), body })
  .map((r) => Buffer.concat([Buffer.from(`${r.status}${r.eol}${r.headers.map(([k, v]) => `${k}: ${v}${r.eol}`).join('')}${r.eol}`, 'latin1'), r.body]));

test('HTTP listener to an HTTP cluster: fuzzed upstream responses never kill the worker; an invalid status is a 502', async (t) => {
  const up = await rawUpstream(t);
  const port = await freeTcpPort();
  const x = await target(t, {
    listeners: [{ name: 'h', spec: { protocol: 'HTTP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'HTTP', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }] }],
  });
  const started = Date.now();
  const ask = () => shot({ host: '127.0.0.1', port }, [Buffer.from('GET /q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')], 3000, undefined, false);
  // Node's client parses a status of 099; relaying it would make writeHead throw in the worker.
  up.reply.bytes = Buffer.from('HTTP/1.1 099 Weird\r\nContent-Length: 2\r\n\r\nhi');
  assert.match((await ask()).data.toString('latin1'), /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  assertWorkersAlive(x);
  await fc.assert(
    fc.asyncProperty(upstreamReply, async (reply) => {
      up.reply.bytes = reply;
      const r = await ask();
      assert.ok(wellFormed(r.data), `answer ${JSON.stringify(r.data.subarray(0, 80).toString('latin1'))}`);
      assert.deepEqual(x.exits, []);
    }),
    params(t, 300),
  );
  assertWorkersAlive(x);
  up.reply.bytes = Buffer.from('HTTP/1.1 201 Made\r\nContent-Length: 10\r\n\r\nstill here');
  const ok = await ask();
  assert.match(ok.data.toString(), /^HTTP\/1\.1 201 Made\r\n[\s\S]*\r\n\r\n(a\r\n)?still here/);
  t.diagnostic(`ran in ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
