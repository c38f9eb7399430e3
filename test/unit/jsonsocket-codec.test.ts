/** JSONSocket v1 codec (compat reference §5), from byte fixtures. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkReply, checkRequest, jsonObjectEnd, reply, requestHeader } from '../../protocols/jsonsocket/codec.ts';
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
