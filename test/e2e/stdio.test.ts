/**
 * Stdio (docs/l7mp-compat.md §3.3) with real processes: `bin/l7mp-ts` with its stdin and stdout piped
 * to the test. The Stdio listener (one session at startup) to a UDP upstream, and a UDP listener to
 * the Stdio cluster.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { freePort, tmpDir, udpEcho, UdpClient, waitFor } from '../helpers.ts';
import { BIN } from './proc.ts';

/** Start the proxy with piped stdio on `config`; resolve when it logs "l7mp-ts ready". Killed after the test. */
async function start(t: TestContext, config: unknown): Promise<{ proc: ChildProcessWithoutNullStreams; out: () => string }> {
  const dir = tmpDir();
  const file = path.join(dir, 'stdio.yaml');
  fs.writeFileSync(file, YAML.stringify(config));
  const proc = spawn(BIN, ['-c', file, '-l', 'info', '--workers', '2'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  t.after(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await waitFor(() => err.includes('l7mp-ts ready') || proc.exitCode !== null, 30000, 'the proxy to be ready');
  assert.equal(proc.exitCode, null, err);
  return { proc, out: () => out };
}

/** SIGINT: stop at once (SIGTERM would drain first, and the Stdio session only ends at stdin's EOF). */
function stop(proc: ChildProcessWithoutNullStreams): Promise<number | null> {
  return new Promise((resolve) => {
    proc.once('exit', (code) => resolve(code));
    proc.kill('SIGINT');
  });
}

test('Stdio listener: the proxy\'s stdin goes to a UDP upstream, its replies to stdout', async (t) => {
  const up = await udpEcho('up: ');
  t.after(() => up.close());
  const { proc, out } = await start(t, {
    listeners: [{ name: 'stdio', spec: { protocol: 'Stdio' }, rules: [{ action: { route: { destination: { spec: { protocol: 'UDP', port: up.port }, endpoints: [{ spec: { address: '127.0.0.1' } }] } } } }] }],
  });
  proc.stdin.write('hello\n');
  await waitFor(() => out().includes('up: hello\n'), 5000, 'the reply on stdout');
  proc.stdin.write('again\n');
  await waitFor(() => out().includes('up: again\n'), 5000, 'the second reply on stdout');
  assert.equal(await stop(proc), 0);
});

test('Stdio cluster: a UDP peer\'s datagrams go to stdout, stdin comes back to the peer', async (t) => {
  const port = await freePort();
  const { proc, out } = await start(t, {
    listeners: [{ name: 'udp', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'Stdio' } } } } }] }],
  });
  const c = await UdpClient.open();
  t.after(() => c.close());
  c.send('ping\n', port);
  await waitFor(() => out().includes('ping\n'), 5000, 'the datagram on stdout');
  proc.stdin.write('pong');
  assert.equal((await c.recv(5000)).toString(), 'pong');
  assert.equal(await stop(proc), 0);
});
