/**
 * WebSocket cluster fuzz, the upstream side (issue 12 item 1: bytes from an upstream are as
 * untrusted as bytes from a downstream): a raw TCP upstream answers each upgrade with a fuzzed
 * handshake response (statuses, missing or wrong Sec-WebSocket-Accept, odd headers) or with a
 * valid 101 followed by fuzzed frames (masked server frames, reserved opcodes, RSV bits, lying
 * lengths, invalid UTF-8, bad close codes), then closes. A UDP listener routes to it. Afterwards:
 * the worker never died, and a well-behaved upstream frame still reaches the UDP client.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fc from 'fast-check';
import { freeUdpPort, waitFor } from '../helpers.ts';
import { udpClient } from '../integration/proto-helpers.ts';
import { assertWorkersAlive, bytes, params, rawServer, target } from './fuzz-helpers.ts';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** What the upstream answers: a handshake (null: the valid 101 for the request's key) and frames. */
interface Answer {
  handshake: string | null;
  frames: Buffer;
}

/** A raw upstream: answers each connection's upgrade request with `answer`, then ends. */
async function rawWsUpstream(t: TestContext): Promise<{ port: number; answer: Answer; closed: number }> {
  const state = { port: 0, answer: { handshake: null, frames: Buffer.alloc(0) } as Answer, closed: 0 };
  state.port = await rawServer(t, (s) => {
    s.once('close', () => {
      state.closed++;
    });
    let head = '';
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.removeListener('data', onData);
      s.resume();
      const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? '';
      const accept = crypto.createHash('sha1').update(key + GUID).digest('base64');
      const hs = state.answer.handshake ?? `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
      s.end(Buffer.concat([Buffer.from(hs, 'latin1'), state.answer.frames]));
    };
    s.on('data', onData);
  });
  return state;
}

/** A server-to-client frame with every field free (a valid one is unmasked, RFC 6455 §5.1). */
const frame = fc
  .record({
    fin: fc.boolean(),
    rsv: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 7 }) }),
    opcode: fc.oneof(fc.constantFrom(0x1, 0x2, 0x2, 0x8, 0x9, 0xa), fc.integer({ min: 0, max: 15 })),
    masked: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    payload: fc.oneof(bytes(200), fc.constantFrom(Uint8Array.from([0x03, 0xe8]), Uint8Array.from([0x03, 0xed]), Uint8Array.from([0xc3, 0x28]))),
    lie: fc.option(fc.nat({ max: 0xffff })),
  })
  .map((f) => {
    const len = f.lie ?? f.payload.length;
    const hdr: number[] = [(f.fin ? 0x80 : 0) | (f.rsv << 4) | f.opcode];
    const m = f.masked ? 0x80 : 0;
    if (len > 125) hdr.push(m | 126, (len >>> 8) & 0xff, len & 0xff);
    else hdr.push(m | len);
    if (f.masked) hdr.push(1, 2, 3, 4);
    return Buffer.concat([Buffer.from(hdr), Buffer.from(f.payload)]);
  });

const handshake = fc.oneof(
  { weight: 3, arbitrary: fc.constant(null) },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n',
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n',
        'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi',
        'HTTP/1.1 099 Weird\r\n\r\n',
        'HTTP/1.1 101\r\nSec-WebSocket-Protocol: x\r\n\r\n',
        'garbage\r\n\r\n',
        '',
      ),
      fc.tuple(fc.integer({ min: 0, max: 999 }), fc.string({ unit: 'binary-ascii', maxLength: 30 })).map(([c, h]) => `HTTP/1.1 ${String(c).padStart(3, '0')} X\r\n${h}\r\n\r\n`),
    ),
  },
);

test('WebSocket cluster: fuzzed upstream handshakes and frames never kill the worker; a good upstream frame still arrives', async (t) => {
  const up = await rawWsUpstream(t);
  const port = await freeUdpPort();
  const x = await target(t, {
    listeners: [{ name: 'u', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'WebSocket', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }] }],
  });
  const started = Date.now();
  await fc.assert(
    fc.asyncProperty(handshake, fc.array(frame, { maxLength: 4 }), async (hs, frames) => {
      up.answer = { handshake: hs, frames: Buffer.concat(frames) };
      const before = up.closed;
      const c = await udpClient(t);
      c.send('hello', port);
      // The upstream ends every connection after its answer: wait until it is gone (bounded).
      await waitFor(() => up.closed > before, 3000, 'the upstream connection to close');
      assert.deepEqual(x.exits, []);
    }),
    params(t, 200),
  );
  assertWorkersAlive(x);
  up.answer = { handshake: null, frames: Buffer.from([0x82, 0x0a, ...Buffer.from('still here')]) };
  const c = await udpClient(t);
  c.send('hello', port);
  assert.equal((await c.recv(3000)).toString(), 'still here');
  t.diagnostic(`ran in ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
