/**
 * `npm run bench [-- --quick]`: l7mp-ts against its peers on loopback. Starts each system, measures it
 * with bench/udpbench.c (built on first run), stops it, and writes a Markdown table (each figure with
 * its ratio to nginx) and an SVG chart to bench/results/. bench/README.md describes every figure
 * and how it is taken.
 *
 *   node bench/bench.ts [--quick] [--systems direct,nginx,...] [--no-boost] [--no-readme]
 *
 * Systems: direct (no proxy), nginx (stream module), socat, l7mp (npm @l7mp/l7mp 0.5.7 under the system
 * Node 20, installed into bench/.peers/ on first run), node-relay (bare Node 24 relays), l7mp-ts with 1
 * and 2 workers, and l7mp-ts with `-o init` (kernel offload). A system that cannot run gets a row with
 * the reason. Per system and repetition there are three trial groups, each with a fresh proxy:
 *   tput:     proxy on CPU 1, tools on CPU 0: UDP saturation (64 B), a paced ladder for the highest
 *             rate with < 1 % loss, TCP Gbit/s, WebSocket messages/s;
 *   rtt:      echo server, proxy and ping client all on CPU 0: RTT at 64 and 1024 B;
 *   sessions: proxy on CPU 1: new UDP sessions/s (closed loop), then PSS per idle session.
 * Bounded: full at most 7 min, --quick 2 min; a trial that would not fit is skipped and says so.
 * Every child runs in its own process group and is killed by PID on any exit.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { markdownTable, num, stats, svgChart } from './report.ts';
import type { Figure, RowData } from './report.ts';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.dirname(BENCH_DIR);
const HOST = '127.0.0.1';
const PROXY_CPU = '1';
const TOOL_CPU = '0';
const REF = 'nginx';

const PROFILES = {
  full: {
    name: 'full', reps: 3, satS: 1, ladder: [0.95, 0.85, 0.75, 0.6, 0.45, 0.3], ladderS: 0.5,
    streamS: 1, pingS: 1, sessions: 10_000, sessMaxS: 8, budgetMs: 405_000,
  },
  quick: {
    name: 'quick', reps: 1, satS: 0.5, ladder: [0.9, 0.7, 0.5, 0.3], ladderS: 0.3,
    streamS: 0.5, pingS: 0.5, sessions: 10_000, sessMaxS: 3, budgetMs: 100_000,
  },
} as const;
type Profile = (typeof PROFILES)[keyof typeof PROFILES];

/**
 * Round trips before the first RTT trial of a system (at most 2 s: udpbench's bound), before the
 * second 300. The proxy of the RTT group is started for it, so the first trial would otherwise
 * measure a cold path: a JIT runtime (l7mp-ts, node-relay, l7mp) compiles the reply path during its
 * first ~30k round trips, on the one CPU the proxy shares with the echo server and the client, and
 * those compilations set its p99.9 (1.3-2 ms in the first second here, 0.2 ms after). A gateway
 * runs for days: the steady state is what it lives in.
 */
const PING_WARMUP = [30_000, 300] as const;
const PROBE_TIMEOUT_MS = 10_000;
const PROBE_INTERVAL_MS = 50;
const STOP_GRACE_MS = 2_000;
/** Time a proxy start + probe + stop may take, counted when deciding whether a group still fits. */
const GROUP_SLACK_MS = 4_000;

const NODE24 = existsSync(path.join(REPO_ROOT, 'node_modules/.bin/node')) ? path.join(REPO_ROOT, 'node_modules/.bin/node') : process.execPath;
const NODE20 = '/usr/bin/node';
const PEERS_DIR = path.join(BENCH_DIR, '.peers');
const L7MP_VERSION = '0.5.7';
const L7MP_DIR = path.join(PEERS_DIR, 'node_modules/@l7mp/l7mp');
const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const CHILD_ENV = { ...process.env, PATH: `${path.join(REPO_ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}` };

// ---- figures ----

const fx = (d: number) => (x: number) => x.toFixed(d);
const us = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
/** Every figure of the table; `chart` marks the ones in the chart. */
const FIGURES: Figure[] = [
  { key: 'sat', header: 'UDP sat pps', fmt: num, higherIsBetter: true, chart: 'UDP pps (sat)' },
  { key: 'cpu', header: 'CPU µs/dgram', fmt: fx(2), higherIsBetter: false, chart: '1 / CPU per dgram' },
  { key: 'lossfree', header: 'pps <1% loss', fmt: num, higherIsBetter: true, chart: 'pps <1% loss' },
  { key: 'r64p50', header: 'RTT 64 B p50 µs', fmt: us, higherIsBetter: false, chart: '1 / RTT p50' },
  { key: 'r64p99', header: 'p99', fmt: us, higherIsBetter: false, chart: '1 / RTT p99' },
  { key: 'r64p999', header: 'p99.9', fmt: us, higherIsBetter: false },
  { key: 'r1kp50', header: 'RTT 1 KiB p50 µs', fmt: us, higherIsBetter: false },
  { key: 'r1kp99', header: 'p99', fmt: us, higherIsBetter: false },
  { key: 'r1kp999', header: 'p99.9', fmt: us, higherIsBetter: false },
  { key: 'tcp', header: 'TCP Gbit/s', fmt: fx(2), higherIsBetter: true, chart: 'TCP Gbit/s' },
  { key: 'ws', header: 'WS msg/s', fmt: num, higherIsBetter: true, chart: 'WebSocket msg/s' },
  { key: 'sess', header: 'new UDP sess/s', fmt: num, higherIsBetter: true, chart: 'new sessions/s' },
  { key: 'mem', header: 'KiB/idle sess', fmt: fx(2), higherIsBetter: false, chart: '1 / memory per session' },
];
type FigKey = 'cpuProc' | 'cpuKthreads' | 'sat' | 'cpu' | 'lossfree' | 'r64p50' | 'r64p99' | 'r64p999' | 'r1kp50' | 'r1kp99' | 'r1kp999' | 'tcp' | 'ws' | 'sess' | 'mem';

// ---- systems ----

interface Ports {
  udp: number;
  udpUp: number;
  tcp: number;
  tcpUp: number;
  ws: number;
  wsUp: number;
}

interface System {
  name: string;
  /** Checks (and installs, for l7mp) what the system needs; resolves with why it cannot run, or null. */
  prepare(): Promise<string | null>;
  /** argv of the proxy (one process or a process tree) serving all of Ports; null = no proxy. */
  launch?(p: Ports, tmp: string): { argv: string[]; cwd?: string };
  /** Run on both CPUs instead of CPU 1 in the tput and sessions groups. */
  unpinned?: boolean;
  /** Figures that do not apply, with the reason. */
  na?: Partial<Record<FigKey, string>>;
  /** Count kworker/ksoftirqd CPU in CPU µs/dgram (udpbench -K): an offloaded proxy's kernel does its sending there. */
  kernelThreads?: boolean;
  /**
   * Runs last in the sessions group of each repetition: a system whose trials take the whole
   * `sessMaxS` (l7mp: ~1000 sessions/s) would otherwise spend the time budget the rows after it need.
   */
  sessionsLast?: boolean;
  /** After the proxy forwarded a probe: a reason to stop here (e.g. offload unavailable), or null. */
  afterStart?(log: string): string | null;
  notes?: string[];
}

const version = (argv: string[], re: RegExp): string | null => {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return re.exec(`${r.stdout}${r.stderr}`)?.[1] ?? null;
};

/**
 * Config of l7mp and l7mp-ts: UDP, TCP and WebSocket listeners, each routed to its own upstream.
 * `wsHostRewrite` (l7mp only): l7mp's WebSocket cluster takes the upstream host from the client's Host
 * header ("127.0.0.1:PORT" -> an invalid ws://127.0.0.1:PORT:UPSTREAM URL) and sends all the client's
 * headers upstream, its Sec-WebSocket-Key included (the upstream's accept then fails the ws client's
 * check); so the rule replaces the headers with just the endpoint's host, as an l7mp user would.
 */
function l7mpConfig(p: Ports, wsHostRewrite = false): string {
  const rewrite = (proto: string) =>
    wsHostRewrite && proto === 'WebSocket' ? `
          rewrite: [ { path: /HTTP/headers, value: { host: "${HOST}" } } ]` : '';
  const route = (name: string, proto: string, port: number) => `
    rules:
      - action:${rewrite(proto)}
          route:
            destination:
              name: ${name}
              spec: { protocol: ${proto}, port: ${port} }
              endpoints: [ { spec: { address: ${HOST} } } ]`;
  return `admin: { log_level: warn }
listeners:
  - name: bench-udp
    spec: { protocol: UDP, port: ${p.udp}, address: ${HOST} }${route('bench-udp-up', 'UDP', p.udpUp)}
  - name: bench-tcp
    spec: { protocol: TCP, port: ${p.tcp}, address: ${HOST} }${route('bench-tcp-up', 'TCP', p.tcpUp)}
  - name: bench-ws
    spec: { protocol: WebSocket, port: ${p.ws}, address: ${HOST} }${route('bench-ws-up', 'WebSocket', p.wsUp)}
`;
}

function l7mpTs(workers: number, extra: string[]): System['launch'] {
  return (p, tmp) => {
    const file = path.join(tmp, `l7mp-ts-${p.udp}.yaml`);
    writeFileSync(file, l7mpConfig(p));
    return { argv: ['./bin/l7mp-ts', '-c', file, '--workers', String(workers), '-l', 'warn', ...extra] };
  };
}

const l7mpTsMissing = async () => (existsSync(path.join(REPO_ROOT, 'bin/l7mp-ts')) ? null : './bin/l7mp-ts does not exist');

/** Installs @l7mp/l7mp into bench/.peers (system npm, once) and stubs its optional native `bpf` module. */
async function prepareL7mp(): Promise<string | null> {
  const v = version([NODE20, '--version'], /^v(\d+\.\d+\.\d+)/);
  if (!v) return `no system Node at ${NODE20} (l7mp ${L7MP_VERSION} runs under Node 20: apt-get install nodejs)`;
  if (!existsSync(path.join(L7MP_DIR, 'l7mp-proxy.js'))) {
    progress(`installing @l7mp/l7mp@${L7MP_VERSION} into bench/.peers (once)`);
    mkdirSync(PEERS_DIR, { recursive: true });
    if (!existsSync(path.join(PEERS_DIR, 'package.json'))) writeFileSync(path.join(PEERS_DIR, 'package.json'), '{ "name": "bench-peers", "private": true }\n');
    const r = spawnSync('/usr/bin/npm', ['install', '--no-audit', '--no-fund', '--omit=optional', '--omit=dev', `@l7mp/l7mp@${L7MP_VERSION}`], {
      cwd: PEERS_DIR, encoding: 'utf8', timeout: 120_000, env: { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` },
    });
    if (r.status !== 0 || !existsSync(path.join(L7MP_DIR, 'l7mp-proxy.js'))) {
      const why = r.error ? r.error.message : (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ');
      return `npm install @l7mp/l7mp@${L7MP_VERSION} into bench/.peers failed: ${why}`;
    }
  }
  // l7mp's udp-offload.js (git HEAD) requires the optional native `bpf` module unconditionally; the
  // 0.5.7 tarball does not ship that file, but a stub keeps any require('bpf') from failing.
  const bpf = path.join(PEERS_DIR, 'node_modules/bpf');
  if (!existsSync(path.join(bpf, 'index.js'))) {
    mkdirSync(bpf, { recursive: true });
    writeFileSync(path.join(bpf, 'package.json'), '{ "name": "bpf", "version": "0.0.0-stub", "main": "index.js" }\n');
    writeFileSync(path.join(bpf, 'index.js'), "// stub written by bench/bench.ts: the native eBPF module is not built; offload is unused\nmodule.exports = {};\n");
  }
  return null;
}

const OFFLOAD_ADDON = path.join(REPO_ROOT, 'native-offload/build/Release/l7mp_offload.node');

/** Builds the offload addon (npm run build:offload) when it is missing; a failure is the row's reason. */
async function prepareOffload(): Promise<string | null> {
  const missing = await l7mpTsMissing();
  if (missing) return missing;
  const script = path.join(REPO_ROOT, 'native-offload/build.sh');
  if (existsSync(OFFLOAD_ADDON) || !existsSync(script)) return null; // no script: -o init says why
  progress('building the offload addon (npm run build:offload, once)');
  const r = spawnSync('bash', [script], { cwd: REPO_ROOT, env: CHILD_ENV, encoding: 'utf8', timeout: 180_000 });
  if (r.status === 0) return null;
  const why = r.error ? r.error.message : (r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ');
  return `building the offload addon failed (needs clang, bpftool, libbpf-dev, make, g++): ${why}`;
}

const SYSTEMS: Record<string, System> = {
  direct: {
    name: 'direct',
    prepare: async () => null,
    na: { cpu: 'no proxy', mem: 'no proxy' },
    notes: ['no proxy: the ceiling of the harness'],
  },
  nginx: {
    name: 'nginx',
    prepare: async () => {
      if (!version(['nginx', '-v'], /nginx\/(\S+)/)) return 'nginx is not installed (apt-get install nginx libnginx-mod-stream)';
      if (!existsSync(NGINX_STREAM_MODULE)) return `${NGINX_STREAM_MODULE} is missing (apt-get install libnginx-mod-stream)`;
      return null;
    },
    launch: (p, tmp) => {
      const dir = path.join(tmp, `nginx-${p.udp}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'nginx.conf'), `load_module ${NGINX_STREAM_MODULE};
daemon off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 32768; }
stream {
  server { listen ${HOST}:${p.udp} udp reuseport; proxy_pass ${HOST}:${p.udpUp}; proxy_timeout 60s; }
  server { listen ${HOST}:${p.tcp}; proxy_pass ${HOST}:${p.tcpUp}; }
  server { listen ${HOST}:${p.ws}; proxy_pass ${HOST}:${p.wsUp}; }
}
`);
      return { argv: ['nginx', '-p', `${dir}/`, '-e', `${dir}/error.log`, '-c', `${dir}/nginx.conf`] };
    },
    notes: ['stream module, 1 worker; WebSocket passes through as TCP'],
  },
  socat: {
    name: 'socat',
    prepare: async () => (version(['socat', '-V'], /socat version (\S+)/) ? null : 'socat is not installed (apt-get install socat)'),
    launch: (p) => ({
      argv: ['sh', '-c', [
        `socat -T 60 UDP4-LISTEN:${p.udp},bind=${HOST},reuseaddr,fork UDP4:${HOST}:${p.udpUp} &`,
        `socat TCP4-LISTEN:${p.tcp},bind=${HOST},reuseaddr,fork TCP4:${HOST}:${p.tcpUp} &`,
        `socat TCP4-LISTEN:${p.ws},bind=${HOST},reuseaddr,fork TCP4:${HOST}:${p.wsUp} &`,
        'wait',
      ].join(' ')],
    }),
    na: {
      sess: 'UDP4-LISTEN,fork hands its listening socket to the child, which then forwards whatever other peers sent meanwhile: no per-peer sessions (1000 new sources made 25 children here)',
      mem: 'no per-peer sessions',
    },
    notes: ['UDP4-LISTEN with fork; WebSocket passes through as TCP'],
  },
  l7mp: {
    name: 'l7mp',
    prepare: prepareL7mp,
    launch: (p, tmp) => {
      const file = path.join(tmp, `l7mp-${p.udp}.yaml`);
      writeFileSync(file, l7mpConfig(p, true));
      return { argv: [NODE20, 'l7mp-proxy.js', '-c', file, '-l', 'warn'], cwd: L7MP_DIR };
    },
    notes: [`npm @l7mp/l7mp ${L7MP_VERSION} under ${NODE20}`, 'its WebSocket rule rewrites /HTTP/headers to {host} (see bench/README.md)'],
    sessionsLast: true,
  },
  'node-relay': {
    name: 'node-relay',
    prepare: async () => null,
    launch: (p) => ({
      argv: ['sh', '-c', `${NODE24} bench/naive-relay.ts ${p.udp} ${p.udpUp} & ${NODE24} bench/naive-tcp-relay.ts ${p.tcp} ${p.tcpUp} ${p.ws} ${p.wsUp} & wait`],
    }),
    notes: ['Node 24 dgram: an upstream socket per client address:port, on(message) -> send; net pipe(); WebSocket passes through as TCP'],
  },
  'l7mp-ts': { name: 'l7mp-ts', prepare: l7mpTsMissing, launch: l7mpTs(1, []), notes: ['1 worker'] },
  'l7mp-ts-w2': {
    name: 'l7mp-ts w2',
    prepare: l7mpTsMissing,
    launch: l7mpTs(2, []),
    unpinned: true,
    notes: ['2 workers, not pinned in the throughput and session trials (so it shares CPU 0 with the load generator; one flow goes to one worker)'],
  },
  'l7mp-ts-offload': {
    name: 'l7mp-ts offload',
    prepare: prepareOffload,
    kernelThreads: true,
    launch: l7mpTs(1, ['-o', 'init']),
    afterStart: (log) => {
      const line = log.split('\n').find((l) => l.includes('kernel offload unavailable'));
      if (!line) return null;
      try {
        const j = JSON.parse(line.slice(line.indexOf('{'))) as { reason?: string };
        return `offload unavailable: l7mp-ts -o init logs "kernel offload unavailable: ${j.reason ?? line}"`;
      } catch {
        return `offload unavailable: l7mp-ts -o init logs "${line.trim()}"`;
      }
    },
    notes: [
      '1 worker, -o init; CPU µs/dgram includes the kworker and ksoftirqd threads (where the kernel sends spliced datagrams), minus their rate just before the trial',
      'UDP, TCP and WebSocket throughput trials without the priority boost (proxy and tools): the kworkers that forward its datagrams run at normal priority, and tools at -20 flooding from their CPU starve them',
    ],
  },
};
const ALL = ['direct', 'nginx', 'socat', 'l7mp', 'node-relay', 'l7mp-ts', 'l7mp-ts-w2', 'l7mp-ts-offload'];

// ---- child processes (each in its own process group, killed by PID) ----

interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  exited: Promise<string>;
  /** The last 8 KiB of stdout + stderr. */
  tail(): string;
  stdout(): string;
}

const live = new Set<ChildProcess>();
let boost = true;
/**
 * Whether the children of the trial being run get the boost: not in the throughput trials of a
 * system whose forwarding runs in kernel threads. Kworkers cannot be boosted, and tools at -20
 * flooding from their CPU starve the kworkers there (offload: 10k pps delivered instead of 160k,
 * the rest queued in the kernel, facts G6), where a boosted proxy process would compete equally.
 */
let boostRow = true;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: already gone
  }
}

function start(name: string, argv: string[], cwd = REPO_ROOT): Proc {
  const child = spawn(argv[0], argv.slice(1), { cwd, env: CHILD_ENV, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  if (boost && boostRow && child.pid !== undefined) {
    try {
      writeFileSync(`/proc/${child.pid}/autogroup`, '-20');
    } catch {
      // not root or no autogroup: normal priority
    }
  }
  let tail = '';
  let out = '';
  const onData = (d: Buffer, isOut: boolean) => {
    if (isOut && out.length < 1 << 20) out += d.toString();
    tail = (tail + d.toString()).slice(-8192);
  };
  child.stdout?.on('data', (d: Buffer) => onData(d, true));
  child.stderr?.on('data', (d: Buffer) => onData(d, false));
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

type Json = Record<string, unknown>;

/** One udpbench run on the tools' CPU, bounded; resolves with its JSON line. */
async function udpbench(args: (string | number)[], timeoutMs: number): Promise<Json> {
  const p = start(`udpbench ${args[0]}`, ['taskset', '-c', TOOL_CPU, udpbenchBin, ...args.map(String)]);
  if (!(await within(p.exited, timeoutMs))) {
    await stop(p);
    throw new Error(`udpbench ${args[0]} did not finish in ${timeoutMs} ms`);
  }
  const status = await p.exited;
  const line = p.stdout().trim().split('\n').pop() ?? '';
  let j: Json | null = null;
  try {
    j = JSON.parse(line) as Json;
  } catch {
    // no JSON: the status and output say why
  }
  if (status === 'exit code 0' && j) return j;
  if (status === 'exit code 3') throw new NothingError(`nothing came through (${j?.error ?? 'no datagram / byte arrived'})`);
  throw new Error(`udpbench ${args[0]}: ${status}: ${(j?.error as string | undefined) ?? p.tail()}`);
}

// ---- ports, readiness, memory ----

async function freeUdp(n: number): Promise<number[]> {
  const socks = Array.from({ length: n }, () => dgram.createSocket('udp4'));
  const ports = await Promise.all(socks.map((s) => new Promise<number>((resolve) => s.bind(0, HOST, () => resolve(s.address().port)))));
  await Promise.all(socks.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

async function freeTcp(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => net.createServer());
  const ports = await Promise.all(
    servers.map((s) => new Promise<number>((resolve) => s.listen(0, HOST, () => resolve((s.address() as net.AddressInfo).port)))),
  );
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

async function freePorts(): Promise<Ports> {
  const [udp, udpUp] = await freeUdp(2);
  const [tcp, tcpUp, ws, wsUp] = await freeTcp(4);
  return { udp, udpUp, tcp, tcpUp, ws, wsUp };
}

/** udpbench exit 3: the trial ran, and nothing arrived at the sink. */
class NothingError extends Error {}

/** Thrown when a system does not come up: its remaining trials are skipped. */
class StartError extends Error {}

/**
 * Sends a probe to `target` every PROBE_INTERVAL_MS until it arrives at a temporary sink on `sinkPort`
 * or (sinkPort null) comes back from an echo server. Fails when a watched process exits or after
 * PROBE_TIMEOUT_MS.
 */
async function waitThrough(target: number, sinkPort: number | null, watched: Proc[]): Promise<void> {
  const probe = Buffer.from(`bench probe ${process.pid}`);
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
      client.on('error', () => {});
      sink?.on('error', (err) => done(new StartError(`probe sink on :${sinkPort}: ${err.message}`)));
      receiver.on('message', (msg) => {
        if (msg.includes(probe)) done();
      });
      for (const p of watched) {
        p.exited.then((status) => done(new StartError(`${p.name} exited (${status}) before forwarding: ${p.tail().slice(-600) || 'no output'}`)));
      }
      const output = () => watched.map((p) => `${p.name}: ${p.tail().slice(-300) || 'no output'}`).join('; ');
      deadline = setTimeout(() => done(new StartError(`no probe datagram came through in ${PROBE_TIMEOUT_MS} ms (${output()})`)), PROBE_TIMEOUT_MS);
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

/** pid and its descendants (by ppid from /proc/<pid>/stat). */
function processTree(root: number): number[] {
  const parent = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parent.get(ppid) ?? [];
      list.push(Number(e));
      parent.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(parent.get(out[i]) ?? []));
  return out;
}

/** Proportional set size of the whole process tree, KiB (/proc/<pid>/smaps_rollup). */
function treePssKiB(root: number): number {
  let total = 0;
  for (const pid of processTree(root)) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      if (m) total += Number(m[1]);
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/** This process's soft limit of open files (children inherit it), from /proc/self/limits. */
function openFileLimit(): string {
  return /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? '?';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- trial groups ----

interface Row extends RowData {
  sys: System;
  other: number[];
  /** Sessions established per sessions trial. */
  established: number[];
  dead: boolean;
}

interface Ctx {
  profile: Profile;
  tmp: string;
  began: number;
}

let udpbenchBin = '';
/** Writes what was measured so far; set once the rows exist (used when the watchdog fires). */
let onWatchdog: (() => void) | null = null;

const fits = (ctx: Ctx, seconds: number) => Date.now() - ctx.began + seconds * 1000 + GROUP_SLACK_MS < ctx.profile.budgetMs;

function add(row: Row, key: FigKey, value: number): void {
  (row.samples[key] ??= []).push(value);
}

function miss(row: Row, key: FigKey, why: string): void {
  row.missing[key] ??= why;
}

/** Starts the system's proxy on `cpus`, waits for a probe, runs `body`, always stops it. */
async function withProxy(row: Row, ports: Ports, cpus: string, ctx: Ctx, waitFor: (proxy: Proc) => Promise<void>, body: (proxy: Proc | null) => Promise<void>): Promise<void> {
  const l = row.sys.launch?.(ports, ctx.tmp);
  const proxy = l ? start(row.name, ['taskset', '-c', cpus, ...l.argv], l.cwd) : null;
  try {
    if (proxy) {
      await waitFor(proxy);
      const why = row.sys.afterStart?.(proxy.tail());
      if (why) throw new StartError(why);
    }
    await body(proxy);
  } finally {
    if (proxy) await stop(proxy);
  }
}

async function tputGroup(row: Row, ctx: Ctx): Promise<void> {
  const pr = ctx.profile;
  const ports = await freePorts();
  const cpus = row.sys.unpinned ? `${TOOL_CPU},${PROXY_CPU}` : PROXY_CPU;
  await withProxy(row, ports, cpus, ctx, (proxy) => waitThrough(ports.udp, ports.udpUp, [proxy]), async (proxy) => {
    const udpTarget = proxy ? ports.udp : ports.udpUp;
    // -e: the sink answers the first warm-up datagrams, so that a proxy that offloads a flow once it
    // has seen a reply (l7mp-ts -o init) can; for the others it is 16 datagrams back to the client.
    const P = proxy ? ['-P', proxy.pid] : [];
    const tputOpts = proxy ? ['-e', ...(row.sys.kernelThreads ? ['-K'] : [])] : [];
    const tput = (extra: (string | number)[], seconds: number) =>
      udpbench(['tput', '-d', udpTarget, '-s', ports.udpUp, '-m', 64, '-t', seconds, ...P, ...tputOpts, ...extra], (seconds + 5) * 1000);
    let satPps = 0;
    try {
      const r = await tput([], pr.satS);
      satPps = r.recv_pps as number;
      add(row, 'sat', satPps);
      if (typeof r.cpu_us_per_pkt === 'number') {
        const k = typeof r.kthread_cpu_us_per_pkt === 'number' ? r.kthread_cpu_us_per_pkt : 0;
        add(row, 'cpu', r.cpu_us_per_pkt + k);
        if (row.sys.kernelThreads) {
          add(row, 'cpuProc', r.cpu_us_per_pkt);
          add(row, 'cpuKthreads', k);
        }
      }
      row.other.push(r.other_cpu_pct as number);
      progress(`${row.name}: UDP sat ${num(satPps)} pps, loss ${(r.loss_pct as number).toFixed(1)}%, ${typeof r.cpu_us_per_pkt === 'number' ? r.cpu_us_per_pkt.toFixed(2) : '-'} µs/dgram${typeof r.kthread_cpu_us_per_pkt === 'number' ? ` + kernel threads ${r.kthread_cpu_us_per_pkt.toFixed(2)}` : ''}, other load ${(r.other_cpu_pct as number).toFixed(0)}%`);
    } catch (err) {
      if (err instanceof NothingError) {
        // The proxy forwarded the probe, then delivered nothing under load: that is a measurement (0).
        add(row, 'sat', 0);
        add(row, 'lossfree', 0);
        row.notes.push('UDP sat: in some repetition nothing reached the sink under load after the probe had come through (counted as 0, and 0 for pps <1% loss)');
      } else {
        miss(row, 'sat', msg(err));
        miss(row, 'lossfree', 'no saturation figure to pace from');
      }
      progress(`${row.name}: UDP sat failed: ${msg(err)}`);
    }
    if (satPps > 0) {
      let found = false;
      for (const f of pr.ladder) {
        if (!fits(ctx, pr.ladderS + 2 * pr.streamS)) {
          miss(row, 'lossfree', 'skipped: time budget');
          break;
        }
        const r = await tput(['-r', Math.round(f * satPps)], pr.ladderS).catch((err: unknown) => ({ error: msg(err) }) as Json);
        if (typeof r.loss_pct === 'number' && r.loss_pct < 1) {
          add(row, 'lossfree', r.recv_pps as number);
          progress(`${row.name}: < 1% loss at ${f}× sat: ${num(r.recv_pps as number)} pps (loss ${r.loss_pct.toFixed(2)}%)`);
          found = true;
          break;
        }
      }
      if (!found && !row.missing.lossfree) {
        add(row, 'lossfree', 0);
        row.notes.push(`pps <1% loss: ≥ 1% loss even at ${pr.ladder.at(-1)}× sat in some repetition (counted as 0)`);
      }
    }
    for (const [key, mode] of [['tcp', 'tcp'], ['ws', 'ws']] as const) {
      if (!fits(ctx, pr.streamS)) {
        miss(row, key, 'skipped: time budget');
        continue;
      }
      const [target, up] = mode === 'tcp' ? [ports.tcp, ports.tcpUp] : [ports.ws, ports.wsUp];
      try {
        const r = await udpbench([mode, '-d', proxy ? target : up, '-s', up, '-t', pr.streamS, ...P], (pr.streamS + 12) * 1000);
        const v = mode === 'tcp' ? (r.gbps as number) : (r.payload_msgs_per_s as number);
        add(row, key, v);
        progress(`${row.name}: ${mode === 'tcp' ? `TCP ${v.toFixed(2)} Gbit/s` : `WebSocket ${num(v)} msg/s`}, proxy CPU ${r.cpu_pct ?? '-'}%`);
      } catch (err) {
        miss(row, key, msg(err));
        progress(`${row.name}: ${mode} failed: ${msg(err)}`);
      }
    }
  });
}

async function rttGroup(row: Row, ctx: Ctx): Promise<void> {
  const pr = ctx.profile;
  const ports = await freePorts();
  const echo = start('udpbench echo', ['taskset', '-c', TOOL_CPU, udpbenchBin, 'echo', '-p', String(ports.udpUp)]);
  try {
    let echoReady = false;
    await withProxy(row, ports, TOOL_CPU, ctx, async (proxy) => {
      await waitThrough(ports.udp, null, [echo, proxy]);
      echoReady = true;
    }, async (proxy) => {
      if (!echoReady) await waitThrough(ports.udpUp, null, [echo]);
      for (const [size, keys] of [[64, ['r64p50', 'r64p99', 'r64p999']], [1024, ['r1kp50', 'r1kp99', 'r1kp999']]] as const) {
        if (!fits(ctx, pr.pingS + (size === 64 ? 2.5 : 0.5))) {
          for (const k of keys) miss(row, k, 'skipped: time budget');
          continue;
        }
        try {
          const r = await udpbench(['ping', '-d', proxy ? ports.udp : ports.udpUp, '-m', size, '-t', pr.pingS, '-w', PING_WARMUP[size === 64 ? 0 : 1]], (pr.pingS + 10) * 1000);
          add(row, keys[0], r.p50_us as number);
          add(row, keys[1], r.p99_us as number);
          add(row, keys[2], r.p999_us as number);
          if ((r.lost as number) > 0) row.notes.push(`${r.lost} ping replies lost at ${size} B`);
          progress(`${row.name}: RTT ${size} B p50 ${us(r.p50_us as number)} µs, p99 ${us(r.p99_us as number)}, p99.9 ${us(r.p999_us as number)}`);
        } catch (err) {
          for (const k of keys) miss(row, k, msg(err));
          progress(`${row.name}: ping ${size} B failed: ${msg(err)}`);
        }
      }
    });
  } finally {
    await stop(echo);
  }
}

async function sessionsGroup(row: Row, ctx: Ctx): Promise<void> {
  const pr = ctx.profile;
  const n = pr.sessions;
  const ports = await freePorts();
  const cpus = row.sys.unpinned ? `${TOOL_CPU},${PROXY_CPU}` : PROXY_CPU;
  await withProxy(row, ports, cpus, ctx, (proxy) => waitThrough(ports.udp, ports.udpUp, [proxy]), async (proxy) => {
    const before = proxy ? treePssKiB(proxy.pid) : 0;
    try {
      const r = await udpbench(['sess', '-d', proxy ? ports.udp : ports.udpUp, '-s', ports.udpUp, '-n', n, '-t', pr.sessMaxS], (pr.sessMaxS + 8) * 1000);
      const established = r.established as number;
      if (!row.sys.na?.sess) add(row, 'sess', r.sessions_per_s as number);
      let mem = '';
      if (proxy && !row.sys.na?.mem) {
        await sleep(200);
        const after = treePssKiB(proxy.pid);
        if (established > 0) {
          add(row, 'mem', (after - before) / established);
          mem = `, PSS ${(before / 1024).toFixed(1)} -> ${(after / 1024).toFixed(1)} MiB = ${((after - before) / established).toFixed(2)} KiB/session`;
        }
      }
      row.established.push(established);
      if (proxy && established < n && /EMFILE/.test(proxy.tail())) {
        row.notes.push(`the proxy logged EMFILE: its open-file limit (${openFileLimit()}) ran out before ${n} sessions`);
      }
      progress(`${row.name}: ${num(r.sessions_per_s as number)} new sessions/s (${r.arrived}/${n} in ${(r.duration_s as number).toFixed(2)} s), ${established} established${mem}`);
    } catch (err) {
      miss(row, 'sess', msg(err));
      miss(row, 'mem', msg(err));
      progress(`${row.name}: sessions failed: ${msg(err)}`);
    }
  });
}

// ---- progress, machine, output ----

let began = Date.now();
let done = 0;
let total = 1;

function progress(line: string): void {
  const s = Math.round((Date.now() - began) / 1000);
  process.stderr.write(`[${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')} ${String(done).padStart(2)}/${total}] ${line}\n`);
}

const msg = (err: unknown) => (err instanceof Error ? err.message : String(err)).replaceAll('\n', ' ').slice(0, 400);

/**
 * The kernel's DAMON memory monitors that run (`/sys/kernel/mm/damon/admin`), if any: a kdamond
 * sampling physical memory (paddr: it checks and clears the pages' accessed bits) slows the other
 * CPU too for a few ms at each sample. Seen on this VM (2026-12-07, perf sched): kdamond ran every
 * 512 ms on CPU 1, and each time the round trips on CPU 0 slowed, a direct one from 17 to 110–200
 * µs, one through a Node proxy to 0.4–1 ms, for about 5 ms: it sets much of the RTT rows' p99.9,
 * a proxy's with a longer path more than another's.
 */
function damon(): string | null {
  const dir = '/sys/kernel/mm/damon/admin/kdamonds';
  const on: string[] = [];
  try {
    for (const k of readdirSync(dir)) {
      if (!/^\d+$/.test(k) || readFileSync(path.join(dir, k, 'state'), 'utf8').trim() !== 'on') continue;
      const ctx = path.join(dir, k, 'contexts', '0');
      const ops = existsSync(path.join(ctx, 'operations')) ? readFileSync(path.join(ctx, 'operations'), 'utf8').trim() : '?';
      const sample = Number(readFileSync(path.join(ctx, 'monitoring_attrs', 'intervals', 'sample_us'), 'utf8')) / 1000;
      on.push(`kdamond ${k} (${ops}, a sample every ${sample} ms)`);
    }
  } catch {
    // no DAMON, or not readable
  }
  return on.length === 0 ? null : `DAMON on: ${on.join(', ')}`;
}

function machine(): string {
  const cpus = os.cpus();
  const osName = /^PRETTY_NAME="?([^"\n]*)/m.exec(existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '')?.[1] ?? os.type();
  const virt = spawnSync('systemd-detect-virt', [], { encoding: 'utf8' }).stdout?.trim();
  const dm = damon();
  const tools = [
    `Node ${version([NODE24, '--version'], /^(v\S+)/) ?? '?'} (l7mp-ts, node-relay)`,
    `system Node ${version([NODE20, '--version'], /^(v\S+)/) ?? 'missing'} (l7mp)`,
    `nginx ${version(['nginx', '-v'], /nginx\/(\S+)/) ?? 'missing'}`,
    `socat ${version(['socat', '-V'], /socat version (\S+)/) ?? 'missing'}`,
    `@l7mp/l7mp ${existsSync(L7MP_DIR) ? (JSON.parse(readFileSync(path.join(L7MP_DIR, 'package.json'), 'utf8')) as { version: string }).version : 'not installed'}`,
  ];
  return `${cpus.length} × ${cpus[0]?.model ?? '?'}${virt && virt !== 'none' ? ` (${virt})` : ''}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${osName}, kernel ${os.release()}${dm === null ? '' : ` (${dm})`}, open-file limit ${openFileLimit()}; ${tools.join(', ')}`;
}

function resultText(rows: Row[], ctx: Ctx, date: string, loadBefore: number[], chartFile: string): string {
  const pr = ctx.profile;
  const others = rows.filter((r) => r.sys.launch).flatMap((r) => r.other);
  const o = stats(others);
  for (const r of rows) {
    const s = stats(r.other);
    const cp = stats(r.samples.cpuProc ?? []);
    const ck = stats(r.samples.cpuKthreads ?? []);
    if (cp && ck) r.notes.push(`CPU µs/dgram: proxy process ${cp.med.toFixed(2)} + kernel threads ${ck.med.toFixed(2)} (medians)`);
    const e = stats(r.established);
    if (e && e.min < pr.sessions) {
      r.notes.push(`sessions established ${e.min === e.max ? e.min : `${e.min}–${e.max}`} of ${pr.sessions} (${pr.sessMaxS} s, then up to 3 resends of the missing ones)`);
    }
    if (s && !r.unavailable && r.sys.launch) r.notes.push(`other load ${s.med.toFixed(0)}%${r.other.length > 1 ? ` [${s.min.toFixed(0)}–${s.max.toFixed(0)}]` : ''}`);
  }
  return `# l7mp-ts vs peers: ${date} (${pr.name} run)

Machine: ${machine()}.
Load: load average ${loadBefore.map((x) => x.toFixed(2)).join(' / ')} when the run began; CPU used by other jobs during the UDP saturation trials ${o ? `median ${o.med.toFixed(0)}% [${o.min.toFixed(0)}–${o.max.toFixed(0)}%]` : '-'} of ${os.cpus().length * 100}%${o && o.med > 10 ? ' (**the machine was loaded: treat these numbers as noisy**)' : ''}.
Method: ${pr.reps} repetition(s), median [min–max]; ${rows.some((r) => r.name === REF && !r.unavailable) ? 'each cell ends with its ratio to nginx, oriented so that > 1× is better than nginx' : 'nginx did not run, so there are no ratios'}. UDP: one flow, 64 B, unpaced ${pr.satS} s (sat) after a 0.2 s warm-up; CPU µs/dgram = CPU time of the proxy's whole process tree (/proc schedstat of every thread) / datagrams delivered; pps <1% loss = the first rate of the ladder ${pr.ladder.join(' / ')} × sat (${pr.ladderS} s each) with < 1% loss, delivered pps. RTT: ping-pong, one datagram in flight, ${pr.pingS} s after ${PING_WARMUP[0]} warm-up round trips (at most 2 s; ${PING_WARMUP[1]} before the 1 KiB trial), echo server, proxy and client on CPU ${TOOL_CPU}. TCP: one connection, 128 KiB writes, ${pr.streamS} s. WebSocket: one connection, 64 B binary messages, ${pr.streamS} s (l7mp and l7mp-ts terminate and re-frame; the others pass bytes through). New UDP sessions/s: one datagram from each of ${pr.sessions} new source addresses, at most 32 in flight. KiB/idle sess: growth of the proxy tree's PSS / sessions established. Proxy on CPU ${PROXY_CPU}, load generator (C, bench/udpbench.c) on CPU ${TOOL_CPU}, except where noted. Took ${((Date.now() - ctx.began) / 1000).toFixed(0)} s.

${markdownTable(FIGURES, rows, REF)}
![chart](${chartFile})
`;
}

function writeReadme(resultsFile: string, chartFile: string, text: string): void {
  const readme = path.join(REPO_ROOT, 'README.md');
  const begin = '<!-- bench:begin -->';
  const end = '<!-- bench:end -->';
  const cur = readFileSync(readme, 'utf8');
  const i = cur.indexOf(begin);
  const j = cur.indexOf(end);
  if (i < 0 || j < i) {
    progress(`README.md has no ${begin} ... ${end} block: not updated`);
    return;
  }
  const body = text
    .replace(/^# .*\n/, `Latest full run (\`npm run bench\`, written by it; [${path.relative(REPO_ROOT, resultsFile)}](${path.relative(REPO_ROOT, resultsFile)})):\n`)
    .replace(/!\[chart\]\(.*\)/, `![l7mp-ts vs peers, normalised to nginx](${chartFile})`);
  writeFileSync(readme, `${cur.slice(0, i + begin.length)}\n${body}${cur.slice(j)}`);
  progress('README.md: results block updated');
}

// ---- main ----

function usage(m: string): never {
  console.error(`bench: ${m}\nusage: node bench/bench.ts [--quick] [--systems ${ALL.join(',')}] [--no-boost] [--no-readme]`);
  process.exit(2);
}

async function main(): Promise<void> {
  let values;
  try {
    values = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        systems: { type: 'string', default: ALL.join(',') },
        boost: { type: 'boolean', default: true },
        readme: { type: 'boolean', default: true },
      },
      allowNegative: true,
    }).values;
  } catch (err) {
    usage(msg(err));
  }
  boost = values.boost;
  const profile = values.quick ? PROFILES.quick : PROFILES.full;
  const ids = values.systems.split(',').map((s) => s.trim());
  for (const id of ids) if (!SYSTEMS[id]) usage(`unknown system '${id}'`);
  if (os.availableParallelism() < 2) usage('needs 2 CPUs (proxy on CPU 1, load generator on CPU 0)');
  if (spawnSync('taskset', ['--version']).status !== 0) usage('taskset (util-linux) is not installed');
  began = Date.now();
  const ctx: Ctx = { profile, tmp: mkdtempSync(path.join(os.tmpdir(), 'l7mp-bench-')), began };
  process.on('exit', () => rmSync(ctx.tmp, { recursive: true, force: true }));
  setTimeout(() => {
    console.error(`bench: over the ${profile.budgetMs / 1000} s budget, aborting`);
    for (const child of live) killGroup(child, 'SIGKILL');
    try {
      onWatchdog?.();
    } finally {
      process.exit(1);
    }
  }, profile.budgetMs + 5_000).unref();
  const loadBefore = os.loadavg();
  spawnSync('taskset', ['-a', '-p', '-c', TOOL_CPU, String(process.pid)], { stdio: 'ignore' });

  progress(`building the load generator (bench/build.sh)`);
  const build = spawnSync('bash', [path.join(BENCH_DIR, 'build.sh')], { encoding: 'utf8' });
  if (build.status !== 0) usage(`building udpbench failed:\n${build.stderr}`);
  udpbenchBin = build.stdout.trim();

  const rows: Row[] = [];
  for (const id of ids) {
    const sys = SYSTEMS[id];
    const why = await sys.prepare();
    rows.push({ sys, name: sys.name, unavailable: why, samples: {}, missing: { ...sys.na }, notes: [...(sys.notes ?? [])], other: [], established: [], dead: why !== null });
    if (why) progress(`${sys.name}: not run: ${why}`);
  }
  onWatchdog = () => writeOutputs(rows, ctx, loadBefore, false, true);
  const groups = [
    { name: 'tput', run: tputGroup, seconds: profile.satS + profile.ladderS * 2 + 2 * profile.streamS },
    { name: 'rtt', run: rttGroup, seconds: 2 * profile.pingS + 3 },
    { name: 'sessions', run: sessionsGroup, seconds: profile.sessMaxS / 2 + 1 },
  ];
  const runnable = rows.filter((r) => !r.dead);
  total = profile.reps * (2 * runnable.length + runnable.filter((r) => !(r.sys.na?.sess && r.sys.na.mem)).length);
  // Systems interleave within a repetition, so slow drifts of the machine's load hit all of them.
  for (let rep = 1; rep <= profile.reps; rep++) {
    for (const g of groups) {
      const order = g.name === 'sessions' ? [...rows.filter((r) => r.sys.sessionsLast !== true), ...rows.filter((r) => r.sys.sessionsLast === true)] : rows;
      for (const row of order) {
        if (row.dead) continue;
        if (g.name === 'sessions' && row.sys.na?.sess && row.sys.na.mem) continue;
        done++;
        if (!fits(ctx, g.seconds)) {
          row.notes.push(`rep ${rep} ${g.name}: skipped (time budget)`);
          progress(`${row.name} rep ${rep}/${profile.reps} ${g.name}: skipped, time budget`);
          continue;
        }
        progress(`${row.name} rep ${rep}/${profile.reps} ${g.name}`);
        boostRow = !(row.sys.kernelThreads && g.name === 'tput');
        try {
          await g.run(row, ctx);
        } catch (err) {
          if (err instanceof StartError) {
            row.unavailable = err.message;
            row.dead = true;
          } else row.notes.push(`rep ${rep} ${g.name}: ${msg(err)}`);
          progress(`${row.name}: ${msg(err)}`);
        }
      }
    }
  }

  onWatchdog = null;
  writeOutputs(rows, ctx, loadBefore, profile.name === 'full' && ids.length === ALL.length && values.readme, false);
}

/** Writes the table, chart and samples; a complete full run also updates README.md. */
function writeOutputs(rows: Row[], ctx: Ctx, loadBefore: number[], complete: boolean, aborted: boolean): void {
  const profile = ctx.profile;
  const stamp = new Date().toISOString().replace(/:\d\d\.\d+Z$/, 'Z').replace(':', '-');
  const base = `${stamp}${profile.name === 'quick' ? '-quick' : ''}`;
  const resultsDir = path.join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const chartFile = path.join(resultsDir, `${base}.svg`);
  const load = stats(rows.filter((r) => r.sys.launch).flatMap((r) => r.other));
  writeFileSync(chartFile, svgChart(FIGURES, rows, REF, {
    title: `l7mp-ts vs peers, ratio to nginx (> 1 = better than nginx)`,
    subtitle: `${profile.name} run ${stamp}, medians of ${profile.reps}; UDP 1 flow 64 B; ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}` +
      (load && load.med > 10 ? `; loaded: other jobs used ${load.med.toFixed(0)}% of ${os.cpus().length * 100}% CPU` : ''),
    skip: ['direct'],
  }));
  let text = resultText(rows, ctx, stamp, loadBefore, path.basename(chartFile));
  if (aborted) text = text.replace('\n\n', `\n\n**Aborted at the time budget (${profile.budgetMs / 1000} s): later trials are missing.**\n\n`);
  const resultsFile = path.join(resultsDir, `${base}.md`);
  writeFileSync(resultsFile, text);
  // The raw samples, to re-render or compare runs later.
  const raw = rows.map(({ name, unavailable, samples, missing, notes, other, established }) => ({ name, unavailable, samples, missing, notes, other, established }));
  writeFileSync(path.join(resultsDir, `${base}.json`), `${JSON.stringify({ date: stamp, profile, machine: machine(), figures: FIGURES.map((f) => ({ key: f.key, header: f.header, higherIsBetter: f.higherIsBetter })), rows: raw }, null, 1)}\n`);
  process.stdout.write(`\n${text}`);
  progress(`wrote ${path.relative(REPO_ROOT, resultsFile)}, ${path.basename(chartFile)} (chart) and ${base}.json (samples)`);
  if (complete && !aborted) {
    copyFileSync(chartFile, path.join(resultsDir, 'latest.svg'));
    writeReadme(resultsFile, 'bench/results/latest.svg', text);
  }
}

process.on('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`bench: ${signal}, stopping`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('bench:', err);
    process.exit(1);
  },
);
