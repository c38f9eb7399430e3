/**
 * WebSocket listener fuzz (issue 12 item 1): hostile upgrade requests (weird request targets,
 * including the known query of death `GET http://[/`, broken handshake headers, raw bytes) and
 * hostile frames after a valid upgrade (random opcodes, RSV bits, unmasked frames, bad lengths,
 * invalid UTF-8 text, bad close codes), over 127.0.0.1 and ::1. Afterwards: the worker never
 * died, `malformed` counted the rejects, and a real WebSocket client still gets its echo.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { freeTcpPort, wsClient, wsRecv } from '../helpers.ts';
import { listenerCounter } from '../integration/proto-helpers.ts';
import { startAdmin } from '../../runtime/main/admin/index.ts';
import { makeLogger } from '../../common/log.ts';
import { assertWorkersAlive, bytes, chunked, closing, params, shot, splitAt, target } from './fuzz-helpers.ts';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const echoRoute = [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }];

/** A request head: method, target, version, headers, in HTTP/1.1 wire form. */
function head(method: string, target: string, version: string, headers: ReadonlyArray<readonly [string, string]>, eol = '\r\n'): string {
  return `${method} ${target} ${version}${eol}${headers.map(([k, v]) => `${k}: ${v}${eol}`).join('')}${eol}`;
}

const upgradeHeaders = (key = KEY, version = '13'): Array<[string, string]> => [
  ['Host', 'x'],
  ['Upgrade', 'websocket'],
  ['Connection', 'Upgrade'],
  ['Sec-WebSocket-Key', key],
  ['Sec-WebSocket-Version', version],
];

/** Request targets that hit URL parsing: absolute forms with broken hosts and ports, odd paths. */
const targets = fc.oneof(
  fc.constantFrom('http://[/', 'http://[', 'ws://[::1/', 'http://[::1]:99999/', 'http://a:-1/', 'http://%zz/', 'http://xn--/', 'HTTP://[fe80::1%25eth0]/', 'a+b-c.d://', 'http:///', '*', '/', '//[', '/?\u00e9'),
  fc.tuple(fc.constantFrom('http://', 'ws://', 'wss://', 'x://', ''), fc.string({ unit: 'binary-ascii', maxLength: 40 })).map(([s, r]) => s + r.replace(/[\s]/g, '')),
);

const headerName = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'Sec-WebSocket-Protocol', 'Sec-WebSocket-Extensions', 'Content-Length', 'Transfer-Encoding', 'Host'), fc.string({ minLength: 1, maxLength: 12 }));
const headerValue = fc.oneof(fc.constantFrom('', ',,,', 'permessage-deflate; client_max_window_bits=0', 'chunked', '-1', '99999999999999999999', 'a\u0000b'), fc.string({ unit: 'binary-ascii', maxLength: 40 }));

/** An upgrade request, mostly well-formed around one broken part. */
const upgradeRequest = fc
  .record({
    method: fc.constantFrom('GET', 'GET', 'POST', 'G\u00c9T', ''),
    target: targets,
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1x'),
    key: fc.constantFrom(KEY, '', 'short', 'dGhlIHNhbXBsZSBub25jZQ'),
    wsVersion: fc.constantFrom('13', '13', '8', '', 'x'),
    extra: fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }),
    eol: fc.constantFrom('\r\n', '\r\n', '\n'),
  })
  .map((r) => Buffer.from(head(r.method, r.target, r.version, [...upgradeHeaders(r.key, r.wsVersion), ...r.extra], r.eol), 'latin1'));

/** One frame (RFC 6455 §5.2) with every field chosen freely: the parser's input space. */
const frame = fc
  .record({
    fin: fc.boolean(),
    rsv: fc.integer({ min: 0, max: 7 }),
    opcode: fc.oneof(fc.constantFrom(0x1, 0x2, 0x8, 0x9, 0xa, 0x0), fc.integer({ min: 0, max: 15 })),
    masked: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    lenForm: fc.constantFrom('exact', 'exact', 'exact', '126', '127', 'lie'),
    payload: fc.oneof(bytes(200), fc.constantFrom(Uint8Array.from([0x03, 0xe8]), Uint8Array.from([0x03, 0xed]), Uint8Array.from([0x00, 0x00]), Uint8Array.from([0xc3, 0x28]), Uint8Array.from([0xed, 0xa0, 0x80]))),
    lie: fc.nat({ max: 0xffff }),
  })
  .map((f) => {
    const len = f.lenForm === 'lie' ? f.lie : f.payload.length;
    const hdr: number[] = [(f.fin ? 0x80 : 0) | (f.rsv << 4) | f.opcode];
    const m = f.masked ? 0x80 : 0;
    if (f.lenForm === '127') hdr.push(m | 127, 0, 0, 0, 0, (len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
    else if (f.lenForm === '126' || len > 125) hdr.push(m | 126, (len >>> 8) & 0xff, len & 0xff);
    else hdr.push(m | len);
    const mask = [0x37, 0xfa, 0x21, 0x3d];
    if (f.masked) hdr.push(...mask);
    const body = Uint8Array.from(f.payload, (b, i) => (f.masked ? b ^ (mask[i % 4] as number) : b));
    return Buffer.concat([Buffer.from(hdr), body]);
  });

test('WebSocket listener: fuzzed upgrade requests and frames never kill the worker; rejects are counted; a real client still works', async (t) => {
  const port = await freeTcpPort();
  const x = await target(t, { listeners: [{ name: 'ws', spec: { protocol: 'WebSocket', port, address: '::', max_payload: 4096 }, rules: echoRoute }] });
  const started = Date.now();

  // The query of death of issue 12, on both families: a 400, the connection closed, counted.
  for (const host of ['127.0.0.1', '::1']) {
    const r = await shot({ host, port }, [Buffer.from(head('GET', 'http://[/', 'HTTP/1.1', upgradeHeaders()))], 3000, undefined, false);
    assert.match(r.data.toString('latin1'), /^HTTP\/1\.1 400 /, `GET http://[/ upgrade over ${host}`);
    assert.ok(r.closed, 'the connection is closed after the 400');
  }
  assert.equal(await listenerCounter(x.rt, 'ws', 'malformed'), 2);
  assertWorkersAlive(x);

  // Upgrade requests, delivered in 1..6 chunks.
  await fc.assert(
    fc.asyncProperty(fc.tuple(upgradeRequest, fc.array(fc.nat(), { maxLength: 5 }), fc.boolean()), async ([req, cuts, v6]) => {
      await shot({ host: v6 ? '::1' : '127.0.0.1', port }, splitAt(req, cuts), 800, (d) => d.includes('\r\n\r\n'));
      assert.deepEqual(x.exits, []);
    }),
    params(t, 500),
  );
  // Raw bytes, then frames after a valid upgrade.
  await fc.assert(
    fc.asyncProperty(chunked(bytes(300)), async (chunks) => {
      await shot({ host: '127.0.0.1', port }, chunks, 500, (d) => d.length > 0);
      assert.deepEqual(x.exits, []);
    }),
    params(t, 200),
  );
  const before = await listenerCounter(x.rt, 'ws', 'malformed');
  await fc.assert(
    fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 3 }), async (frames, cuts) => {
      const upgrade = Buffer.from(head('GET', '/f', 'HTTP/1.1', upgradeHeaders()));
      await shot({ host: '127.0.0.1', port }, [upgrade, ...splitAt(Buffer.concat(frames), cuts)], 800);
      assert.deepEqual(x.exits, []);
    }),
    params(t, 500),
  );
  // An unmasked client frame is a protocol error (RFC 6455 §5.1): close 1002 and a count.
  const unmasked = await shot({ host: '127.0.0.1', port }, [Buffer.from(head('GET', '/', 'HTTP/1.1', upgradeHeaders())), Buffer.from([0x82, 0x01, 0x41])], 3000, (d) => d.includes(Buffer.from([0x88, 0x02, 0x03, 0xea])), false);
  assert.ok(unmasked.data.includes(Buffer.from([0x88, 0x02, 0x03, 0xea])), 'close frame with 1002');
  const after = await listenerCounter(x.rt, 'ws', 'malformed');
  assert.ok(after > before, `malformed frames were counted (${before} -> ${after})`);

  assertWorkersAlive(x);
  // The drops are exported as l7mp_listener_dropped_packets_total{reason="malformed"}.
  const admin = closing(t, await startAdmin(x.rt, { host: '127.0.0.1', port: 0, log: makeLogger('silent') }), (a) => a.close());
  const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('l7mp_listener_dropped_packets_total{') && l.includes('listenerName="ws"') && l.includes('reason="malformed"'));
  assert.equal(Number(line?.split(' ').at(-1)), after, `exported: ${line}`);
  for (const host of ['127.0.0.1', '[::1]']) {
    const ws = closing(t, await wsClient(`ws://${host}:${port}/legit`), (w) => w.terminate());
    ws.send(Buffer.from('still here'));
    assert.equal((await wsRecv(ws, 3000)).toString(), 'still here');
  }
  t.diagnostic(`ran in ${((Date.now() - started) / 1000).toFixed(1)} s; malformed=${after}`);
});
