/**
 * One UDP flow through l7mp-ts offloaded (`-o init`: the session is spliced in the kernel after its
 * first reply) against the same proxy in userspace (`-o disable`), with bench/udpbench.c.
 *
 *   node bench/udp-offload.ts [--reps 3] [--pps 30000] [--size 64] [--seconds 2]
 *
 * Per mode and repetition, each with a fresh proxy (`--workers 1`):
 * - paced: `udpbench tput -r PPS -e` (the sink answers the warm-up, which establishes the session),
 *   proxy on CPU 1, udpbench on CPU 0: delivered pps, loss, the proxy process's CPU µs per datagram
 *   (every thread, from schedstat), and "path": that plus the CPU of the kernel threads (kworker,
 *   ksoftirqd: where the kernel sends spliced datagrams) per datagram, minus theirs in a direct run
 *   just before (other jobs' kworkers). The receive softirq, verdict included, runs in the sender's
 *   context on loopback and is charged to udpbench in every mode, so it is not in the figure;
 * - saturation: the same unpaced (delivered pps);
 * - RTT: `udpbench ping` through the proxy to `udpbench echo`, everything on CPU 0 (300 warm-up round
 *   trips: the splice is in place before the measured ones), p50/p99 µs.
 * Prints a Markdown table (medians; [min-max] over repetitions). Needs root (BPF) for the offload
 * rows, taskset, and a C compiler (bench/build.sh). Every child is killed on exit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { kthreadNs } from './kthreads.ts';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
const { values: opt } = parseArgs({
  options: { reps: { type: 'string', default: '3' }, pps: { type: 'string', default: '30000' }, size: { type: 'string', default: '64' }, seconds: { type: 'string', default: '2' } },
});
const REPS = Number(opt.reps);
const PPS = Number(opt.pps);
const SIZE = Number(opt.size);
const SECS = Number(opt.seconds);

const UDPBENCH = spawnSync('bash', [path.join(BENCH, 'build.sh')], { encoding: 'utf8' }).stdout.trim();
const children = new Set<ChildProcess>();
const killAll = (): void => {
  for (const c of children) c.kill('SIGKILL');
};
process.on('exit', killAll);
process.on('SIGINT', () => process.exit(130));
setTimeout(() => {
  process.stderr.write('udp-offload: time budget (5 min) exceeded\n');
  process.exit(1);
}, 300_000).unref();

let nextPort = 40000 + Math.floor(Math.random() * 10000);
const port = (): number => nextPort++;

function run(cpu: string, args: string[]): Record<string, number | null> {
  const r = spawnSync('taskset', ['-c', cpu, UDPBENCH, ...args], { encoding: 'utf8', timeout: 60_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, number | null>;
  } catch {
    throw new Error(`udpbench ${args[0]}: ${r.stderr || line}`);
  }
}

async function proxy(mode: 'init' | 'disable', listen: number, upstream: number, cpu: string): Promise<ChildProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'l7off-'));
  const cfg = path.join(dir, 'c.yaml');
  fs.writeFileSync(
    cfg,
    `listeners:
  - name: bench
    spec: { protocol: UDP, port: ${listen}, address: 127.0.0.1 }
    rules:
      - action:
          route:
            destination:
              name: sink
              spec: { protocol: UDP, port: ${upstream} }
              endpoints: [ { spec: { address: 127.0.0.1 } } ]
`,
  );
  const p = spawn('taskset', ['-c', cpu, path.join(ROOT, 'bin/l7mp-ts'), '-c', cfg, '--workers', '1', '-l', 'info', '-o', mode], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(p);
  let err = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`proxy not ready: ${err}`)), 20_000);
    p.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (mode === 'init' && err.includes('kernel offload unavailable')) process.stderr.write(`warning: ${err.split('\n').find((l) => l.includes('unavailable'))}\n`);
      if (err.includes('l7mp-ts ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    p.once('exit', (c) => reject(new Error(`proxy exited ${c}: ${err}`)));
  });
  p.stderr?.resume();
  return p;
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  await new Promise<void>((r) => {
    p.once('exit', () => r());
    p.kill('SIGTERM');
  });
  children.delete(p);
}

/** The proxy's pid under taskset (taskset execs, so it is the child itself). */
const pidOf = (p: ChildProcess): number => p.pid as number;


interface Row {
  pps: number;
  loss: number;
  proxyUs: number;
  pathUs: number;
  satPps: number;
  p50: number;
  p99: number;
}

async function trial(mode: 'init' | 'disable'): Promise<Row> {
  // Baseline: the other jobs' CPU with no proxy (direct to the sink), same pacing.
  const b = port();
  const k0 = kthreadNs();
  const base = run('0', ['tput', '-d', String(b), '-s', String(b), '-m', String(SIZE), '-t', String(SECS), '-r', String(PPS)]);
  const baseKNsPerPkt = (kthreadNs() - k0) / Math.max(1, base.sent ?? 1);

  const l = port();
  const u = port();
  let p = await proxy(mode, l, u, '1');
  const k1 = kthreadNs();
  const paced = run('0', ['tput', '-d', String(l), '-s', String(u), '-m', String(SIZE), '-t', String(SECS), '-r', String(PPS), '-e', '-P', String(pidOf(p))]);
  const kNsPerPkt = (kthreadNs() - k1) / Math.max(1, paced.sent ?? 1);
  await stop(p);
  const recv = paced.recv_pps ?? 0;
  // The path: the proxy process plus the kernel threads' CPU per datagram beyond a direct run's
  // (other jobs' kworkers). The receive softirq runs in the sender's context (udpbench) in both.
  const pathUs = (paced.cpu_us_per_pkt ?? NaN) + Math.max(0, kNsPerPkt - baseKNsPerPkt) / 1000;

  const l2 = port();
  const u2 = port();
  p = await proxy(mode, l2, u2, '1');
  const sat = run('0', ['tput', '-d', String(l2), '-s', String(u2), '-m', String(SIZE), '-t', String(SECS), '-e', '-P', String(pidOf(p))]);
  await stop(p);

  const l3 = port();
  const u3 = port();
  const echo = spawn('taskset', ['-c', '0', UDPBENCH, 'echo', '-p', String(u3)], { stdio: 'ignore' });
  children.add(echo);
  p = await proxy(mode, l3, u3, '0');
  const ping = run('0', ['ping', '-d', String(l3), '-m', String(SIZE), '-t', String(SECS), '-w', '300']);
  await stop(p);
  echo.kill('SIGTERM');
  children.delete(echo);
  return {
    pps: recv,
    loss: paced.loss_pct ?? NaN,
    proxyUs: paced.cpu_us_per_pkt ?? NaN,
    pathUs,
    satPps: sat.recv_pps ?? NaN,
    p50: ping.p50_us ?? NaN,
    p99: ping.p99_us ?? NaN,
  };
}

function med(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const m = s[Math.floor(s.length / 2)] as number;
  const f = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
  return s.length > 1 ? `${f(m)} [${f(s[0] as number)}-${f(s[s.length - 1] as number)}]` : f(m);
}

const rows: Record<string, Row[]> = { userspace: [], offload: [] };
for (let i = 0; i < REPS; i++) {
  for (const [name, mode] of [
    ['userspace', 'disable'],
    ['offload', 'init'],
  ] as const) {
    process.stderr.write(`rep ${i + 1}/${REPS} ${name}...\n`);
    (rows[name] as Row[]).push(await trial(mode));
  }
}
const load = os.loadavg()[0]?.toFixed(1);
const out = [
  `One UDP flow, ${SIZE} B, l7mp-ts --workers 1, ${REPS} repetitions (median [min-max]); load average at the end ${load}`,
  '',
  `| mode | delivered pps at ${PPS} | loss % | proxy CPU µs/pkt | path CPU µs/pkt (proxy + kernel) | saturation pps | RTT p50 µs (1-core) | RTT p99 µs |`,
  '|---|---|---|---|---|---|---|---|',
  ...Object.entries(rows).map(([n, rs]) => `| ${n} | ${med(rs.map((r) => r.pps))} | ${med(rs.map((r) => r.loss))} | ${med(rs.map((r) => r.proxyUs))} | ${med(rs.map((r) => r.pathUs))} | ${med(rs.map((r) => r.satPps))} | ${med(rs.map((r) => r.p50))} | ${med(rs.map((r) => r.p99))} |`),
].join('\n');
process.stdout.write(out + '\n');
fs.mkdirSync(path.join(BENCH, 'results'), { recursive: true });
fs.writeFileSync(path.join(BENCH, 'results', `udp-offload-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}Z.md`), out + '\n');
process.exit(0);
