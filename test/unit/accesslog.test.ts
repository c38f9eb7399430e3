import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AccessLog, accessLogLine } from '../../runtime/worker/access-log.ts';
import { makeLogger } from '../../common/log.ts';
import type { SessionRecord } from '../../actors/record.ts';
import { tmpDir, waitFor } from '../helpers.ts';

const log = makeLogger('silent');

function record(name: string): SessionRecord {
  return {
    name,
    listener: 'gw',
    route: 'gw-RuleList-0-Rule-0-Route-0',
    status: 'DESTROYED',
    reason: 'L7_ERR_SESSION_IDLE',
    durationMs: 1234,
    remote: '127.0.0.1:5000',
    rxPackets: 5,
    rxBytes: 50,
    txPackets: 4,
    txBytes: 60,
    drops: 1,
    setupDrops: 1, dropEmsgsize: 0, dropEnobufs: 0, dropEconnrefused: 0, dropSendError: 0,
    stages: [
      { role: 'destination', cluster: 'up', endpoint: 'up-EndPoint-0', address: '127.0.0.1', remote: '127.0.0.1:7000', connected: false, rxPackets: 4, rxBytes: 60, txPackets: 5, txBytes: 50, drops: 0, setupDrops: 0, dropEmsgsize: 0, dropEnobufs: 0, dropEconnrefused: 0, dropSendError: 0 },
    ],
  };
}

test('accessLogLine: one JSON line with the session, its stages and both directions', () => {
  const line = accessLogLine(record('s1'), 3, new Date('2025-01-01T00:00:00Z'));
  assert.ok(line.endsWith('\n'));
  assert.equal(line.indexOf('\n'), line.length - 1);
  assert.deepEqual(JSON.parse(line), {
    time: '2025-01-01T00:00:00.000Z',
    worker: 3,
    session: 's1',
    listener: 'gw',
    route: 'gw-RuleList-0-Rule-0-Route-0',
    remote: '127.0.0.1:5000',
    reason: 'L7_ERR_SESSION_IDLE',
    duration_ms: 1234,
    rx_packets: 5,
    rx_bytes: 50,
    tx_packets: 4,
    tx_bytes: 60,
    drops: 2,
    stages: [{ role: 'destination', cluster: 'up', endpoint: 'up-EndPoint-0', address: '127.0.0.1', remote: '127.0.0.1:7000', rx_packets: 4, rx_bytes: 60, tx_packets: 5, tx_bytes: 50, drops: 0 }],
  });
});

test('AccessLog: two writers appending to one file (O_APPEND) never interleave mid-line', async () => {
  const dir = tmpDir();
  try {
    const file = path.join(dir, 'access.log');
    const a = new AccessLog(file, log);
    const b = new AccessLog(file, log);
    // Long names make lines large enough that a torn write would show.
    for (let i = 0; i < 2000; i++) {
      a.write(record(`a-${i}-${'x'.repeat(i % 700)}`), 0);
      b.write(record(`b-${i}-${'y'.repeat(i % 700)}`), 1);
    }
    await Promise.all([a.close(), b.close(), a.close()]);
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 4000);
    const names = lines.map((l) => (JSON.parse(l) as { session: string }).session);
    assert.equal(names.filter((n) => n.startsWith('a-')).length, 2000);
    assert.equal(names.filter((n) => n.startsWith('b-')).length, 2000);
    assert.equal(a.dropped + b.dropped, 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('AccessLog: a file that cannot be opened, or a disk that falls behind, drops lines and counts them without throwing', async () => {
  const dir = tmpDir();
  try {
    const bad = new AccessLog(path.join(dir, 'no', 'such', 'dir', 'a.log'), log);
    await waitFor(() => bad.failed, 5000, 'the open to fail'); // it fails asynchronously
    bad.write(record('s'), 0);
    assert.equal(bad.dropped, 1);
    await bad.close();
    const slow = new AccessLog(path.join(dir, 'b.log'), log, { maxBufferedBytes: 1 });
    slow.write(record('first'), 0); // nothing buffered yet: accepted
    slow.write(record('second'), 0); // one line waiting already: dropped
    assert.equal(slow.dropped, 1);
    await slow.close();
    assert.equal(fs.readFileSync(path.join(dir, 'b.log'), 'utf8').split('\n').length, 2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
