/**
 * Helpers shared by the protocol integration tests (test/integration/proto-*.test.ts): a proxy and
 * servers that are cleaned up when the test ends (pass or fail), actor-tree and counter queries,
 * a byte-stream reader that waits for an exact text, and a "black hole" TCP server that accepts
 * connections and never answers (a WebSocket upgrade that never completes). Every wait is bounded.
 */
import net from 'node:net';
import type { TestContext } from 'node:test';
import { Runtime } from '../../runtime/main/runtime.ts';
import { normalize } from '../../cluster-config/normalize.ts';
import { makeLogger } from '../../common/log.ts';
import type { ActorNode } from '../../actors/tree.ts';
import { startProxy, streamEcho, UdpClient, waitFor } from '../helpers.ts';

const stacks = new WeakMap<TestContext, Array<() => unknown>>();

/**
 * Register `close` to run after the test (pass or fail) and return `x`. Cleanups run in reverse
 * order of registration (clients, then the proxy, then upstream servers), each bounded to 3 s.
 */
export function closing<T>(t: TestContext, x: T, close: (x: T) => unknown): T {
  let stack = stacks.get(t);
  if (stack === undefined) {
    const s: Array<() => unknown> = [];
    stack = s;
    stacks.set(t, s);
    t.after(async () => {
      for (const fn of s.reverse()) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.resolve()
            .then(fn)
            .catch(() => {}),
          new Promise<void>((r) => {
            timer = setTimeout(r, 3000);
          }),
        ]);
        clearTimeout(timer);
      }
    });
  }
  stack.push(() => close(x));
  return x;
}

/** Start a proxy that is shut down after the test, whatever its outcome. */
export async function proxy(t: TestContext, doc: unknown, workers = 1): Promise<Runtime> {
  return closing(t, await startProxy(doc, workers), (rt) => rt.shutdown());
}

/**
 * Start a proxy that is expected to fail; resolves with the error. Like `startProxy`, but bounded:
 * if start neither resolves nor rejects within `timeoutMs`, the runtime is shut down and this
 * throws, so a hang cannot keep the test file's process alive.
 */
export async function startFailure(doc: unknown, workers = 1, timeoutMs = 20_000): Promise<Error & { code?: string }> {
  const rt = new Runtime({ snapshot: normalize(doc), workers, logLevel: 'silent', log: makeLogger('silent', { thread: 'test' }) });
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    rt.start().then(
      () => ({ started: true as const }),
      (e: unknown) => ({ error: e as Error & { code?: string } }),
    ),
    new Promise<{ hung: true }>((r) => {
      timer = setTimeout(() => r({ hung: true }), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if ('error' in outcome) return outcome.error;
  await rt.shutdown();
  throw new Error('started' in outcome ? 'the proxy started, but it should have failed' : `start neither resolved nor rejected within ${timeoutMs} ms`);
}

/** A stream echo server (TCP or Unix) closed after the test, its open connections destroyed first. */
export async function streamServer(t: TestContext, listen: net.ListenOptions, prefix = ''): Promise<Awaited<ReturnType<typeof streamEcho>>> {
  const e = await streamEcho(listen, prefix);
  const socks = new Set<net.Socket>();
  e.server.on('connection', (s: net.Socket) => {
    socks.add(s);
    s.once('close', () => socks.delete(s));
  });
  return closing(t, e, (x) => {
    for (const s of socks) s.destroy();
    return x.close();
  });
}

/** A UDP client closed after the test. */
export async function udpClient(t: TestContext, address = '127.0.0.1'): Promise<UdpClient> {
  return closing(t, await UdpClient.open(address), (c) => c.close());
}

/**
 * The runtime answers tree and stats queries without a worker that does not reply within 1 s (a
 * busy machine): ask again until every live worker is in the answer.
 */
async function fromEveryWorker<T extends { length: number }>(rt: Runtime, query: () => Promise<T>): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < 5; i++) {
    last = await query();
    if (last.length >= rt.liveSlots().length) return last;
  }
  throw new Error(`only ${last?.length} of ${rt.liveSlots().length} workers answered`);
}

/** The worker nodes of the actor tree (every live worker). */
export function workerNodes(rt: Runtime): Promise<ActorNode[]> {
  return fromEveryWorker(rt, async () => (await rt.tree()).children);
}

/** Sessions in the actor tree, with the listener node each hangs under. */
export async function sessions(rt: Runtime): Promise<Array<ActorNode & { listenerNode: string; workerNode: string }>> {
  const workers = await workerNodes(rt);
  const out: Array<ActorNode & { listenerNode: string; workerNode: string }> = [];
  for (const w of workers) {
    for (const l of w.children) {
      for (const s of l.children) out.push({ ...s, listenerNode: `${l.kind}:${l.name}`, workerNode: `${w.kind}:${w.name}` });
    }
  }
  return out;
}

/** Sum of the per-worker session counters. */
export async function totals(rt: Runtime): Promise<{ active: number; ended: number }> {
  const st = await fromEveryWorker(rt, () => rt.stats());
  return { active: st.reduce((a, s) => a + s.sessionsActive, 0), ended: st.reduce((a, s) => a + s.sessionsEnded, 0) };
}

/** A listener's counter summed over workers: `sessions`, or a named one like `filtered`. */
export async function listenerCounter(rt: Runtime, listener: string, counter: string): Promise<number> {
  const st = await fromEveryWorker(rt, () => rt.stats());
  let n = 0;
  for (const w of st) {
    const l = w.listeners[listener];
    if (l === undefined) continue;
    n += counter === 'sessions' ? l.sessions : (l.counters[counter] ?? 0);
  }
  return n;
}

/** Wait until the session counters reach at least `want` (each field given). */
export async function waitTotals(rt: Runtime, want: { active?: number; ended?: number }, timeoutMs = 3000): Promise<{ active: number; ended: number }> {
  let last = { active: -1, ended: -1 };
  try {
    return await waitFor(async () => {
      last = await totals(rt);
      return (want.active === undefined || last.active === want.active) && (want.ended === undefined || last.ended === want.ended) ? last : undefined;
    }, timeoutMs) as { active: number; ended: number };
  } catch {
    throw new Error(`session counters ${JSON.stringify(last)} never reached ${JSON.stringify(want)}`);
  }
}

/** A byte-stream client (TCP or Unix) that accumulates what it reads. */
export class StreamPeer {
  readonly sock: net.Socket;
  received = '';
  closed = false;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (d: Buffer) => {
      this.received += d.toString();
    });
    sock.on('close', () => {
      this.closed = true;
    });
    sock.on('error', () => {});
  }

  static async open(t: TestContext, opts: net.NetConnectOpts): Promise<StreamPeer> {
    const sock = net.createConnection(opts);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', () => resolve());
      sock.once('error', reject);
    });
    return closing(t, new StreamPeer(sock), (p) => p.sock.destroy());
  }

  /** Wait until exactly `text` has been read in all (a stream may split or join chunks). */
  async expect(text: string, timeoutMs = 3000): Promise<void> {
    try {
      await waitFor(() => this.received.length >= text.length, timeoutMs);
    } catch {
      throw new Error(`stream read ${JSON.stringify(this.received)}, expected ${JSON.stringify(text)}`);
    }
    if (this.received !== text) throw new Error(`stream read ${JSON.stringify(this.received)}, expected ${JSON.stringify(text)}`);
  }
}

/** A TCP server that accepts and reads, but never writes: an upgrade that never completes. */
export async function blackHole(t: TestContext, host = '127.0.0.1'): Promise<{ port: number; accepted: number; closed: number }> {
  const state = { port: 0, accepted: 0, closed: 0 };
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    state.accepted++;
    socks.add(s);
    s.on('error', () => {});
    s.on('close', () => {
      state.closed++;
      socks.delete(s);
    });
    s.resume();
  });
  await new Promise<void>((r) => srv.listen(0, host, () => r()));
  state.port = (srv.address() as net.AddressInfo).port;
  closing(t, srv, (x) => {
    for (const s of socks) s.destroy();
    return new Promise<void>((r) => x.close(() => r()));
  });
  return state;
}

/**
 * Prove that nothing (more) arrives on `c` from the proxy at `port`: a sentinel sent afterwards
 * comes back first. Needs a route that answers (echo); no fixed sleep.
 */
export async function nothingBefore(c: UdpClient, port: number, sentinel: string, address = '127.0.0.1', expect = sentinel): Promise<void> {
  const r = await c.request(sentinel, port, address);
  if (r.toString() !== expect) throw new Error(`got ${JSON.stringify(r.toString())} before the sentinel ${JSON.stringify(expect)}`);
}
