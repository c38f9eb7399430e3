/**
 * `npm run bench:flood`: a session-creation flood against a UDP listener, beside one legitimate
 * flow (issue 12; docs/threat-model.md). Prints what the flood cost the legitimate flow and the
 * proxy, and whether the proxy gave its memory and file descriptors back.
 *
 *   node bench/flood.ts [--sources 50000] [--rate 5000] [--per-source 2] [--legit 1000]
 *                       [--after 60] [--workers 2] [--idle 20] [--overload-lag MS]
 *                       [--session-sockets connected|listener] [--session-rate N] [--recv-buffer BYTES] [--quick]
 *
 * Setup: `udpbench echo` (upstream), `bin/l7mp-ts` with one UDP listener (default admission
 * limits, `idle_timeout` = --idle s) routed to it, and `udpbench flood`: SOURCES distinct source
 * addresses 127.1.0.0+i (spoofed-looking, chosen per datagram with IP_PKTINFO) open sessions at
 * RATE per second, PER_SOURCE datagrams each, while a legitimate flow from 127.0.0.1 sends LEGIT
 * datagrams per second (paced) from 2 s before the flood to 2 s after it and times each reply.
 * The proxy's RSS and open fds are sampled every 200 ms (/proc/PID/status, /proc/PID/fd): the
 * baseline (after a probe, before the flood), the peak, and AFTER s after the flood ended.
 * Counters come from the proxy's /metrics at the end of the flood.
 *
 * `npm run bench:flood` passes examples/udp-gateway.yaml's listener settings (listener sockets,
 * session_rate 1000, a 4 MiB receive buffer); without flags this runs the proxy's defaults.
 * Writes bench/results/flood-<UTC>.md and prints it. `--quick`: 10000 sources at 5000/s, 15 s after.
 * Needs a C compiler (bench/build.sh). Loopback only; bounded: the flood lasts SOURCES/RATE (<= 60 s),
 * the whole run at most 4 min. Every child is killed on exit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
const { values: opt } = parseArgs({
  options: {
    sources: { type: 'string' },
    rate: { type: 'string', default: '5000' },
    'per-source': { type: 'string', default: '2' },
    legit: { type: 'string', default: '1000' },
    after: { type: 'string' },
    workers: { type: 'string', default: '2' },
    idle: { type: 'string', default: '20' },
    'overload-lag': { type: 'string' },
    'session-sockets': { type: 'string' },
    'session-rate': { type: 'string' },
    'recv-buffer': { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});
const SOURCES = Number(opt.sources ?? (opt.quick ? 10_000 : 50_000));
const RATE = Number(opt.rate);
const PER_SOURCE = Number(opt['per-source']);
const LEGIT = Number(opt.legit);
const AFTER = Number(opt.after ?? (opt.quick ? 15 : 60));
const WORKERS = Number(opt.workers);
const IDLE = Number(opt.idle);
/** admin.overload_lag_ms for the run (ms); the proxy's default when not given. */
/** The UDP listener's options.session_sockets: connected or listener; unset: the proxy's default. */
const SESSION_SOCKETS = opt['session-sockets'];
if (SESSION_SOCKETS !== undefined && SESSION_SOCKETS !== 'connected' && SESSION_SOCKETS !== 'listener') throw new Error(`--session-sockets: connected or listener, got ${SESSION_SOCKETS}`);
/** The listener's options.session_rate (new sessions/s); the proxy's default when not given. */
const SESSION_RATE = opt['session-rate'] === undefined ? undefined : Number(opt['session-rate']);
/** The listener's options.recv_buffer_size (bytes; capped by net.core.rmem_max); the kernel default when not given. */
const RECV_BUFFER = opt['recv-buffer'] === undefined ? undefined : Number(opt['recv-buffer']);
const OVERLOAD_LAG = opt['overload-lag'] === undefined ? undefined : Number(opt['overload-lag']);
const FLOOD_S = SOURCES / RATE;
if (!(FLOOD_S > 0 && FLOOD_S <= 60)) throw new Error(`--sources / --rate must be in (0, 60] s, got ${FLOOD_S}`);

const UDPBENCH = spawnSync('bash', [path.join(BENCH, 'build.sh')], { encoding: 'utf8' }).stdout.trim();
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
process.on('SIGINT', () => process.exit(130));
setTimeout(() => {
  process.stderr.write('flood: time budget (4 min) exceeded\n');
  process.exit(1);
}, 240_000).unref();

// Below the kernel's ephemeral range (32768-60999).
let nextPort = 20000 + Math.floor(Math.random() * 8000);
const port = (): number => nextPort++;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const say = (s: string): void => void process.stderr.write(`flood: ${s}\n`);

/** RSS (KiB) and open fds of a process, or null once it is gone. */
function usage(pid: number): { rssKiB: number; fds: number } | null {
  try {
    const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? NaN);
    return { rssKiB: rss, fds: fs.readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return null;
  }
}

/** The proxy's /metrics, parsed into name{labels} → value. */
async function scrape(admin: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${admin}/metrics`, { signal: AbortSignal.timeout(5000) });
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Sum of a family's samples whose labels contain every `match` pair, by the value of label `by`. */
function byLabel(m: Map<string, number>, family: string, by: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of m) {
    if (!k.startsWith(`${family}{`)) continue;
    const val = new RegExp(`${by}="([^"]*)"`).exec(k)?.[1] ?? '';
    out.set(val, (out.get(val) ?? 0) + v);
  }
  return out;
}

async function probe(lport: number): Promise<void> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  try {
    for (let i = 0; i < 50; i++) {
      // events.once removes its listener when the signal aborts: probes that time out leave none behind.
      const reply = once(s, 'message', { signal: AbortSignal.timeout(200) }).then(() => true, () => false);
      s.send('probe', lport, '127.0.0.1');
      if (await reply) return;
    }
    throw new Error('the proxy did not forward a probe within 10 s');
  } finally {
    s.close();
  }
}

async function main(): Promise<void> {
  const eport = port();
  const lport = port();
  const admin = port();
  const echo = spawn(UDPBENCH, ['echo', '-p', String(eport)], { stdio: 'ignore' });
  children.add(echo);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'l7flood-'));
  const cfg = path.join(dir, 'flood.yaml');
  fs.writeFileSync(
    cfg,
    `admin: { address: 127.0.0.1, port: ${admin}${OVERLOAD_LAG === undefined ? '' : `, overload_lag_ms: ${OVERLOAD_LAG}`} }
listeners:
  - name: gateway
    spec: { protocol: UDP, port: ${lport}, address: 127.0.0.1, options: { idle_timeout: ${IDLE}${SESSION_SOCKETS === undefined ? '' : `, session_sockets: ${SESSION_SOCKETS}`}${RECV_BUFFER === undefined ? '' : `, recv_buffer_size: ${RECV_BUFFER}`} } }${SESSION_RATE === undefined ? '' : `\n    options: { session_rate: ${SESSION_RATE} }`}
    rules:
      - action:
          route:
            destination:
              name: upstream
              spec: { protocol: UDP, port: ${eport} }
              endpoints: [ { spec: { address: 127.0.0.1 } } ]
`,
  );
  const proxy = spawn(path.join(ROOT, 'bin/l7mp-ts'), ['-c', cfg, '--workers', String(WORKERS), '-l', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(proxy);
  let log = '';
  proxy.stderr?.on('data', (d: Buffer) => {
    if (log.length < 1_000_000) log += d.toString();
  });
  const pid = proxy.pid as number;
  await probe(lport);
  say(`proxy pid ${pid}, ${WORKERS} workers, listener 127.0.0.1:${lport} -> echo :${eport}; settling 3 s`);
  await sleep(3000);
  const base = usage(pid);
  if (base === null) throw new Error(`the proxy exited: ${log}`);
  const m0 = await scrape(admin);
  const limit = m0.get('l7mp_process_session_limit') ?? NaN;

  let peak = { ...base };
  const sampler = setInterval(() => {
    const u = usage(pid);
    if (u === null) return;
    peak = { rssKiB: Math.max(peak.rssKiB, u.rssKiB), fds: Math.max(peak.fds, u.fds) };
  }, 200);

  say(`flood: ${SOURCES} sources at ${RATE}/s (${FLOOD_S.toFixed(1)} s), ${PER_SOURCE} datagrams each; legitimate flow ${LEGIT} pps`);
  const flood = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const p = spawn(UDPBENCH, ['flood', '-d', String(lport), '-n', String(SOURCES), '-r', String(RATE), '-k', String(PER_SOURCE), '-L', String(LEGIT), '-W', '2', '-A', '2'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.add(p);
    let out = '';
    p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    p.once('exit', (code) => {
      children.delete(p);
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as Record<string, unknown>);
      } catch {
        reject(new Error(`udpbench flood exited ${code}: ${out}`));
      }
    });
  });
  const m1 = await scrape(admin);
  const atEnd = usage(pid);
  say(`flood over; waiting ${AFTER} s for the sessions to idle out (idle_timeout ${IDLE} s)`);
  await sleep(AFTER * 1000);
  clearInterval(sampler);
  const later = usage(pid);
  const m2 = await scrape(admin);
  if (later === null || atEnd === null) throw new Error(`the proxy exited: ${log}`);

  const during = flood.legit_during as Record<string, number>;
  const before = flood.legit_before as Record<string, number>;
  const admitted = (byLabel(m1, 'l7mp_listener_sessions_total', 'listenerName').get('gateway') ?? 0) - 2; // the probe and the legitimate flow
  const drops = [...byLabel(m1, 'l7mp_listener_dropped_packets_total', 'reason')].filter(([, v]) => v > 0);
  const mib = (k: number): string => (k / 1024).toFixed(1);
  const heap = (m: Map<string, number>, kind: string): string => mib((byLabel(m, 'l7mp_worker_heap_bytes', 'kind').get(kind) ?? NaN) / 1024);
  const stamp = new Date().toISOString().slice(0, 19).replaceAll(':', '-') + 'Z';
  const md = [
    `## bench:flood ${stamp}`,
    '',
    `${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), loadavg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; l7mp-ts --workers ${WORKERS}, UDP idle_timeout ${IDLE} s, session_sockets ${SESSION_SOCKETS ?? 'unset (listener sockets where the workers are steered, else connected)'}${SESSION_RATE === undefined ? '' : `, session_rate ${SESSION_RATE}/s`}${RECV_BUFFER === undefined ? '' : `, recv_buffer_size ${RECV_BUFFER} B (net.core.rmem_max ${fs.readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim()})`}, default admission limits (process session cap ${limit})${OVERLOAD_LAG === undefined ? '' : `, admin.overload_lag_ms ${OVERLOAD_LAG}`}.`,
    `Flood: ${SOURCES} sources 127.1.0.0+i at ${RATE}/s, ${PER_SOURCE} x 64 B each (${flood.flood_sent} sent in ${flood.flood_s} s, ${flood.flood_replies} replies came back). Legitimate flow: ${LEGIT} pps, 64 B, from 127.0.0.1.`,
    '',
    '| figure | value |',
    '|---|---|',
    `| legitimate loss during the flood | ${during.loss_pct?.toFixed(2)} % (${during.lost} of ${during.sent}) |`,
    `| legitimate RTT p50 / p99 / p99.9 during | ${during.rtt_p50_us} / ${during.rtt_p99_us} / ${during.rtt_p999_us} µs |`,
    `| legitimate RTT p50 / p99 before | ${before.rtt_p50_us} / ${before.rtt_p99_us} µs (loss ${before.loss_pct?.toFixed(2)} %) |`,
    `| flood sessions admitted | ${admitted} of ${SOURCES} |`,
    `| drops by reason | ${drops.length === 0 ? 'none' : drops.map(([r, v]) => `${r} ${v}`).join(', ')} |`,
    `| RSS baseline / peak / at flood end / ${AFTER} s after | ${mib(base.rssKiB)} / ${mib(peak.rssKiB)} / ${mib(atEnd.rssKiB)} / ${mib(later.rssKiB)} MiB (after / baseline ${(later.rssKiB / base.rssKiB).toFixed(2)}x) |`,
    `| open fds baseline / peak / ${AFTER} s after | ${base.fds} / ${peak.fds} / ${later.fds} |`,
    `| workers' V8 heap used (committed) baseline / flood end / ${AFTER} s after | ${heap(m0, 'used')} (${heap(m0, 'total')}) / ${heap(m1, 'used')} (${heap(m1, 'total')}) / ${heap(m2, 'used')} (${heap(m2, 'total')}) MiB |`,
    `| sessions at the end of the flood / ${AFTER} s after | ${m1.get('l7mp_process_sessions') ?? '?'} / ${m2.get('l7mp_process_sessions') ?? '?'} |`,
    '',
  ].join('\n');
  const dirOut = path.join(BENCH, 'results');
  fs.mkdirSync(dirOut, { recursive: true });
  fs.writeFileSync(path.join(dirOut, `flood-${stamp}${opt.quick ? '-quick' : ''}.md`), md);
  process.stdout.write(md);
  proxy.kill('SIGTERM');
  echo.kill('SIGTERM');
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`flood: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
