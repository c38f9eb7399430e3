/**
 * `node bench/rtsp-fanout.ts [--viewers 1,10,100] [--seconds 5] [--modes fanout,userspace,spliced] [--reps 1]`:
 * proxy CPU per delivered RTP packet when N viewers play one stream through an RTSP listener.
 *
 * Modes (each a fresh `bin/l7mp-ts --workers 1` in a process of its own):
 * - `fanout`: listener option `fanout` (one upstream PLAY, every viewer fed from it in
 *   JavaScript), `-o disable`;
 * - `userspace`: one upstream session per viewer, each track an RTP and an RTCP relay (child
 *   sessions), `-o disable`;
 * - `spliced`: the same with `-o init`: each RTP relay is spliced in the kernel at the server's
 *   first datagram (the bench checks that every one is, through the admin API's actor tree).
 *
 * The server is the test fixture (gst-rtsp-server via python3-gi, test/fixtures/rtsp-server.py
 * `--shared`: one 320x240 MJPEG encoder at 25 fps feeds every session); the viewers are minimal
 * RTSP clients in this process (DESCRIBE, SETUP over UDP, PLAY, count RTP datagrams, TEARDOWN);
 * everything on loopback. For each mode and N: an idle window of `--seconds` (the proxy up, no
 * viewer), all viewers PLAY, 1 s of warm-up, then for `--seconds` the CPU time of every thread of
 * the proxy process (/proc/<pid>/task/[*]/schedstat) and of the kernel threads (kworker,
 * ksoftirqd: where the kernel sends spliced datagrams, as bench/udp-offload.ts counts them), and
 * the datagrams the viewers received. The kernel threads' CPU of the idle window (other jobs'
 * kworkers) is subtracted; the proxy's is shown, and subtracted in the "over idle" columns.
 *
 * What is counted: "proxy" is the proxy process (JavaScript, its syscalls, and on loopback the
 * softirq that delivers what it sends to the viewer's socket, which runs in the sender's context);
 * "kernel threads" is where a spliced datagram is sent (the psock backlog work, then its loopback
 * delivery). Not counted in any mode: the receive softirq of the server's datagrams (and the
 * sk_skb verdict program that runs in it), charged to the server process. The proxy's idle
 * CPU (timers, its worker thread) dominates "proxy µs/pkt" at N = 1. Bounded: each mode
 * and N at most 2 `seconds` + 60 s; every child is killed on exit. Results: stdout and
 * bench/results/rtsp-fanout-<UTC>.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { RtspParser, encode, header, type RtspMessage } from '../protocols/rtsp/codec.ts';
import { kthreadNs } from './kthreads.ts';

const root = path.resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { viewers: { type: 'string', default: '1,10,100' }, seconds: { type: 'string', default: '5' }, modes: { type: 'string', default: 'fanout,userspace,spliced' }, reps: { type: 'string', default: '1' } } });
const counts = (values.viewers as string).split(',').map(Number);
const seconds = Number(values.seconds);
const modes = (values.modes as string).split(',') as Array<'fanout' | 'userspace' | 'spliced'>;
const reps = Number(values.reps);
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

async function freePort(): Promise<number> {
  for (;;) {
    const p = 10000 + Math.floor(Math.random() * 20000);
    const ok = await new Promise<boolean>((r) => {
      const s = net.createServer();
      s.once('error', () => r(false));
      s.listen(p, '127.0.0.1', () => s.close(() => r(true)));
    });
    if (ok) return p;
  }
}

function waitLine(p: ChildProcess, stream: 'stdout' | 'stderr', what: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`no "${what}" in ${ms} ms: ${buf}`)), ms);
    p[stream]?.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes(what)) {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

/** A minimal RTSP viewer over UDP. */
class Viewer {
  packets = 0;
  private readonly sock: net.Socket;
  private readonly rtp = dgram.createSocket('udp4');
  private readonly rtcp = dgram.createSocket('udp4');
  private cseq = 0;
  private session = '';
  private readonly waiting = new Map<string, (m: RtspMessage) => void>();

  private readonly url: string;

  constructor(url: string, port: number) {
    this.url = url;
    this.sock = net.connect(port, '127.0.0.1');
    const parser = new RtspParser({ message: (m) => this.waiting.get(header(m, 'cseq') ?? '')?.(m), frame: () => {}, error: () => this.sock.destroy() });
    this.sock.on('data', (d) => parser.push(d));
    this.sock.on('error', () => {});
    this.rtp.on('message', () => this.packets++);
  }

  private request(method: string, url: string, headers: Array<[string, string]> = []): Promise<RtspMessage> {
    const cseq = String(++this.cseq);
    const h: Array<[string, string]> = [['CSeq', cseq], ...headers];
    if (this.session !== '') h.push(['Session', this.session]);
    this.sock.write(encode({ request: true, method, url, version: 'RTSP/1.0', status: 0, reason: '', headers: h, body: Buffer.alloc(0) }));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${method}: no answer`)), 10_000);
      this.waiting.set(cseq, (m) => {
        clearTimeout(t);
        resolve(m);
      });
    });
  }

  async play(): Promise<void> {
    await Promise.all([new Promise<void>((r) => this.rtp.bind(0, '127.0.0.1', r)), new Promise<void>((r) => this.rtcp.bind(0, '127.0.0.1', r))]);
    await this.request('DESCRIBE', this.url, [['Accept', 'application/sdp']]);
    const s = await this.request('SETUP', `${this.url}/stream=0`, [['Transport', `RTP/AVP;unicast;client_port=${this.rtp.address().port}-${this.rtcp.address().port}`]]);
    if (s.status !== 200) throw new Error(`SETUP: ${s.status}`);
    this.session = (header(s, 'session') ?? '').split(';')[0] ?? '';
    const p = await this.request('PLAY', `${this.url}/`);
    if (p.status !== 200) throw new Error(`PLAY: ${p.status}`);
  }

  async stop(): Promise<void> {
    await this.request('TEARDOWN', `${this.url}/`).catch(() => {});
    this.sock.destroy();
    this.rtp.close();
    this.rtcp.close();
  }
}

/** CPU ns of every thread of process `pid` (schedstat: on-CPU time). */
function processNs(pid: number): number {
  let sum = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended
    }
  }
  return sum;
}


const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Mode = 'fanout' | 'userspace' | 'spliced';
interface Row {
  mode: Mode;
  n: number;
  plays: number;
  pps: number;
  spliced: string;
  /** The proxy's CPU with no viewer (its timers, its worker thread). Unit: % of one core. */
  idlePct: number;
  /** Unit: µs per delivered packet. */
  proxyUs: number;
  /** The same over the proxy's idle CPU. */
  overIdleUs: number;
  kthreadUs: number;
}

/** RTP relays in the proxy's actor tree, and how many of them are spliced. */
async function relayState(admin: number): Promise<{ relays: number; spliced: number }> {
  const res = await fetch(`http://127.0.0.1:${admin}/api/v1/actors`);
  const tree = (await res.json()) as { children?: unknown[] };
  let relays = 0;
  let spliced = 0;
  const walk = (n: { kind?: string; name?: string; offload?: { spliced?: boolean }; children?: unknown[] }): void => {
    if (n.kind === 'session' && n.name?.startsWith('RTP:') === true) {
      relays++;
      if (n.offload?.spliced === true) spliced++;
    }
    for (const c of n.children ?? []) walk(c as never);
  };
  walk(tree as never);
  return { relays, spliced };
}

async function trial(mode: Mode, n: number, srvPort: number, dir: string, playsOf: () => number): Promise<Row> {
  const port = await freePort();
  const admin = await freePort();
  const base = 2 * Math.floor((10000 + Math.floor(Math.random() * 16000)) / 2);
  const cfg = {
    admin: { log_level: 'warn', port: admin },
    clusters: [{ name: 'camera', spec: { protocol: 'RTSP', port: srvPort }, endpoints: [{ spec: { address: '127.0.0.1' } }] }],
    listeners: [
      {
        name: 'rtsp',
        spec: { protocol: 'RTSP', port, address: '127.0.0.1', options: { fanout: mode === 'fanout', rtp_ports: { min: base, max: base + 4 * n + 40 } } },
        rules: [{ action: { route: { destination: 'camera' } } }],
      },
    ],
  };
  const file = path.join(dir, `c-${mode}-${n}.yaml`);
  fs.writeFileSync(file, YAML.stringify(cfg));
  const px = spawn(path.join(root, 'bin', 'l7mp-ts'), ['-c', file, '-l', 'info', '--workers', '1', '-o', mode === 'spliced' ? 'init' : 'disable'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(px);
  let err = '';
  px.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  await waitLine(px, 'stderr', 'l7mp-ts ready', 30_000);
  if (mode === 'spliced' && err.includes('kernel offload unavailable')) throw new Error(`spliced mode: ${err.split('\n').find((l) => l.includes('unavailable'))}`);
  // Idle window: the proxy with no viewer, and the other jobs' kernel-thread CPU; subtracted below.
  const ib0 = processNs(px.pid as number);
  const kb0 = kthreadNs();
  const tb0 = Date.now();
  await sleep(seconds * 1000);
  const idleDt = (Date.now() - tb0) / 1000;
  const kBase = (kthreadNs() - kb0) / idleDt;
  const idle = (processNs(px.pid as number) - ib0) / idleDt;
  const url = `rtsp://127.0.0.1:${port}/test`;
  const playsBefore = playsOf();
  const viewers: Viewer[] = [];
  for (let i = 0; i < n; i++) {
    const v = new Viewer(url, port);
    viewers.push(v);
    await v.play();
  }
  await sleep(1000);
  const st = mode === 'fanout' ? null : await relayState(admin);
  const p0 = viewers.reduce((s, v) => s + v.packets, 0);
  const c0 = processNs(px.pid as number);
  const k0 = kthreadNs();
  const t0 = Date.now();
  await sleep(seconds * 1000);
  const c1 = processNs(px.pid as number);
  const k1 = kthreadNs();
  const p1 = viewers.reduce((s, v) => s + v.packets, 0);
  const dt = (Date.now() - t0) / 1000;
  for (const v of viewers) await v.stop();
  px.kill('SIGTERM');
  await new Promise((r) => px.once('exit', r));
  const pkts = p1 - p0;
  const kthread = Math.max(0, k1 - k0 - kBase * dt);
  return {
    mode,
    n,
    plays: playsOf() - playsBefore,
    pps: pkts / dt,
    spliced: st === null ? '-' : `${st.spliced}/${st.relays}`,
    idlePct: idle / 1e7,
    proxyUs: pkts > 0 ? (c1 - c0) / 1000 / pkts : NaN,
    overIdleUs: pkts > 0 ? Math.max(0, c1 - c0 - idle * dt) / 1000 / pkts : NaN,
    kthreadUs: pkts > 0 ? kthread / 1000 / pkts : NaN,
  };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtspb-'));
  const srvPort = await freePort();
  const srv = spawn('/usr/bin/python3', [path.join(root, 'test', 'fixtures', 'rtsp-server.py'), '127.0.0.1', String(srvPort), '--shared'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(srv);
  await waitLine(srv, 'stdout', 'READY', 20_000);
  let plays = 0;
  srv.stdout?.on('data', (d: Buffer) => (plays += (d.toString().match(/^PLAY /gm) ?? []).length));
  const rows: Row[] = [];
  for (let r = 0; r < reps; r++) {
    for (const n of counts) {
      for (const mode of modes) {
        const budget = setTimeout(() => {
          process.stderr.write(`rtsp-fanout: ${mode} N=${n} over its time budget\n`);
          process.exit(1);
        }, (seconds * 2 + 60) * 1000);
        process.stderr.write(`rep ${r + 1}/${reps} ${mode} N=${n}...\n`);
        rows.push(await trial(mode, n, srvPort, dir, () => plays));
        clearTimeout(budget);
      }
    }
  }
  srv.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
  const f = (v: number): string => (Number.isNaN(v) ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(2));
  /** Median, and [min-max] over repetitions. */
  const med = (xs: number[]): string => {
    const v = [...xs].sort((a, b) => a - b);
    const m = v[Math.floor(v.length / 2)] as number;
    return v.length > 1 ? `${f(m)} [${f(v[0] as number)}-${f(v[v.length - 1] as number)}]` : f(m);
  };
  const lines: string[] = [];
  for (const n of counts) {
    for (const mode of modes) {
      const rs = rows.filter((r) => r.n === n && r.mode === mode);
      const r0 = rs[0] as Row;
      lines.push(
        `| ${n} | ${mode} | ${r0.plays} | ${r0.spliced} | ${med(rs.map((r) => r.pps))} | ${med(rs.map((r) => r.idlePct))} | ${med(rs.map((r) => r.proxyUs))} | ${med(rs.map((r) => r.overIdleUs))} | ${med(rs.map((r) => r.kthreadUs))} | ${med(rs.map((r) => r.overIdleUs + r.kthreadUs))} |`,
      );
    }
  }
  const out = [
    `RTSP: N viewers of one stream (gst-rtsp-server fixture, 320x240 MJPEG 25 fps, shared media), l7mp-ts --workers 1, loopback, ${seconds} s per row, ${reps} repetition(s) (median [min-max]); ${os.cpus().length} cores, load average at the end ${os.loadavg()[0]?.toFixed(1)}`,
    '',
    'CPU per delivered RTP packet, µs. proxy: every thread of the proxy process; over idle: less its CPU with no viewer; kernel threads: kworker/ksoftirqd CPU beyond an idle window (where spliced datagrams are sent).',
    '',
    '| viewers | mode | upstream PLAYs | RTP relays spliced | delivered pkt/s | proxy idle CPU % | proxy µs/pkt | proxy over idle µs/pkt | kernel threads µs/pkt | over idle + kernel threads µs/pkt |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...lines,
  ].join('\n');
  process.stdout.write(`${out}\n`);
  fs.mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
  fs.writeFileSync(path.join(root, 'bench', 'results', `rtsp-fanout-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}Z.md`), `${out}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
