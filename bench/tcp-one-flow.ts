/**
 * One TCP connection, client -> proxy -> sink, through each system in turn (interleaved, so a drift
 * in the machine's load hits all of them): `udpbench tcp` (128 KiB writes), N runs of a few seconds
 * after one untimed warm-up run each; prints per system the Gbit/s, the proxy's CPU % and its CPU
 * time per KiB relayed (less disturbed by other load than Gbit/s), as median [min–max].
 *
 *   npm run bench:tcp -- [--reps 5] [--seconds 1] [--systems node-relay,l7mp-ts] [--base DIR]
 *                        [--extra="-o init"] [--node-flags="..."] [--custom NAME=COMMAND] [--write 131072]
 *
 * Systems: `nginx` (1.22 stream module, 1 worker, as bench.ts runs it), `node-relay`
 * (bench/naive-tcp-relay.ts, `pipe()`), `l7mp-ts` (this checkout, 1 worker, plus `--extra`),
 * `l7mp-ts-w2` (2 workers, not pinned), `base` (DIR/bin/l7mp-ts of `--base DIR`, e.g. another
 * worktree: an A/B of a change), `flags` (this checkout under `node --node-flags`, e.g. V8 GC
 * flags) and any `--custom NAME=COMMAND` listed in --systems ({L}: the listen port, {U}: the
 * upstream port, {C}: an l7mp-ts config file). Each proxy is started once and pinned to CPU 1; the
 * tool runs on CPU 0. Needs the C tool (bench/build.sh builds it) and root for the priority boost.
 * Not part of the test run.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.dirname(BENCH_DIR);
const HOST = '127.0.0.1';
const NODE24 = path.join(REPO_ROOT, 'node_modules/.bin/node');

const { values: opt } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '1' },
    systems: { type: 'string', default: 'node-relay,l7mp-ts' },
    base: { type: 'string' },
    extra: { type: 'string', default: '' },
    write: { type: 'string', default: '131072' },
    'node-flags': { type: 'string', default: '' },
    custom: { type: 'string', multiple: true, default: [] },
  },
});

/** `--custom NAME=COMMAND`: a system of its own; {L}, {U} and {C} stand for the listen port, the upstream port and an l7mp-ts config file. */
const custom = new Map(opt.custom.map((c) => [c.slice(0, c.indexOf('=')), c.slice(c.indexOf('=') + 1)] as const));
const udpbenchBin = spawnSync('bash', [path.join(BENCH_DIR, 'build.sh')], { encoding: 'utf8' }).stdout.trim();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tcp-one-flow-'));
const live = new Set<ChildProcess>();

function killAll(): void {
  for (const c of live) {
    try {
      if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', killAll);
process.on('SIGINT', () => process.exit(130));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, HOST, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function l7mpConfig(listen: number, up: number): string {
  return `admin: { log_level: warn }
listeners:
  - name: bench-tcp
    spec: { protocol: TCP, port: ${listen}, address: ${HOST} }
    rules:
      - action:
          route:
            destination:
              name: bench-tcp-up
              spec: { protocol: TCP, port: ${up} }
              endpoints: [ { spec: { address: ${HOST} } } ]
`;
}

interface Sys {
  name: string;
  listen: number;
  up: number;
  child: ChildProcess;
  samples: number[];
  cpu: number[];
  /** Proxy CPU time per KiB relayed (ns): less disturbed by other load than Gbit/s. */
  cost: number[];
}

async function launch(name: string, listen: number, up: number): Promise<Sys> {
  const extra = opt.extra.split(' ').filter((s) => s !== '');
  let argv: string[];
  const cfg = path.join(tmp, `${name}.yaml`);
  writeFileSync(cfg, l7mpConfig(listen, up));
  if (name === 'nginx') {
    const dir = path.join(tmp, 'nginx');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'nginx.conf'), `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
stream { server { listen ${HOST}:${listen}; proxy_pass ${HOST}:${up}; } }
`);
    argv = ['nginx', '-p', `${dir}/`, '-e', `${dir}/error.log`, '-c', `${dir}/nginx.conf`];
  } else if (name === 'node-relay') argv = [NODE24, path.join(BENCH_DIR, 'naive-tcp-relay.ts'), String(listen), String(up)];
  else if (name === 'l7mp-ts') argv = [path.join(REPO_ROOT, 'bin/l7mp-ts'), '-c', cfg, '--workers', '1', '-l', 'warn', ...extra];
  else if (name === 'flags') argv = [NODE24, ...opt['node-flags'].split(' ').filter((f) => f !== ''), path.join(REPO_ROOT, 'cli/main.ts'), '-c', cfg, '--workers', '1', '-l', 'warn', ...extra];
  else if (custom.has(name)) argv = (custom.get(name) ?? '').replaceAll('{L}', String(listen)).replaceAll('{U}', String(up)).replaceAll('{C}', cfg).split(' ').filter((a) => a !== '');
  else if (name === 'l7mp-ts-w2') argv = [path.join(REPO_ROOT, 'bin/l7mp-ts'), '-c', cfg, '--workers', '2', '-l', 'warn', ...extra];
  else if (name === 'base') {
    if (opt.base === undefined) throw new Error('base needs --base DIR');
    argv = [path.join(opt.base, 'bin/l7mp-ts'), '-c', cfg, '--workers', '1', '-l', 'warn', ...extra];
  } else throw new Error(`unknown system ${name}`);
  const pin = name === 'l7mp-ts-w2' ? [] : ['taskset', '-c', '1'];
  const child = spawn(pin[0] ?? argv[0], [...pin.slice(1), ...(pin.length ? argv : argv.slice(1))], { detached: true, stdio: ['ignore', 'inherit', 'inherit'], cwd: opt.base && name === 'base' ? opt.base : REPO_ROOT });
  live.add(child);
  try {
    writeFileSync(`/proc/${child.pid}/autogroup`, '-20');
  } catch {
    // not root
  }
  // Ready once the listener accepts.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(listen, HOST);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`${name} did not listen in 15 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { name, listen, up, child, samples: [], cpu: [], cost: [] };
}

function run(s: Sys): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const args = ['-c', '0', udpbenchBin, 'tcp', '-d', String(s.listen), '-s', String(s.up), '-t', opt.seconds, '-m', opt.write, '-P', String(s.child.pid)];
    const c = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const t = setTimeout(() => c.kill('SIGKILL'), (Number(opt.seconds) + 15) * 1000);
    c.on('close', (code) => {
      clearTimeout(t);
      if (code !== 0) reject(new Error(`udpbench tcp: exit ${code}: ${err.trim()} ${out.trim()}`));
      else resolve(JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, unknown>);
    });
  });
}

const fmt = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b);
  const med = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return `${med.toFixed(2)} [${s[0].toFixed(2)}–${s[s.length - 1].toFixed(2)}]`;
};

const systems: Sys[] = [];
for (const name of opt.systems.split(',')) systems.push(await launch(name, await freePort(), await freePort()));
const reps = Number(opt.reps);
// One untimed run each first: the JIT warms up over the first second of a fresh proxy.
for (const s of systems) await run(s);
for (let i = 0; i < reps; i++) {
  for (const s of systems) {
    const r = await run(s);
    s.samples.push(r.gbps as number);
    if (typeof r.cpu_pct === 'number') {
      s.cpu.push(r.cpu_pct);
      s.cost.push(((r.cpu_pct / 100) * 1e9) / (((r.gbps as number) * 1e9) / 8 / 1024));
    }
    process.stderr.write(`rep ${i + 1} ${s.name}: ${(r.gbps as number).toFixed(2)} Gbit/s, proxy CPU ${r.cpu_pct ?? '-'}%\n`);
  }
}
console.log(`| system | TCP Gbit/s median [min–max] (${reps} × ${opt.seconds} s) | proxy CPU % | proxy CPU ns/KiB |`);
console.log('|---|---|---|---|');
for (const s of systems) console.log(`| ${s.name}${opt.extra && s.name !== 'node-relay' ? ` ${opt.extra}` : ''} | ${fmt(s.samples)} | ${s.cpu.length ? fmt(s.cpu) : '-'} | ${s.cost.length ? fmt(s.cost) : '-'} |`);
process.exit(0);
