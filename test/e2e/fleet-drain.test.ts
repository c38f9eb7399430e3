/**
 * The fleet's drain command (issue 15 item 1): `l7mp-ts fleet drain NODE` over a real nats-server
 * drains the node (no new sessions, heartbeat health `draining`) without ending it; `--exit` then
 * ends it (exit 0).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { connect } from '@nats-io/transport-node';
import { freePort, tmpDir, UdpClient, waitFor } from '../helpers.ts';
import { cli, startNats, startNode } from './nats.ts';
import { fleetNames } from '../../fleet/names.ts';
import type { Heartbeat } from '../../fleet/telemetry.ts';

test('fleet drain NODE: the node drains and stays up (health draining, new UDP peers refused); --exit ends it', async (t) => {
  const nats = await startNats();
  t.after(() => nats.stop());
  const dir = tmpDir();
  const port = await freePort();
  const base = path.join(dir, 'n1.yaml');
  fs.writeFileSync(base, YAML.stringify({ listeners: [{ name: 'in', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'echo' } } }] }], clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }] }));
  const node = await startNode('n1', ['-c', base, '--nats', nats.url, '--fleet', 'fd']);
  t.after(() => node.stop('SIGKILL'));
  const c = await UdpClient.open();
  t.after(() => c.close());
  assert.equal((await c.request('a', port)).toString(), 'a');
  const args = ['--nats', nats.url, '--fleet', 'fd'];
  const nc = await connect({ servers: nats.url });
  t.after(() => nc.close());
  const heartbeat = async (): Promise<Heartbeat | null> => {
    try {
      return (await nc.request(fleetNames('fd').discover, '', { timeout: 500 })).json<Heartbeat>();
    } catch {
      return null;
    }
  };
  await waitFor(heartbeat, 10_000, 'n1 in the fleet');

  const bad = await cli(['fleet', 'drain', 'n1', ...args, '--timeout-s', 'abc']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--timeout-s: must be 0\.\.3600/);

  const r = await cli(['fleet', 'drain', 'n1', ...args, '--timeout-s', '5']);
  assert.equal(r.code, 0, r.stderr);
  const st = JSON.parse(r.stdout) as { state: string; source: string; timeout_s: number; exit: boolean };
  assert.equal(st.state, 'draining');
  assert.equal(st.source, 'fleet');
  assert.equal(st.timeout_s, 5);
  assert.equal(st.exit, false);
  assert.equal((await heartbeat())?.health, 'draining');
  // The live session is answered until it goes quiet; a new peer is refused.
  const late = await UdpClient.open();
  t.after(() => late.close());
  await assert.rejects(late.request('b', port, '127.0.0.1', 300, 2), /no UDP reply/);
  await waitFor(() => /drained: no session left/.test(node.stderr()), 10_000, 'the drain to end');
  assert.equal(node.proc.exitCode, null, 'a fleet drain leaves the node up');

  const exited = new Promise<number | null>((resolve) => node.proc.once('exit', (code) => resolve(code)));
  const e = await cli(['fleet', 'drain', 'n1', ...args, '--exit']);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(await exited, 0);
});
