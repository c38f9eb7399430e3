/** JSONSocket v1 codec (docs/l7mp-compat.md §5), from byte fixtures. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkReply, checkRequest, jsonObjectEnd, JsonObjectScanner, MAX_HEADER_DEPTH, reply, requestHeader, Scan } from '../../protocols/jsonsocket/codec.ts';
import { decap } from '../../protocols/jsondecap/index.ts';

const b = (s: string) => Buffer.from(s);

test('jsonObjectEnd: the first complete object, braces in strings and escapes ignored', () => {
  assert.equal(jsonObjectEnd(b('{"a":1}rest')), 7);
  assert.equal(jsonObjectEnd(b('  \n{"a":{"b":[1,{}]}}x')), 21);
  assert.equal(jsonObjectEnd(b('{"s":"}{\\"}"}tail')), 13);
  assert.equal(jsonObjectEnd(b('{"a":')), -1);
  assert.equal(jsonObjectEnd(b('   ')), -1);
  assert.equal(jsonObjectEnd(b('hello')), -2);
  assert.equal(jsonObjectEnd(b('[1]')), -2);
});

test('checkRequest: 400 for bad JSON or version, 505 for another version, the header otherwise', () => {
  assert.deepEqual(checkRequest(b('{"JSONSocketVersion":1,"x":{"y":2}}')), { ok: true, header: { JSONSocketVersion: 1, x: { y: 2 } } });
  const bad = (s: string) => checkRequest(b(s)) as { ok: false; status: number; message: string };
  assert.equal(bad('nope').status, 400);
  assert.match(bad('nope').message, /^Bad Request: Invalid JSON header/);
  assert.equal(bad('[1]').status, 400);
  assert.equal(bad('{}').status, 400);
  assert.equal(bad('{"JSONSocketVersion":"1"}').status, 400);
  assert.equal(bad('{"JSONSocketVersion":1.5}').status, 400);
  assert.equal(bad('{"JSONSocketVersion":2}').status, 505);
  assert.equal(bad('{"JSONSocketVersion":0}').status, 505, 'l7mp accepted 0 (B21)');
});

test('checkReply: 2xx or no status accepted; anything else is the reason', () => {
  assert.equal(checkReply(reply(200, 'OK')), null);
  assert.equal(checkReply(b('{"JSONSocketVersion":1}')), null);
  assert.match(checkReply(reply(404, 'Not Found: No route')) ?? '', /status 404: Not Found: No route/);
  assert.match(checkReply(b('{"JSONSocketVersion":2,"JSONSocketStatus":200}')) ?? '', /unsupported JSONSocketVersion 2/);
  assert.match(checkReply(b('garbage')) ?? '', /Invalid JSON/);
  assert.deepEqual(JSON.parse(reply(400, 'Bad Request: x').toString()), { JSONSocketVersion: 1, JSONSocketStatus: 400, JSONSocketMessage: 'Bad Request: x' });
});

test('requestHeader: l7mp\'s path and set ops, `/` replaces, falsy values copied, version forced', () => {
  const md = { some: { nested: { meta: 'data' } }, zero: 0, IP: { src_addr: '1.2.3.4' } };
  assert.deepEqual(requestHeader(md, undefined), { JSONSocketVersion: 1 });
  assert.deepEqual(requestHeader(md, [{ path: { from: '/some', to: '/' } }]), { nested: { meta: 'data' }, JSONSocketVersion: 1 });
  assert.deepEqual(requestHeader(md, [{ path: '/' }, { set: { key: 'JSONSocketVersion', value: 7 } }]).JSONSocketVersion, 1);
  assert.deepEqual(requestHeader(md, [{ path: { from: '/IP/src_addr', to: '/client/ip' } }, { path: { from: '/zero', to: 'z' } }, { path: { from: '/missing', to: 'm' } }, { set: { key: '/a/b', value: false } }]), {
    client: { ip: '1.2.3.4' },
    z: 0,
    a: { b: false },
    JSONSocketVersion: 1,
  });
});

test('JSONDecap: the base64 payload, or null for anything else', () => {
  assert.equal(decap(b(JSON.stringify({ metadata: {}, payload: Buffer.from('hi').toString('base64') })))?.toString(), 'hi');
  assert.equal(decap(b('not json')), null);
  assert.equal(decap(b('{"payload":5}')), null);
  assert.equal(decap(b('null')), null);
});

/** Feed `chunks` to one scanner; the offset of the end in the concatenation, or the Scan code. */
function scanChunks(chunks: string[]): number {
  const sc = new JsonObjectScanner();
  let before = 0;
  for (const c of chunks) {
    const r = sc.scan(Buffer.from(c));
    if (r >= 0) return before + r;
    if (r !== Scan.Incomplete) return r;
    before += Buffer.byteLength(c);
  }
  return Scan.Incomplete;
}

test('JsonObjectScanner: the same end whatever the chunking; an escape split across chunks still counts', () => {
  const text = String.raw`  {"s":"}{\\\"}","a":[{"b":"x\\"}]}tail`;
  const whole = jsonObjectEnd(b(text));
  assert.equal(whole, text.indexOf('tail'));
  for (let cut = 1; cut < text.length; cut++) assert.equal(scanChunks([text.slice(0, cut), text.slice(cut)]), whole, `cut at ${cut}`);
  assert.equal(scanChunks(text.split('')), whole, 'one byte at a time');
  // The backslash is the last byte of a chunk: the quote that follows is escaped, not the end of the string.
  assert.equal(scanChunks(['{"a":"\\', '"}"}']), 11);
  assert.equal(scanChunks(['{"a":"\\', '"}']), Scan.Incomplete);
});

test('JsonObjectScanner: nesting past MAX_HEADER_DEPTH is TooDeep before the whole header is read; brackets in strings do not count', () => {
  const deep = (n: number) => '{"a":' + '['.repeat(n - 1);
  assert.equal(jsonObjectEnd(b(deep(MAX_HEADER_DEPTH))), Scan.Incomplete);
  assert.equal(jsonObjectEnd(b(deep(MAX_HEADER_DEPTH + 1))), Scan.TooDeep);
  assert.equal(jsonObjectEnd(b(`{"a":"${'['.repeat(1000)}"}`)), 1008);
  assert.equal(jsonObjectEnd(b(`{"a":${'['.repeat(MAX_HEADER_DEPTH - 1)}${']'.repeat(MAX_HEADER_DEPTH - 1)}}`)), 5 + 2 * (MAX_HEADER_DEPTH - 1) + 1);
});

test('checkRequest and checkReply: hostile headers are 400s with short reasons, never a throw', () => {
  const bad = (s: string) => checkRequest(b(s)) as { ok: false; status: number; message: string };
  // 100k levels: V8 parses them, but re-serialising the value would throw RangeError.
  const nested = `{"JSONSocketVersion":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
  assert.deepEqual(bad(nested), { ok: false, status: 400, message: `Bad Request: JSON header nested deeper than ${MAX_HEADER_DEPTH} levels` });
  assert.match(checkReply(b(nested)) ?? '', /nested deeper than 32 levels/);
  assert.equal(bad('{"JSONSocketVersion":1e400}').status, 400, 'Infinity is not an integer');
  assert.equal(bad('{"JSONSocketVersion":9007199254740993}').status, 505);
  assert.equal(bad(`{"JSONSocketVersion":"${'x'.repeat(60_000)}"}`).message, 'Bad Request: JSONSocketVersion must be an integer, got a string of 60000 characters');
  assert.equal(bad('{"JSONSocketVersion":{"a":[1]}}').message, 'Bad Request: JSONSocketVersion must be an integer, got an object');
  assert.equal(bad('\ufeff{"JSONSocketVersion":1}').status, 400, 'a BOM is not JSON');
  assert.equal(bad(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('latin1')).status, 400);
  assert.equal(bad('{"JSONSocketVersion":1,\u0000}').status, 400);
  // __proto__ is an own key of the parsed header, not its prototype.
  const ok = checkRequest(b('{"JSONSocketVersion":1,"__proto__":{"polluted":1}}'));
  assert.ok(ok.ok);
  assert.equal(Object.getPrototypeOf(ok.header), Object.prototype);
  assert.equal((ok.header as { polluted?: unknown }).polluted, undefined);
  assert.match(checkReply(b(`{"JSONSocketVersion":1,"JSONSocketStatus":500,"JSONSocketMessage":"${'m'.repeat(5000)}"}`)) ?? '', /^status 500: m{512}$/);
});

test('requestHeader: a peer\'s own __proto__ key copied to "/" stays an own key, the prototype is untouched', () => {
  const md = { JSONSocket: JSON.parse('{"__proto__":{"polluted":1},"user":"u"}') as Record<string, unknown> };
  const h = requestHeader(md, [{ path: { from: '/JSONSocket', to: '/' } }]);
  assert.equal(Object.getPrototypeOf(h), Object.prototype);
  assert.equal((h as { polluted?: unknown }).polluted, undefined);
  assert.equal(JSON.stringify(h), '{"__proto__":{"polluted":1},"user":"u","JSONSocketVersion":1}');
});
