/**
 * One UDP flow, client -> proxy -> sink, through each system under test: saturation throughput, CPU
 * time of the proxy per forwarded datagram, and ping-pong round-trip time through the proxy. The load
 * tool is bench/udpbench.c (a Node load generator cannot saturate a proxy); the method is the one of
 * `npm run bench` (bench/README.md), so the numbers compare with the peers measured there.
 *
 *   node bench/udp-one-flow.ts [--quick] [--systems naive,l7mp-ts] [--size 64] [--no-boost]
 *
 * Every trial starts a fresh proxy and waits until a probe datagram has come through it (no sleeps).
 * Throughput: proxy on CPU 1, udpbench (sender + sink threads) on CPU 0, unpaced, `-P <proxy pid>`.
 * RTT: echo server, proxy and ping client all on CPU 0 ("1-core": no cross-CPU wakeups).
 * Prints a Markdown table on stdout and writes the same to bench/results/udp-one-flow-<date>.md.
 * Progress goes to stderr. Every child runs in its own session and process group, and is killed on any
 * exit. The machine is shared with other jobs: unless --no-boost, each child's session (autogroup) gets
 * nice -20, as in the peers' runs, so that other sessions' jobs take little of the two CPUs.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.dirname(BENCH_DIR);
const HOST = '127.0.0.1';
const PROXY_CPU = '1';
const TOOL_CPU = '0';

/** Trial lengths in seconds; budgetMs bounds the whole run (the watchdog fires a few seconds later). */
const PROFILES = {
  full: { name: 'full', reps: 3, tputSeconds: 2, pingSeconds: 2, budgetMs: 170_000 },
  quick: { name: 'quick', reps: 1, tputSeconds: 1, pingSeconds: 1, budgetMs: 55_000 },
} as const;
type Profile = (typeof PROFILES)[keyof typeof PROFILES];

const PING_WARMUP = 300;
const PROBE_TIMEOUT_MS = 10_000;
const PROBE_INTERVAL_MS = 50;
const STOP_GRACE_MS = 2_000;
/** A trial is not started unless this much budget is left beyond its own length. */
const TRIAL_SLACK_MS = 15_000; // probe timeout + warm-up, drain and stop

const NODE_BIN = existsSync(path.join(REPO_ROOT, 'node_modules/.bin/node'))
  ? path.join(REPO_ROOT, 'node_modules/.bin/node')
  : process.execPath;
/** Children find node 24 first, also when this script was not started through npm. */
const CHILD_ENV = { ...process.env, PATH: `${path.join(REPO_ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}` };

interface Ports {
  /** Where the proxy listens. */
  listen: number;
  /** Where the sink (throughput) or the echo server (RTT) listens; the proxy's upstream. */
  upstream: number;
}

/** A system under test. `launch` returns null for "direct": the tools then talk to the sink itself. */
interface System {
  name: string;
  /** Why it cannot run at all (checked once), or null. */
  unavailable(): string | null;
  launch(ports: Ports, tmp: string): string[] | null;
}

const L7MP_TS_BIN = path.join(REPO_ROOT, 'bin/l7mp-ts');

function l7mpConfig(ports: Ports): string {
  return `admin: { log_level: warn }
listeners:
  - name: bench-udp
    spec: { protocol: UDP, port: ${ports.listen}, address: ${HOST} }
    rules:
      - action:
          route:
            destination:
              name: bench-sink
              spec: { protocol: UDP, port: ${ports.upstream} }
              endpoints: [ { spec: { address: ${HOST} } } ]
`;
}

const SYSTEMS: Record<string, System> = {
  direct: {
    name: 'direct (ceiling)',
    unavailable: () => null,
    launch: () => null,
  },
  naive: {
    name: 'naive-relay (node 24)',
    unavailable: () => null,
    launch: (p) => [NODE_BIN, path.join(BENCH_DIR, 'naive-relay.ts'), String(p.listen), String(p.upstream)],
  },
  'l7mp-ts': {
    name: 'l7mp-ts',
    unavailable: () => (existsSync(L7MP_TS_BIN) ? null : './bin/l7mp-ts does not exist yet'),
    launch: (p, tmp) => {
      const file = path.join(tmp, `l7mp-ts-${p.listen}.yaml`);
      writeFileSync(file, l7mpConfig(p));
      return ['./bin/l7mp-ts', '-c', file, '--workers', '1', '-l', 'warn'];
    },
  },
};
SYSTEMS['naive-relay'] = SYSTEMS.naive;

// ---- child processes ----

interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  exited: Promise<string>;
  /** The last 4 KiB of its stdout + stderr. */
  tail(): string;
  stdout(): string;
}

const live = new Set<ChildProcess>();
/** Whether children's autogroups get nice -20 (needs root); set from the command line. */
let boost = true;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: already gone
  }
}

/** Starts argv in its own process group (so a wrapper script's children die with it). */
function start(name: string, argv: string[]): Proc {
  const child = spawn(argv[0], argv.slice(1), {
    cwd: REPO_ROOT,
    env: CHILD_ENV,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  if (boost && child.pid !== undefined) {
    try {
      writeFileSync(`/proc/${child.pid}/autogroup`, '-20'); // detached: setsid made it a new autogroup
    } catch {
      // not root, or no autogroup support: run at normal priority
    }
  }
  let tail = '';
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    if (out.length < 1 << 20) out += d.toString(); // udpbench prints one line; a chatty proxy is capped
    tail = (tail + d.toString()).slice(-4096);
  });
  child.stderr?.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-4096);
  });
  const exited = new Promise<string>((resolve) => {
    child.on('error', (err) => {
      live.delete(child);
      resolve(err.message);
    });
    child.on('close', (code, signal) => {
      live.delete(child);
      resolve(code !== null ? `exit code ${code}` : `signal ${signal}`);
    });
  });
  return { name, child, pid: child.pid ?? -1, exited, tail: () => tail.trim(), stdout: () => out };
}

function within<T>(p: Promise<T>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    p.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stop(p: Proc): Promise<void> {
  if (!live.has(p.child)) return;
  killGroup(p.child, 'SIGTERM');
  if (await within(p.exited, STOP_GRACE_MS)) return;
  killGroup(p.child, 'SIGKILL');
  await within(p.exited, 1_000);
}

/** Runs one udpbench measurement on the tools' CPU; resolves with its JSON line. */
async function udpbench(bin: string, args: (string | number)[], timeoutMs: number): Promise<Record<string, unknown>> {
  const p = start(`udpbench ${args[0]}`, ['taskset', '-c', TOOL_CPU, bin, ...args.map(String)]);
  const finished = await within(p.exited, timeoutMs);
  if (!finished) {
    await stop(p);
    throw new Error(`udpbench ${args[0]} did not finish in ${timeoutMs} ms`);
  }
  const status = await p.exited;
  const line = p.stdout().trim().split('\n').pop() ?? '';
  if (status === 'exit code 3') throw new Error(`nothing came back through the proxy: ${line}`);
  if (status !== 'exit code 0') throw new Error(`${p.name}: ${status}: ${p.tail()}`);
  return JSON.parse(line) as Record<string, unknown>;
}

// ---- ports and readiness ----

/** Two distinct free UDP ports on HOST (bound together, then released). */
async function freePorts(): Promise<Ports> {
  const socks = [dgram.createSocket('udp4'), dgram.createSocket('udp4')];
  const ports = await Promise.all(
    socks.map((s) => new Promise<number>((resolve) => s.bind(0, HOST, () => resolve(s.address().port)))),
  );
  await Promise.all(socks.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return { listen: ports[0], upstream: ports[1] };
}

/** Thrown when a system does not come up: its remaining trials are skipped. */
class StartError extends Error {}

/**
 * Sends a probe to `target` every PROBE_INTERVAL_MS until it arrives: at a temporary sink bound to
 * `sinkPort`, or (sinkPort null) back at the client from an echo server behind the proxy.
 * Fails when one of the `watched` processes exits first, or after PROBE_TIMEOUT_MS.
 */
async function waitThrough(target: number, sinkPort: number | null, watched: Proc[]): Promise<void> {
  const probe = Buffer.from(`udp-one-flow probe ${process.pid}`);
  const client = dgram.createSocket('udp4');
  const sink = sinkPort === null ? null : dgram.createSocket('udp4');
  const receiver = sink ?? client;
  let settled = false;
  let interval: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  const close = (s: dgram.Socket) => new Promise<void>((resolve) => s.close(() => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve();
      };
      client.on('error', () => {}); // an ICMP error while the proxy is not up yet: retried
      sink?.on('error', (err) => done(new StartError(`probe sink on :${sinkPort}: ${err.message}`)));
      receiver.on('message', (msg) => {
        if (msg.includes(probe)) done();
      });
      for (const p of watched) {
        p.exited.then((status) => done(new StartError(`${p.name} exited (${status}) before forwarding: ${p.tail() || 'no output'}`)));
      }
      const output = () => watched.map((p) => `${p.name}: ${p.tail() || 'no output'}`).join('; ');
      deadline = setTimeout(
        () => done(new StartError(`no probe datagram came through in ${PROBE_TIMEOUT_MS} ms (${output()})`)),
        PROBE_TIMEOUT_MS,
      );
      const send = () => client.send(probe, target, HOST);
      const begin = () => {
        send();
        interval = setInterval(send, PROBE_INTERVAL_MS);
      };
      if (sink) sink.bind(sinkPort ?? 0, HOST, begin);
      else client.bind(0, HOST, begin);
    });
  } finally {
    clearInterval(interval);
    clearTimeout(deadline);
    await Promise.all([close(client), ...(sink ? [close(sink)] : [])]);
  }
}

// ---- trials ----

interface Tput {
  pps: number;
  lossPct: number;
  cpuPct: number | null;
  usPerPkt: number | null;
  otherPct: number;
}

interface Rtt {
  p50: number;
  p99: number;
  p999: number;
  lost: number;
}

interface Ctx {
  bin: string;
  size: number;
  profile: Profile;
  tmp: string;
}

function startProxy(sys: System, ports: Ports, cpu: string, ctx: Ctx): Proc | null {
  const argv = sys.launch(ports, ctx.tmp);
  return argv ? start(sys.name, ['taskset', '-c', cpu, ...argv]) : null;
}

async function tputTrial(sys: System, ctx: Ctx): Promise<Tput> {
  const ports = await freePorts();
  const proxy = startProxy(sys, ports, PROXY_CPU, ctx);
  try {
    const target = proxy ? ports.listen : ports.upstream;
    if (proxy) await waitThrough(target, ports.upstream, [proxy]);
    const args = ['tput', '-d', target, '-s', ports.upstream, '-m', ctx.size, '-t', ctx.profile.tputSeconds];
    if (proxy) args.push('-P', proxy.pid);
    const r = await udpbench(ctx.bin, args, (ctx.profile.tputSeconds + 5) * 1000);
    return {
      pps: r.recv_pps as number,
      lossPct: r.loss_pct as number,
      cpuPct: r.cpu_pct as number | null,
      usPerPkt: r.cpu_us_per_pkt as number | null,
      otherPct: r.other_cpu_pct as number,
    };
  } finally {
    if (proxy) await stop(proxy);
  }
}

async function rttTrial(sys: System, ctx: Ctx): Promise<Rtt> {
  const ports = await freePorts();
  const echo = start('udpbench echo', ['taskset', '-c', TOOL_CPU, ctx.bin, 'echo', '-p', String(ports.upstream)]);
  let proxy: Proc | null = null;
  try {
    proxy = startProxy(sys, ports, TOOL_CPU, ctx);
    const target = proxy ? ports.listen : ports.upstream;
    await waitThrough(target, null, proxy ? [echo, proxy] : [echo]);
    const args = ['ping', '-d', target, '-m', ctx.size, '-t', ctx.profile.pingSeconds, '-w', PING_WARMUP];
    const r = await udpbench(ctx.bin, args, (ctx.profile.pingSeconds + 5) * 1000);
    return { p50: r.p50_us as number, p99: r.p99_us as number, p999: r.p999_us as number, lost: r.lost as number };
  } finally {
    if (proxy) await stop(proxy);
    await stop(echo);
  }
}

// ---- report ----

interface Row {
  sys: System;
  tput: Tput[];
  rtt: Rtt[];
  notes: string[];
  /** Set when the system cannot run (missing, failed to start): no further trials. */
  dead: string | null;
}

function stats(values: number[]): { med: number; min: number; max: number } | null {
  if (values.length === 0) return null;
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  const med = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { med, min: v[0], max: v[v.length - 1] };
}

function cell(values: (number | null)[], fmt: (x: number) => string): string {
  const s = stats(values.filter((x): x is number => typeof x === 'number'));
  if (!s) return '-';
  return values.length > 1 ? `${fmt(s.med)} [${fmt(s.min)}-${fmt(s.max)}]` : fmt(s.med);
}

const kpps = (x: number) => `${(x / 1000).toFixed(1)}k`;
const fixed = (digits: number) => (x: number) => x.toFixed(digits);

function table(rows: Row[], size: number): string {
  const head =
    '| system | B | sat pps | loss % at sat | proxy CPU % | CPU µs/pkt | RTT p50 µs (1-core) | p99 | p99.9 | other load % | notes |\n' +
    '|---|---|---|---|---|---|---|---|---|---|---|\n';
  return (
    head +
    rows
      .map((r) =>
        [
          r.sys.name,
          String(size),
          cell(r.tput.map((t) => t.pps), kpps),
          cell(r.tput.map((t) => t.lossPct), fixed(1)),
          cell(r.tput.map((t) => t.cpuPct), fixed(0)),
          cell(r.tput.map((t) => t.usPerPkt), fixed(2)),
          cell(r.rtt.map((t) => t.p50), fixed(1)),
          cell(r.rtt.map((t) => t.p99), fixed(0)),
          cell(r.rtt.map((t) => t.p999), fixed(0)),
          cell(r.tput.map((t) => t.otherPct), fixed(0)),
          [r.dead, ...r.notes].filter(Boolean).join('; ').replaceAll('|', '\\|').replaceAll('\n', ' '),
        ].join(' | '),
      )
      .map((line) => `| ${line} |`)
      .join('\n') +
    '\n'
  );
}

// ---- main ----

function usage(msg: string): never {
  console.error(`udp-one-flow: ${msg}\nusage: node bench/udp-one-flow.ts [--quick] [--systems ${Object.keys(SYSTEMS).join(',')}] [--size 64] [--no-boost]`);
  process.exit(2);
}

function parseOptions() {
  try {
    return parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        systems: { type: 'string', default: 'naive,l7mp-ts' },
        size: { type: 'string', default: '64' },
        boost: { type: 'boolean', default: true },
      },
      allowNegative: true,
    }).values;
  } catch (err) {
    return usage(err instanceof Error ? err.message : String(err));
  }
}

function parseCli(): { profile: Profile; systems: System[]; size: number } {
  const values = parseOptions();
  boost = values.boost;
  const size = Number(values.size);
  if (!Number.isInteger(size) || size < 16 || size > 65507) usage(`--size must be an integer in 16..65507`);
  const systems = values.systems.split(',').map((name) => SYSTEMS[name.trim()] ?? usage(`unknown system '${name}'`));
  return { profile: values.quick ? PROFILES.quick : PROFILES.full, systems: [...new Set(systems)], size };
}

function preflight(): string {
  if (os.availableParallelism() < 2) usage('needs 2 CPUs (proxy on CPU 1, tools on CPU 0)');
  if (spawnSync('taskset', ['--version']).status !== 0) usage('taskset (util-linux) is not installed');
  // This runner (all its threads, and so its children) stays off the proxy's CPU too.
  spawnSync('taskset', ['-a', '-p', '-c', TOOL_CPU, String(process.pid)], { stdio: 'ignore' });
  const build = spawnSync('bash', [path.join(BENCH_DIR, 'build.sh')], { encoding: 'utf8' });
  if (build.status !== 0) usage(`building udpbench failed:\n${build.stderr}`);
  return build.stdout.trim();
}

async function main(): Promise<void> {
  const began = Date.now();
  const { profile, systems, size } = parseCli();
  const bin = preflight();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'udp-one-flow-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
  setTimeout(() => {
    console.error(`udp-one-flow: over the ${profile.budgetMs / 1000} s budget, aborting`);
    process.exit(1);
  }, profile.budgetMs + 4_000).unref();

  const ctx: Ctx = { bin, size, profile, tmp };
  const rows: Row[] = systems.map((sys) => ({ sys, tput: [], rtt: [], notes: [], dead: sys.unavailable() }));
  const left = (trialSeconds: number) => Date.now() - began + trialSeconds * 1000 + TRIAL_SLACK_MS < profile.budgetMs;
  const fail = (row: Row, what: string, err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    if (err instanceof StartError) row.dead = `failed to start: ${msg}`;
    else row.notes.push(`${what}: ${msg}`);
    console.error(`  ${row.sys.name} ${what}: ${msg}`);
  };

  // Systems interleave within a repetition, so slow drifts in the machine's load hit all of them.
  for (let rep = 1; rep <= profile.reps; rep++) {
    for (const row of rows) {
      if (row.dead) continue;
      const tag = `rep ${rep}/${profile.reps}`;
      if (!left(profile.tputSeconds)) {
        row.notes.push(`${tag} tput skipped: time budget`);
      } else {
        try {
          const t = await tputTrial(row.sys, ctx);
          row.tput.push(t);
          console.error(`  ${row.sys.name} ${tag} tput: ${kpps(t.pps)} pps, loss ${t.lossPct.toFixed(1)}%, ` +
            `${t.usPerPkt?.toFixed(2) ?? '-'} µs/pkt, CPU ${t.cpuPct?.toFixed(0) ?? '-'}%, other load ${t.otherPct.toFixed(0)}%`);
        } catch (err) {
          fail(row, `${tag} tput`, err);
        }
      }
      if (row.dead) continue;
      if (!left(profile.pingSeconds)) {
        row.notes.push(`${tag} rtt skipped: time budget`);
        continue;
      }
      try {
        const r = await rttTrial(row.sys, ctx);
        row.rtt.push(r);
        if (r.lost > 0) row.notes.push(`${tag}: ${r.lost} ping replies lost`);
        console.error(`  ${row.sys.name} ${tag} rtt: p50 ${r.p50.toFixed(1)} µs, p99 ${r.p99.toFixed(0)}, p99.9 ${r.p999.toFixed(0)}`);
      } catch (err) {
        fail(row, `${tag} rtt`, err);
      }
    }
  }

  const nodeVersion = spawnSync(NODE_BIN, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const report =
    `# UDP, one flow, ${size} B: ${date}\n\n` +
    `${profile.name} run: ${profile.reps} repetition(s), median [min-max]; throughput ${profile.tputSeconds} s unpaced ` +
    `(proxy on CPU ${PROXY_CPU}, udpbench on CPU ${TOOL_CPU}); RTT ping-pong ${profile.pingSeconds} s after ${PING_WARMUP} ` +
    `warm-up round trips (echo, proxy and client on CPU ${TOOL_CPU}); children's autogroup nice ${boost ? '-20' : '0 (--no-boost)'}. Node ${nodeVersion}, kernel ${os.release()}, ` +
    `${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}). Took ${((Date.now() - began) / 1000).toFixed(0)} s.\n\n` +
    table(rows, size) +
    `\nPeer anchors at 64 B (npm run bench, bench/results/2026-11-21T09-41Z.md): naive node 24 117k pps, 8.5 µs/pkt, ` +
    `RTT p50 36.5 / p99 71.6; nginx 162k, 6.1 µs/pkt, 29.8 / 48.6; l7mp 56.9k, 17.6 µs/pkt, 45.6 / 116; ` +
    `direct (harness ceiling) 241k, RTT 12.4 / 17.3.\n`;
  process.stdout.write(report);
  const resultsDir = path.join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `udp-one-flow-${date.replaceAll(':', '-')}.md`);
  writeFileSync(file, report);
  console.error(`udp-one-flow: wrote ${path.relative(REPO_ROOT, file)}`);
}

process.on('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`udp-one-flow: ${signal}, stopping`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('udp-one-flow:', err);
    process.exit(1);
  },
);
