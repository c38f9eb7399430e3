/**
 * Test helpers: real sockets on loopback, free ports, an in-process proxy runtime, echo servers
 * for every protocol, and waiting on conditions instead of sleeping. Every wait is bounded.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer, WebSocket } from 'ws';
import { normalize } from '../cluster-config/normalize.ts';
import { Runtime } from '../runtime/main/runtime.ts';
import { makeLogger } from '../common/log.ts';
import { offloadProvider } from '../native-offload/provider.ts';

/**
 * Ports tests pick for the proxy's listeners: below the kernel's ephemeral range (32768-60999),
 * where a port picked with bind(0) could be taken meanwhile by any outgoing socket.
 */
const PORT_LO = 10_000;
const PORT_HI = 32_000;

function randomPort(): number {
  return PORT_LO + Math.floor(Math.random() * (PORT_HI - PORT_LO));
}

/** Try to bind `port`; true if it was free. */
function tryBind(make: () => dgram.Socket | net.Server, port: number, address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = make();
    s.once('error', () => resolve(false));
    if (s instanceof net.Server) s.listen(port, address, () => s.close(() => resolve(true)));
    else s.bind(port, address, () => s.close(() => resolve(true)));
  });
}

/** A free UDP port on `address`, below 32000 (bound, then released). */
export async function freeUdpPort(address = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const p = randomPort();
    if (await tryBind(() => dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4'), p, address)) return p;
  }
  throw new Error('no free UDP port below 32000');
}

/** A free TCP port on `address`, below 32000. */
export async function freeTcpPort(address = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const p = randomPort();
    if (await tryBind(() => net.createServer(), p, address)) return p;
  }
  throw new Error('no free TCP port below 32000');
}

/** A port free for both UDP and TCP on 127.0.0.1. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const p = await freeUdpPort();
    const ok = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(p, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) return p;
  }
  throw new Error('no free port');
}

/** A short temp dir for Unix socket paths (sun_path is 107 bytes). */
export function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'l7-'));
}

/** Poll `cond` every 10 ms until it returns a truthy value, or throw after `timeoutMs`. */
export async function waitFor<T>(cond: () => T | Promise<T>, timeoutMs = 3000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Start an in-process proxy runtime from a config document. Call `stop()` when done. */
export async function startProxy(doc: unknown, workers = 1): Promise<Runtime> {
  const snapshot = normalize(doc);
  const rt = new Runtime({ snapshot, workers, logLevel: 'warn', log: makeLogger('warn', { thread: 'test' }) });
  await rt.start();
  return rt;
}

/** A UDP client socket with a queue of replies. */
export class UdpClient {
  readonly sock: dgram.Socket;
  private readonly queue: Buffer[] = [];
  private waiter: ((b: Buffer) => void) | null = null;

  private constructor(sock: dgram.Socket) {
    this.sock = sock;
    sock.on('message', (m: Buffer) => {
      if (this.waiter !== null) {
        const w = this.waiter;
        this.waiter = null;
        w(m);
      } else this.queue.push(m);
    });
  }

  static async open(address = '127.0.0.1'): Promise<UdpClient> {
    const s = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
    await new Promise<void>((r) => s.bind(0, address, () => r()));
    return new UdpClient(s);
  }

  get port(): number {
    return this.sock.address().port;
  }

  send(data: string | Buffer, port: number, address = '127.0.0.1'): void {
    this.sock.send(data, port, address);
  }

  /** The next datagram, or throw after `timeoutMs`. */
  recv(timeoutMs = 2000): Promise<Buffer> {
    const q = this.queue.shift();
    if (q !== undefined) return Promise.resolve(q);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`no UDP reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (b) => {
        clearTimeout(t);
        resolve(b);
      };
    });
  }

  /** Send and wait for one reply; resend (UDP may be dropped while the proxy sets up) up to `tries` times. */
  async request(data: string | Buffer, port: number, address = '127.0.0.1', timeoutMs = 1000, tries = 3): Promise<Buffer> {
    for (let i = 0; ; i++) {
      this.send(data, port, address);
      try {
        return await this.recv(timeoutMs);
      } catch (e) {
        if (i + 1 >= tries) throw e;
      }
    }
  }

  close(): void {
    this.sock.close();
  }
}

/** A UDP echo server that prefixes replies. Counts datagrams; remembers the peers it saw. */
export async function udpEcho(prefix = '', address = '127.0.0.1', port = 0): Promise<{ port: number; received: number; peers: Set<string>; close(): Promise<void> }> {
  const s = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
  const state = { port: 0, received: 0, peers: new Set<string>(), close: () => new Promise<void>((r) => s.close(() => r())) };
  s.on('message', (m: Buffer, r: dgram.RemoteInfo) => {
    state.received++;
    state.peers.add(`${r.address}:${r.port}`);
    s.send(Buffer.concat([Buffer.from(prefix), m]), r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(port, address, () => r()));
  state.port = s.address().port;
  return state;
}

/**
 * A stream echo server (TCP when `listen` has a port, Unix when it has a path) that prefixes each
 * chunk. `close()` destroys the connections still open (a proxy's upstream connections would
 * otherwise hold it until the proxy stops, which a test's later cleanup may only do after it).
 */
export async function streamEcho(listen: net.ListenOptions, prefix = ''): Promise<{ server: net.Server; port: number; connections: number; close(): Promise<void> }> {
  const open = new Set<net.Socket>();
  const state = {
    server: net.createServer(),
    port: 0,
    connections: 0,
    close: () =>
      new Promise<void>((r) => {
        state.server.close(() => r());
        for (const c of open) c.destroy();
      }),
  };
  state.server.on('connection', (c) => {
    open.add(c);
    c.on('close', () => open.delete(c));
    state.connections++;
    c.on('data', (d) => c.write(Buffer.concat([Buffer.from(prefix), d])));
    c.on('error', () => {});
  });
  await new Promise<void>((r) => state.server.listen(listen, () => r()));
  const a = state.server.address();
  state.port = typeof a === 'object' && a !== null ? a.port : 0;
  return state;
}

/** A WebSocket echo server that prefixes each message; records request paths and headers. */
export async function wsEcho(prefix = '', address = '127.0.0.1'): Promise<{ port: number; requests: Array<{ url: string; headers: Record<string, unknown> }>; close(): Promise<void> }> {
  const wss = new WebSocketServer({ port: 0, host: address });
  const state = {
    port: 0,
    requests: [] as Array<{ url: string; headers: Record<string, unknown> }>,
    close: () => {
      for (const c of wss.clients) c.terminate();
      return new Promise<void>((r) => wss.close(() => r()));
    },
  };
  wss.on('connection', (ws, req) => {
    state.requests.push({ url: req.url ?? '', headers: { ...req.headers } });
    ws.on('message', (d: Buffer, isBinary: boolean) => ws.send(Buffer.concat([Buffer.from(prefix), d]), { binary: isBinary }));
    ws.on('error', () => {});
  });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  state.port = (wss.address() as net.AddressInfo).port;
  return state;
}

/** Open a WebSocket client and wait for it to be open. */
export async function wsClient(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return ws;
}

/** The next message on a WebSocket, or throw after `timeoutMs`. */
export function wsRecv(ws: WebSocket, timeoutMs = 2000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no WebSocket message within ${timeoutMs} ms`)), timeoutMs);
    ws.once('message', (d: Buffer) => {
      clearTimeout(t);
      resolve(d);
    });
  });
}

/** Connect a stream client (TCP or Unix) and return it with a helper to read the next chunk. */
export async function streamClient(opts: net.NetConnectOpts): Promise<{ sock: net.Socket; recv(timeoutMs?: number): Promise<Buffer> }> {
  const sock = net.createConnection(opts);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  return {
    sock,
    recv: (timeoutMs = 2000) =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no stream data within ${timeoutMs} ms`)), timeoutMs);
        sock.once('data', (d: Buffer) => {
          clearTimeout(t);
          resolve(d);
        });
      }),
  };
}

/**
 * The kernel offload gate of a test: `skip` (the probe's reason) where offload is unavailable,
 * unless L7MP_OFFLOAD_REQUIRED=1 (.ci/run sets it): then `skip` is false and `check()` fails a
 * test whose probe failed.
 */
export function offloadGate(): { skip: string | false; check(): void } {
  const probe = offloadProvider('init').probe();
  const required = process.env.L7MP_OFFLOAD_REQUIRED === '1';
  return {
    skip: !probe.available && !required ? `kernel offload unavailable: ${probe.reason}` : false,
    check: () => assert.ok(probe.available, `L7MP_OFFLOAD_REQUIRED=1 but the offload probe failed: ${probe.reason}`),
  };
}
