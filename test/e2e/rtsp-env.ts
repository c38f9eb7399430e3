/**
 * RTSP end-to-end helpers: network namespaces joined by veth pairs, the gst-rtsp-server fixture
 * (test/fixtures/rtsp-server.py, python3-gi) and ffmpeg as the client, each in a namespace of its
 * own so that media can only take the paths the test built. Every wait is bounded; namespaces and
 * processes are removed by {@link NetLab.close} (register it with the test's cleanup).
 *
 * Names are unique per test process (`rt<pid>x<n>`, at most 15 bytes for interface names), and so
 * are the subnets (10.200-255.<pid % 250>.0/24 are picked per link), so concurrent runs do not collide.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const FIXTURE = path.resolve(import.meta.dirname, '..', 'fixtures', 'rtsp-server.py');
/** The system python: python3-gi is a Debian package, not a pip module of another interpreter. */
const PYTHON = '/usr/bin/python3';

/** Why the RTSP e2e tests cannot run here, or null: root (netns), ffmpeg and the python3-gi server. */
export function rtspLabMissing(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  if (!fs.existsSync('/usr/bin/ffmpeg')) return 'needs ffmpeg (.ci/run installs it)';
  try {
    execFileSync(PYTHON, ['-c', "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"], { stdio: 'ignore' });
  } catch {
    return 'needs python3-gi and gir1.2-gst-rtsp-server-1.0 (.ci/run installs them)';
  }
  return null;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

let labSeq = 0;
/** Links made by this process: each gets its own /24. */
let linkSeq = 0;

/** A set of network namespaces and links, removed together. */
export class NetLab {
  private readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly rootLinks: string[] = [];
  private readonly procs = new Set<ChildProcess>();
  private links = 0;

  constructor() {
    this.prefix = `rt${process.pid % 100000}x${labSeq++}`;
  }

  /** A new namespace with its loopback up; returns its name. */
  ns(tag: string): string {
    const name = `${this.prefix}${tag}`;
    ip('netns', 'add', name);
    this.namespaces.push(name);
    ip('-n', name, 'link', 'set', 'lo', 'up');
    return name;
  }

  /**
   * A veth pair between `a` and `b` (a namespace name, or null for the root namespace) on a /24 of
   * its own: `a` gets .1, `b` gets .2. No routes besides the connected one: a namespace reaches
   * only the addresses of its own links.
   */
  link(a: string | null, b: string | null): { a: string; b: string } {
    const n = this.links++;
    const subnet = `10.${200 + (linkSeq++ % 56)}.${process.pid % 250}`;
    const ia = `${this.prefix}a${n}`;
    const ib = `${this.prefix}b${n}`;
    ip('link', 'add', ia, 'type', 'veth', 'peer', 'name', ib);
    if (a === null || b === null) this.rootLinks.push(a === null ? ia : ib);
    for (const [dev, ns, host] of [
      [ia, a, 1],
      [ib, b, 2],
    ] as const) {
      if (ns !== null) ip('link', 'set', dev, 'netns', ns);
      const pre = ns === null ? [] : ['-n', ns];
      ip(...pre, 'addr', 'add', `${subnet}.${host}/24`, 'dev', dev);
      ip(...pre, 'link', 'set', dev, 'up');
    }
    return { a: `${subnet}.1`, b: `${subnet}.2` };
  }

  /** Run `cmd` in namespace `ns` (null: here); the process is killed by {@link close}. */
  spawn(ns: string | null, cmd: string, args: string[]): ChildProcess {
    const p = ns === null ? spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.procs.add(p);
    p.once('exit', () => this.procs.delete(p));
    return p;
  }

  /** Start the gst-rtsp-server fixture in `ns` on `address:port`; resolves once it listens. */
  async rtspServer(ns: string | null, address: string, port: number, opts: { shared?: boolean } = {}): Promise<RtspServer> {
    const p = this.spawn(ns, PYTHON, [FIXTURE, address, String(port), ...(opts.shared === true ? ['--shared'] : [])]);
    const lines: string[] = [];
    let err = '';
    let buf = '';
    p.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    p.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`RTSP server not ready in 20 s: ${err}`)), 20_000);
      const check = (): void => {
        if (lines.some((l) => l.startsWith('READY'))) {
          clearTimeout(t);
          resolve();
        }
      };
      p.stdout?.on('data', check);
      p.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`RTSP server exited with ${code}: ${err}`));
      });
    });
    return { url: `rtsp://${address}:${port}/test`, lines, plays: () => lines.filter((l) => l.startsWith('PLAY ')).length, stderr: () => err };
  }

  /**
   * ffmpeg in `ns` pulls `url` (`transport` as `-rtsp_transport`) and decodes `frames` video frames
   * to nothing; resolves with its exit code (0: it got them) and stderr. Killed after `timeoutMs`.
   */
  ffmpeg(ns: string | null, url: string, transport: 'udp' | 'tcp', frames = 30, timeoutMs = 30_000): Promise<{ code: number | null; stderr: string; frames: number }> {
    const p = this.spawn(ns, 'ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'info', '-rtsp_transport', transport, '-timeout', '10000000', '-i', url, '-frames:v', String(frames), '-f', 'null', '-']);
    let err = '';
    p.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    return new Promise((resolve) => {
      const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
      p.once('exit', (code) => {
        clearTimeout(t);
        // The last progress line: "frame=   30 fps=...".
        const m = [...err.matchAll(/frame=\s*(\d+)/g)].pop();
        resolve({ code, stderr: err, frames: m === undefined ? 0 : Number(m[1]) });
      });
    });
  }

  /** Kill the processes, delete the namespaces (their veth ends go with them) and the root ends. */
  async close(): Promise<void> {
    const exits = [...this.procs].map((p) => new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r()))));
    for (const p of this.procs) p.kill('SIGKILL');
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 3000))]);
    for (const dev of this.rootLinks) {
      try {
        ip('link', 'del', dev);
      } catch {
        // went with its peer's namespace
      }
    }
    for (const ns of this.namespaces) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
  }
}

/** The fixture server: its URL and what it printed (one line per request, PLAY, TEARDOWN...). */
export interface RtspServer {
  url: string;
  lines: string[];
  /** PLAY requests it served. */
  plays(): number;
  stderr(): string;
}
