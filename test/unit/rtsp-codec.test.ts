/** RTSP codec (protocols/rtsp/codec.ts) fed with byte fixtures, whole and in every chunking. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RtspParser, encode, formatTransport, header, lowerTransport, param, parsePorts, parseTransport, requestMetadata, setParam, type RtspMessage } from '../../protocols/rtsp/codec.ts';

const SETUP = 'SETUP rtsp://10.0.0.2:8554/test/stream=0 RTSP/1.0\r\nTransport: RTP/AVP/UDP;unicast;client_port=23712-23713\r\nCSeq: 3\r\nUser-Agent: Lavf59.27.100\r\n\r\n';
const SDP = 'v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=Session\r\nm=video 0 RTP/AVP 26\r\na=control:stream=0\r\n';
const DESCRIBE_REPLY = `RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Base: rtsp://10.0.0.2:8554/test/\r\nContent-Length: ${SDP.length}\r\n\r\n${SDP}`;
const FRAME = Buffer.from([0x24, 0x01, 0x00, 0x03, 0xaa, 0xbb, 0xcc]);

function collect(chunks: Buffer[]): { msgs: RtspMessage[]; frames: Array<[number, string]>; errors: string[] } {
  const out = { msgs: [] as RtspMessage[], frames: [] as Array<[number, string]>, errors: [] as string[] };
  const p = new RtspParser({
    message: (m) => out.msgs.push(m),
    frame: (ch, d) => out.frames.push([ch, d.toString('hex')]),
    error: (r) => out.errors.push(r),
  });
  for (const c of chunks) p.push(c);
  return out;
}

test('parser: a request, a response with a body and an interleaved frame, whole and split at every byte', () => {
  const all = Buffer.concat([Buffer.from(SETUP), FRAME, Buffer.from(DESCRIBE_REPLY), FRAME]);
  for (let cut = 0; cut <= all.length; cut++) {
    const r = collect([all.subarray(0, cut), all.subarray(cut)]);
    assert.deepEqual(r.errors, [], `cut ${cut}`);
    assert.equal(r.msgs.length, 2, `cut ${cut}`);
    assert.deepEqual(r.frames, [
      [1, 'aabbcc'],
      [1, 'aabbcc'],
    ]);
    const [setup, reply] = r.msgs as [RtspMessage, RtspMessage];
    assert.equal(setup.method, 'SETUP');
    assert.equal(setup.url, 'rtsp://10.0.0.2:8554/test/stream=0');
    assert.equal(header(setup, 'cseq'), '3');
    assert.equal(reply.status, 200);
    assert.equal(reply.body.toString(), SDP);
  }
  const bytewise = collect([...all].map((b) => Buffer.from([b])));
  assert.equal(bytewise.msgs.length, 2);
  assert.equal(bytewise.frames.length, 2);
});

test('parser: encode(parse(x)) keeps the message; bodies get their Content-Length', () => {
  const r = collect([Buffer.from(DESCRIBE_REPLY)]);
  assert.equal(encode(r.msgs[0] as RtspMessage).toString(), DESCRIBE_REPLY);
  assert.equal(encode(collect([Buffer.from(SETUP)]).msgs[0] as RtspMessage).toString(), SETUP);
});

test('parser: bounds and grammar stop the stream with a reason', () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['head too long', Buffer.from(`OPTIONS * RTSP/1.0\r\nX: ${'a'.repeat(9000)}`), /head longer than 8192/],
    ['too many headers', Buffer.from(`OPTIONS * RTSP/1.0\r\n${'X: 1\r\n'.repeat(65)}\r\n`), /more than 64 headers/],
    ['body too long', Buffer.from('ANNOUNCE rtsp://a/b RTSP/1.0\r\nContent-Length: 70000\r\n\r\n'), /body longer than 65536/],
    ['bad content-length', Buffer.from('ANNOUNCE rtsp://a/b RTSP/1.0\r\nContent-Length: -1\r\n\r\n'), /malformed Content-Length/],
    ['http', Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'), /malformed request line/],
    ['bad status', Buffer.from('RTSP/1.0 2000 OK\r\n\r\n'), /malformed status line/],
    ['bad header', Buffer.from('OPTIONS * RTSP/1.0\r\nno colon\r\n\r\n'), /malformed header line/],
  ];
  for (const [what, bytes, re] of cases) {
    const r = collect([bytes]);
    assert.equal(r.errors.length, 1, what);
    assert.match(r.errors[0] as string, re, what);
    assert.equal(r.msgs.length, 0, what);
  }
  // Nothing more is reported after an error.
  const r = collect([Buffer.from('BAD\r\n\r\n'), Buffer.from(SETUP)]);
  assert.equal(r.msgs.length, 0);
});

test('Transport: parse, rewrite and format; RTSP 2.0 quoted addresses survive', () => {
  const t = parseTransport('RTP/AVP/TCP;unicast;interleaved=0-1, RTP/AVP;unicast;client_port=5000-5001;ssrc=1A2B3C4D');
  assert.equal(t.length, 2);
  assert.equal(lowerTransport(t[0]!), 'tcp');
  assert.equal(lowerTransport(t[1]!), 'udp');
  assert.equal(param(t[1]!, 'unicast'), null);
  assert.deepEqual(parsePorts(param(t[1]!, 'client_port')), [5000, 5001]);
  setParam(t[1]!, 'client_port', '6000-6001');
  setParam(t[1]!, 'ssrc', undefined);
  assert.equal(formatTransport([t[1]!]), 'RTP/AVP;unicast;client_port=6000-6001');
  const v2 = parseTransport('RTP/AVP/UDP;unicast;dest_addr=":5000"/":5001",RTP/AVP/TCP;interleaved=0-1');
  assert.equal(v2.length, 2);
  assert.equal(param(v2[0]!, 'dest_addr'), '":5000"/":5001"');
  assert.deepEqual(parsePorts('7000'), [7000, 7001]);
  assert.equal(parsePorts('70000-70001'), null);
});

test('requestMetadata: /RTSP/method, url, path and lower-case headers', () => {
  const m = collect([Buffer.from(SETUP)]).msgs[0] as RtspMessage;
  assert.deepEqual(requestMetadata(m), {
    method: 'SETUP',
    url: 'rtsp://10.0.0.2:8554/test/stream=0',
    path: '/test/stream=0',
    version: 'RTSP/1.0',
    headers: { transport: 'RTP/AVP/UDP;unicast;client_port=23712-23713', cseq: '3', 'user-agent': 'Lavf59.27.100' },
  });
});

test('parsePorts: ports are 1..65535, interleaved channels 0..255', () => {
  assert.equal(parsePorts('0-1'), null);
  assert.deepEqual(parsePorts('0-1', 0, 255), [0, 1]);
  assert.equal(parsePorts('255-256', 0, 255), null);
});

test('examples/rtsp-proxy.yaml validates strictly: an RTSP listener with fan-out, an RTSP cluster', async () => {
  const { readConfigFile } = await import('../../cluster-config/load.ts');
  const { normalize } = await import('../../cluster-config/normalize.ts');
  const { protocol } = await import('../../protocols/registry.ts');
  const path = await import('node:path');
  const s = normalize(readConfigFile(path.join(import.meta.dirname, '..', '..', 'examples', 'rtsp-proxy.yaml')), { strict: true });
  const l = s.listeners.find((x) => x.name === 'rtsp');
  assert.equal(l?.spec.protocol, 'RTSP');
  // Fan-out serves readers from one worker's streams: the listener binds on one worker only.
  assert.equal(protocol('RTSP')?.listener?.placement(l?.spec), 'single');
  assert.equal(protocol('RTSP')?.listener?.placement({ ...l?.spec, options: {} }), 'shared');
  // The per-viewer listener: its RTP relays are spliced under -o init.
  const sp = s.listeners.find((x) => x.name === 'rtsp-spliced');
  assert.deepEqual((sp?.spec.options as { offload?: unknown } | undefined)?.offload, { establish: { packets: 10 } });
  assert.equal(protocol('RTSP')?.listener?.placement(sp?.spec), 'shared');
});
