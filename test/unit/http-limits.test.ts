import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverOptions } from '../../protocols/core/http-limits.ts';
import { ConnStats, errnoOfMessage } from '../../protocols/types.ts';

test('serverOptions: the header deadline is capped by the request deadline; the check interval is a quarter of the shortest, within 50 ms..1 s', () => {
  const o = serverOptions({ headersTimeoutMs: 10_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 5000, maxHeaderSize: 16384 });
  assert.deepEqual(o, { headersTimeout: 10_000, requestTimeout: 300_000, keepAliveTimeout: 5000, maxHeaderSize: 16384, connectionsCheckingInterval: 1000 });
  const capped = serverOptions({ headersTimeoutMs: 5000, requestTimeoutMs: 2000, keepAliveTimeoutMs: 5000, maxHeaderSize: 2048 });
  assert.equal(capped.headersTimeout, 2000);
  assert.equal(capped.connectionsCheckingInterval, 500);
  const noRequest = serverOptions({ headersTimeoutMs: 100, requestTimeoutMs: 0, keepAliveTimeoutMs: 5000, maxHeaderSize: 2048 });
  assert.equal(noRequest.headersTimeout, 100);
  assert.equal(noRequest.requestTimeout, 0);
  assert.equal(noRequest.connectionsCheckingInterval, 50);
});

test('ConnStats.sendFailed counts by errno; errnoOfMessage reads the C library texts node-unix-socket reports', () => {
  const s = new ConnStats();
  for (const c of ['EMSGSIZE', 'ENOBUFS', 'ECONNREFUSED', 'EPERM', undefined]) s.sendFailed(c);
  assert.deepEqual([s.dropEmsgsize, s.dropEnobufs, s.dropEconnrefused, s.dropSendError, s.txPackets, s.drops], [1, 1, 1, 2, 0, 0]);
  assert.equal(errnoOfMessage('Message too long'), 'EMSGSIZE');
  assert.equal(errnoOfMessage('No buffer space available'), 'ENOBUFS');
  assert.equal(errnoOfMessage('Connection refused'), 'ECONNREFUSED');
  assert.equal(errnoOfMessage('No such file or directory'), undefined);
});
