/**
 * UnixDomainSocket listener fuzz (issue 12 item 1): arbitrary bytes in arbitrary chunkings on a
 * stream listener, and arbitrary datagrams (empty ones included) on a dgram listener, both routed
 * to Echo. Neither parses, so the properties are exact: a stream gets back exactly what it sent
 * and is closed after its FIN; every non-empty datagram comes back unchanged to the path that sent
 * it. Afterwards the worker never died and a plain exchange still works.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { loadDgramSocket } from '../../protocols/uds/dgram-lib.ts';
import { tmpDir, waitFor } from '../helpers.ts';
import { listenerCounter } from '../integration/proto-helpers.ts';
import { assertWorkersAlive, bytes, chunked, closing, params, shot, target } from './fuzz-helpers.ts';

const DgramSocket = loadDgramSocket();
const echoRoute = [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }];

function dir(t: TestContext): string {
  return closing(t, tmpDir(), (d) => fs.rmSync(d, { recursive: true, force: true }));
}

test('UnixDomainSocket stream listener: fuzzed byte streams are echoed exactly, the worker never dies', async (t) => {
  const file = path.join(dir(t), 's.sock');
  const x = await target(t, { listeners: [{ name: 'us', spec: { protocol: 'UnixDomainSocket', filename: file }, rules: echoRoute }] });
  const started = Date.now();
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(chunked(bytes(2048)), async (chunks) => {
      runs++;
      const sent = Buffer.concat(chunks);
      const r = await shot({ path: file }, chunks, 3000);
      assert.ok(r.closed, 'closed after the FIN');
      assert.ok(r.data.equals(sent), `echoed ${r.data.length} of ${sent.length} bytes`);
      assert.deepEqual(x.exits, []);
    }),
    params(t, 400),
  );
  assertWorkersAlive(x);
  assert.equal(await listenerCounter(x.rt, 'us', 'sessions'), runs);
  assert.equal((await shot({ path: file }, [Buffer.from('still here')], 3000)).data.toString(), 'still here');
  t.diagnostic(`ran in ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

test('UnixDomainSocket dgram listener: fuzzed datagrams come back unchanged to their sender, the worker never dies', async (t) => {
  const d = dir(t);
  const file = path.join(d, 'd.sock');
  const x = await target(t, { listeners: [{ name: 'ud', spec: { protocol: 'UnixDomainSocket', type: 'dgram', filename: file }, rules: echoRoute }] });
  const started = Date.now();
  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(bytes(1500), { minLength: 1, maxLength: 4 }), async (dgrams) => {
      // A fresh bound path per run: a new session, and a sender the proxy can answer.
      const sock = closing(t, new DgramSocket(), (s) => s.close());
      sock.bind(path.join(d, `c${n++}.sock`));
      const got: string[] = [];
      sock.on('data', (m: Buffer) => got.push(m.toString('hex')));
      const want = dgrams.filter((g) => g.length > 0).map((g) => Buffer.from(g).toString('hex'));
      for (const g of dgrams) {
        const b = Buffer.from(g);
        sock.sendTo(b, 0, b.length, file);
      }
      await waitFor(() => want.every((w) => got.includes(w)), 3000, `echoes of ${want.length} datagrams`);
      assert.deepEqual(x.exits, []);
    }),
    params(t, 250),
  );
  assertWorkersAlive(x);
  const c = closing(t, new DgramSocket(), (s) => s.close());
  c.bind(path.join(d, 'legit.sock'));
  const got: Buffer[] = [];
  c.on('data', (m: Buffer) => got.push(m));
  const msg = Buffer.from('still here');
  c.sendTo(msg, 0, msg.length, file);
  await waitFor(() => got.length > 0, 3000, 'the legit echo');
  assert.equal(got[0]?.toString(), 'still here');
  t.diagnostic(`ran in ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
