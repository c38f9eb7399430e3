/**
 * `node bench/rtsp-fanout.ts [--viewers 1,10,100] [--seconds 5]`: proxy CPU per delivered RTP
 * packet when N viewers play one stream through an RTSP listener with `fanout` (one upstream PLAY).
 *
 * The server is the test fixture (gst-rtsp-server via python3-gi, test/fixtures/rtsp-server.py:
 * 320x240 MJPEG at 25 fps); the proxy is `bin/l7mp-ts --workers 1` in a process of its own; the
 * viewers are minimal RTSP clients in this process (DESCRIBE, SETUP over UDP, PLAY, count RTP
 * datagrams, TEARDOWN), on loopback. For each N: all viewers PLAY, then for `--seconds` the
 * proxy's CPU time (utime + stime of its process, /proc/<pid>/stat) and the datagrams the viewers
 * received are taken; the figure is CPU µs per delivered packet (the proxy's idle baseline, its
 * timers and worker thread, is included: it dominates at N = 1). Bounded: each N at most
 * `seconds` + 30 s; every child is killed on exit.
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

const root = path.resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { viewers: { type: 'string', default: '1,10,100' }, seconds: { type: 'string', default: '5' } } });
const counts = (values.viewers as string).split(',').map(Number);
const seconds = Number(values.seconds);
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function ticksOf(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}
const HZ = 100;

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

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtspb-'));
  const srvPort = await freePort();
  const srv = spawn('/usr/bin/python3', [path.join(root, 'test', 'fixtures', 'rtsp-server.py'), '127.0.0.1', String(srvPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(srv);
  await waitLine(srv, 'stdout', 'READY', 20_000);
  console.log(`| viewers | upstream PLAYs | delivered pkt/s | proxy CPU % | proxy CPU µs / delivered packet |`);
  console.log(`|---|---|---|---|---|`);
  let plays = 0;
  srv.stdout?.on('data', (d: Buffer) => (plays += (d.toString().match(/^PLAY /gm) ?? []).length));
  for (const n of counts) {
    const port = await freePort();
    const base = 2 * Math.floor((10000 + Math.floor(Math.random() * 18000)) / 2);
    const cfg = {
      admin: { log_level: 'warn' },
      clusters: [{ name: 'camera', spec: { protocol: 'RTSP', port: srvPort }, endpoints: [{ spec: { address: '127.0.0.1' } }] }],
      listeners: [{ name: 'rtsp', spec: { protocol: 'RTSP', port, address: '127.0.0.1', options: { fanout: true, rtp_ports: { min: base, max: base + 3 * n + 20 } } }, rules: [{ action: { route: { destination: 'camera' } } }] }],
    };
    const file = path.join(dir, `c${n}.yaml`);
    fs.writeFileSync(file, YAML.stringify(cfg));
    const px = spawn(path.join(root, 'bin', 'l7mp-ts'), ['-c', file, '-l', 'info', '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(px);
    await waitLine(px, 'stderr', 'l7mp-ts ready', 30_000);
    const url = `rtsp://127.0.0.1:${port}/test`;
    const playsBefore = plays;
    const viewers: Viewer[] = [];
    for (let i = 0; i < n; i++) {
      const v = new Viewer(url, port);
      viewers.push(v);
      await v.play();
    }
    await new Promise((r) => setTimeout(r, 1000));
    const p0 = viewers.reduce((s, v) => s + v.packets, 0);
    const c0 = ticksOf(px.pid as number);
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const c1 = ticksOf(px.pid as number);
    const p1 = viewers.reduce((s, v) => s + v.packets, 0);
    const dt = (Date.now() - t0) / 1000;
    const cpuS = (c1 - c0) / HZ;
    const pkts = p1 - p0;
    for (const v of viewers) await v.stop();
    px.kill('SIGTERM');
    await new Promise((r) => px.once('exit', r));
    console.log(`| ${n} | ${plays - playsBefore} | ${Math.round(pkts / dt)} | ${((100 * cpuS) / dt).toFixed(1)} | ${pkts > 0 ? ((cpuS * 1e6) / pkts).toFixed(1) : '-'} |`);
  }
  srv.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
