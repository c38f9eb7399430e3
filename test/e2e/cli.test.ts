/** The command line as a user runs it: bad input, startup failures, and signals. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import { freePort, freeTcpPort, tmpDir, UdpClient, streamClient, waitFor } from '../helpers.ts';
import { BIN, startConfigFile, startProcess } from './proc.ts';

function run(args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: 15_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

function write(dir: string, name: string, doc: unknown): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, name.endsWith('.json') ? JSON.stringify(doc) : YAML.stringify(doc));
  return f;
}

test('an invalid config exits 1 with the field path and the value, and leaves nothing listening', async () => {
  const dir = tmpDir();
  const good = await freeTcpPort();
  const f = write(dir, 'bad.yaml', {
    listeners: [
      { name: 'ok', spec: { protocol: 'TCP', port: good }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] },
      { name: 'bad', spec: { protocol: 'UDP', port: 'abc' }, rules: [] },
    ],
  });
  const r = run(['-c', f, '--workers', '1']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /listeners\[1\]\.spec\.port: must be an integer 1\.\.65535, got "abc"/);
  // The valid listener was never bound.
  const free = await new Promise<boolean>((resolve) => {
    const s = net.createServer().once('error', () => resolve(false));
    s.listen(good, () => s.close(() => resolve(true)));
  });
  assert.ok(free, 'port of the valid listener is free');
});

test('JSON configs are read as JSON; parse errors name the file', () => {
  const dir = tmpDir();
  const f = path.join(dir, 'broken.json');
  fs.writeFileSync(f, '{"listeners": [');
  const r = run(['-c', f]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /cannot parse config file .*broken\.json/);
});

test('bad flags exit 1 with a clear message; no -c prints the usage', () => {
  assert.match(run(['-c', 'x.yaml', '--workers', 'zero']).stderr, /--workers: must be an integer 1\.\.256, got "zero"/);
  assert.match(run(['-c', 'x.yaml', '-l', 'loud']).stderr, /-l: must be one of silly, verbose, debug, info, notice, warn, error, silent, got "loud"/);
  const r = run([]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /Usage: l7mp-ts -c/);
});

test('a listener that cannot bind fails the start: exit 1 naming the listener and address, nothing left listening', async () => {
  const dir = tmpDir();
  const busy = net.createServer();
  const port = await freeTcpPort();
  await new Promise<void>((r) => busy.listen({ port, host: '127.0.0.1', exclusive: true }, () => r()));
  const udpPort = await freePort();
  try {
    const f = write(dir, 'busy.yaml', {
      listeners: [
        { name: 'u', spec: { protocol: 'UDP', port: udpPort, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] },
        { name: 'taken', spec: { protocol: 'TCP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: { spec: { protocol: 'Echo' } } } } }] },
      ],
    });
    const r = run(['-c', f, '--workers', '2']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`listener "taken": cannot listen on TCP 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
    // The UDP listener that did bind was released.
    const c = await UdpClient.open();
    const s = await import('node:dgram').then((d) => d.default.createSocket('udp4'));
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(udpPort, '127.0.0.1', () => resolve());
    });
    s.close();
    c.close();
  } finally {
    busy.close();
  }
});

test('SIGINT, and SIGTERM with admin.drain_timeout_s 0 (no drain): sessions end, listeners close, the Unix socket file is removed, exit 0 within 2 s', async () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const dir = tmpDir();
    const sockPath = path.join(dir, 'l.sock');
    const port = await freePort();
    const p = await startProcess(
      {
        ...(signal === 'SIGTERM' ? { admin: { drain_timeout_s: 0 } } : {}),
        listeners: [
          { name: 'uds', spec: { protocol: 'UnixDomainSocket', filename: sockPath }, rules: [{ action: { route: { destination: 'echo' } } }] },
          { name: 'udp', spec: { protocol: 'UDP', port, address: '127.0.0.1' }, rules: [{ action: { route: { destination: 'echo' } } }] },
        ],
        clusters: [{ name: 'echo', spec: { protocol: 'Echo' } }],
      },
      path.join(dir, 'c.yaml'),
      ['--workers', '2'],
    );
    const c = await streamClient({ path: sockPath });
    c.sock.write('ping');
    assert.equal((await c.recv()).toString(), 'ping');
    const u = await UdpClient.open();
    assert.equal((await u.request('hi', port)).toString(), 'hi');
    const ended = new Promise<void>((resolve) => c.sock.once('close', () => resolve()));
    const { code, ms } = await p.stop(signal);
    assert.equal(code, 0, p.stderr());
    assert.ok(ms < 2000, `exited after ${ms} ms`);
    await ended; // the live session was ended (FIN/close reached the client)
    assert.equal(fs.existsSync(sockPath), false, 'socket file removed');
    u.close();
  }
});

test('a non-loopback admin address without a token is refused: exit 1 naming the address and the ways out; nothing starts', () => {
  const dir = tmpDir();
  const f = write(dir, 'admin.yaml', { listeners: [] });
  for (const addr of ['0.0.0.0:0', '[::]:0']) {
    const r = run(['-c', f, '--workers', '1', '--admin', addr]);
    assert.equal(r.status, 1, r.stderr);
    const shown = addr === '[::]:0' ? '\\[::\\]:0' : '0\\.0\\.0\\.0:0';
    assert.match(r.stderr, new RegExp(`admin: refusing to serve the admin API on ${shown} without a token`));
    assert.match(r.stderr, /--admin-token TOKEN or L7MP_ADMIN_TOKEN/);
    assert.match(r.stderr, /--admin-insecure \(admin\.insecure: true\)/);
    assert.doesNotMatch(r.stderr, /l7mp-ts ready/);
  }
  // The same from the config's admin section.
  const g = write(dir, 'admin2.yaml', { admin: { address: '0.0.0.0', port: 0 }, listeners: [] });
  const r = run(['-c', g, '--workers', '1']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /refusing to serve the admin API on 0\.0\.0\.0:0 without a token/);
});

test('--admin-insecure (or admin.insecure: true) allows a non-loopback admin address without a token, with a warning; a token allows it too', async () => {
  const dir = tmpDir();
  const cases: Array<{ file: string; args: string[] }> = [
    { file: write(dir, 'a.yaml', { listeners: [] }), args: ['--admin', '0.0.0.0:0', '--admin-insecure'] },
    { file: write(dir, 'b.yaml', { admin: { address: '::', port: 0, insecure: true }, listeners: [] }), args: [] },
    { file: write(dir, 'c.yaml', { listeners: [] }), args: ['--admin', '0.0.0.0:0', '--admin-token', 'tok'] },
  ];
  for (const c of cases) {
    const p = await startConfigFile(c.file, ['--workers', '1', ...c.args]);
    try {
      const m = /admin API on http:\/\/(\S+)\/api\/v1/.exec(p.stderr());
      assert.ok(m, p.stderr());
      const port = Number(/:(\d+)$/.exec(m[1] as string)?.[1]);
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/admin`, { headers: c.args.includes('tok') ? { authorization: 'Bearer tok' } : {}, signal: AbortSignal.timeout(10_000) });
      assert.equal(res.status, 200);
      if (!c.args.includes('tok')) assert.match(p.stderr(), /admin API served WITHOUT a token beyond loopback/);
    } finally {
      await p.stop();
    }
  }
});

test('-c: cyclic YAML aliases, alias bombs and JSON nested past 64 levels exit 1 naming the problem and where', () => {
  const dir = tmpDir();
  const cyc = path.join(dir, 'cyclic.yaml');
  fs.writeFileSync(cyc, 'listeners:\n  - &l\n    name: x\n    spec: { protocol: UDP, port: 1 }\n    rules: [*l]\n');
  let r = run(['-c', cyc, '--workers', '1']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /cannot parse config file .*cyclic\.yaml: alias \*l at line 5, column 13 refers to a node that contains it \(cyclic\)/);

  const bomb = path.join(dir, 'bomb.yaml');
  const lines = ['a: &a [x, x, x, x, x, x, x, x, x]'];
  for (const [i, n] of ['b', 'c', 'd', 'e', 'f', 'g'].entries()) lines.push(`${n}: &${n} [${Array(9).fill(`*${'abcdefg'[i]}`).join(', ')}]`);
  fs.writeFileSync(bomb, `${lines.join('\n')}\n`);
  r = run(['-c', bomb, '--workers', '1']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /bomb\.yaml: more than 100 alias expansions/);

  const deep = path.join(dir, 'deep.json');
  fs.writeFileSync(deep, `{"listeners": ${'['.repeat(10_000)}${']'.repeat(10_000)}}`);
  r = run(['-c', deep, '--workers', '1']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /deep\.json: nested deeper than 64 levels at line 1, column 78/);

  const deepYaml = path.join(dir, 'deep.yaml');
  fs.writeFileSync(deepYaml, `listeners: ${'['.repeat(100)}${']'.repeat(100)}\n`);
  r = run(['-c', deepYaml, '--workers', '1']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /deep\.yaml: listeners\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]\[0\]…: nested deeper than 64 levels/);
});

test('bin/l7mp-ts starts node with --no-liftoff (nodejs/node#64500); node run on the sources without it warns', async () => {
  const file = write(tmpDir(), 'w.yaml', { listeners: [] });
  const args = ['--workers', '1', '--admin', '127.0.0.1:0'];
  const p = await startConfigFile(file, args);
  try {
    assert.doesNotMatch(p.stderr(), /without --no-liftoff/);
  } finally {
    assert.equal((await p.stop()).code, 0);
  }
  // As an embedding program might run it: node on cli/main.ts, no flag.
  const main = path.resolve(import.meta.dirname, '..', '..', 'cli', 'main.ts');
  const proc = spawn(process.execPath, [main, '-c', file, '-l', 'info', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  try {
    await waitFor(() => err.includes('l7mp-ts ready'), 30_000, 'the proxy to be ready');
    assert.match(err, /node was started without --no-liftoff/);
  } finally {
    // Already gone (it failed to start): nothing to wait for.
    const code = proc.exitCode !== null || proc.signalCode !== null ? proc.exitCode : await new Promise<number | null>((resolve) => {
      proc.once('exit', (c) => resolve(c));
      proc.kill('SIGINT');
    });
    assert.equal(code, 0, err);
  }
});
