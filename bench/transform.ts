/**
 * Transform throughput: messages/s through a trivial (identity) transform, three ways.
 *
 *   node --no-liftoff bench/transform.ts [--seconds 2] [--window 256] [--threads 2] [--size 64]
 *
 * (`--no-liftoff`: it starts worker threads on the TypeScript sources; README, under "Needs Linux".)
 *
 * - `pool (in-thread)`: one thread drives a piscina pool directly, `window` tasks in flight. This is
 *   the design l7mp-ts uses: a pool per worker thread, driven by the worker itself.
 * - `pool via relay`: a worker thread sends each task over a MessagePort to the main thread, which
 *   runs it on its pool and posts the result back: the alternative design, one process-wide pool in
 *   the main thread shared by all workers.
 * - `proxy`: end to end through an l7mp-ts runtime (1 worker): a WebSocket client pipelines
 *   `window` messages to a WebSocket listener whose route's destination is a Transform cluster
 *   (identity); and, as the baseline, the same with an Echo cluster instead.
 * Each run is bounded by time (`--seconds`) and by count (2 million messages). Prints a table.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MessageChannel, Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { WebSocket } from 'ws';
import { normalize } from '../cluster-config/normalize.ts';
import { Runtime } from '../runtime/main/runtime.ts';
import { makeLogger } from '../common/log.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RUNNER = path.join(HERE, '..', 'protocols', 'transform', 'runner.ts');
const MODULE = path.join(HERE, 'identity-transform.ts');
const MAX_MESSAGES = 2_000_000;

const { values: o } = parseArgs({
  options: { seconds: { type: 'string', default: '2' }, window: { type: 'string', default: '256' }, threads: { type: 'string', default: '2' }, size: { type: 'string', default: '64' } },
});
const SECONDS = Number(o.seconds);
const WINDOW = Number(o.window);
const THREADS = Number(o.threads);
const SIZE = Number(o.size);

interface Result {
  name: string;
  messages: number;
  seconds: number;
}

/** Keep `window` calls of `one` in flight until time or count runs out; resolve with how many completed. */
async function pipeline(one: () => Promise<unknown>): Promise<Result & { name: '' }> {
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  let done = 0;
  let started = 0;
  await new Promise<void>((resolve, reject) => {
    const next = (): void => {
      if (performance.now() >= end || started >= MAX_MESSAGES) {
        if (done === started) resolve();
        return;
      }
      started++;
      one().then(() => {
        done++;
        next();
      }, reject);
    };
    for (let i = 0; i < WINDOW; i++) next();
  });
  return { name: '', messages: done, seconds: (performance.now() - t0) / 1000 };
}

function newPool(): Piscina {
  return new Piscina({ filename: RUNNER, minThreads: THREADS, maxThreads: THREADS, idleTimeout: 30_000 });
}

function task(): { module: string; export: string; payload: Uint8Array; metadata: Record<string, unknown> } {
  return { module: MODULE, export: 'identity', payload: new Uint8Array(SIZE), metadata: { IP: { src_addr: '127.0.0.1' }, UDP: { src_port: 5000 } } };
}

async function inThread(): Promise<Result> {
  const pool = newPool();
  await pool.run(task()); // load the module in a thread first
  const r = await pipeline(() => {
    const t = task();
    return pool.run(t, { transferList: [t.payload.buffer as ArrayBuffer] });
  });
  await pool.destroy();
  return { ...r, name: `pool in-thread (${THREADS} threads)` };
}

async function viaRelay(): Promise<Result> {
  const pool = newPool();
  await pool.run(task());
  const { port1, port2 } = new MessageChannel();
  port1.on('message', (m: { id: number; t: ReturnType<typeof task> }) => {
    void pool.run(m.t, { transferList: [m.t.payload.buffer as ArrayBuffer] }).then((out: Uint8Array) => port1.postMessage({ id: m.id, out }, [out.buffer as ArrayBuffer]));
  });
  // The "proxy worker": sends tasks to the main thread and counts results, `window` in flight.
  const src = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { port, seconds, window, size, max, module } = workerData;
    const waiting = new Map();
    let id = 0, done = 0, started = 0;
    const t0 = performance.now(), end = t0 + seconds * 1000;
    port.on('message', (m) => { done++; waiting.delete(m.id); next(); });
    function next() {
      if (performance.now() >= end || started >= max) { if (done === started) { parentPort.postMessage({ messages: done, seconds: (performance.now() - t0) / 1000 }); port.close(); } return; }
      started++;
      const payload = new Uint8Array(size);
      const t = { module, export: 'identity', payload, metadata: { IP: { src_addr: '127.0.0.1' }, UDP: { src_port: 5000 } } };
      port.postMessage({ id: ++id, t }, [payload.buffer]);
    }
    for (let i = 0; i < window; i++) next();
  `;
  const w = new Worker(src, { eval: true, workerData: { port: port2, seconds: SECONDS, window: WINDOW, size: SIZE, max: MAX_MESSAGES, module: MODULE }, transferList: [port2] });
  const r = await new Promise<{ messages: number; seconds: number }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  await w.terminate();
  port1.close();
  await pool.destroy();
  return { ...r, name: `pool via main-thread relay (${THREADS} threads)` };
}

async function throughProxy(destination: unknown, name: string): Promise<Result> {
  const srv = await import('node:net').then((net) => {
    const s = net.createServer();
    return new Promise<number>((r) => s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => r(p));
    }));
  });
  const doc = { listeners: [{ name: 'ws', spec: { protocol: 'WebSocket', port: srv }, rules: [{ action: { route: { destination } } }] }] };
  process.env.L7MP_TRANSFORM_THREADS = String(THREADS);
  const rt = new Runtime({ snapshot: normalize(doc), workers: 1, logLevel: 'warn', log: makeLogger('warn', { thread: 'bench' }) });
  await rt.start();
  const ws = new WebSocket(`ws://127.0.0.1:${srv}/`);
  await new Promise<void>((r, j) => {
    ws.once('open', () => r());
    ws.once('error', j);
  });
  const waiters: Array<() => void> = [];
  ws.on('message', () => waiters.shift()?.());
  const payload = Buffer.alloc(SIZE, 0x61);
  const one = (): Promise<void> =>
    new Promise<void>((r) => {
      waiters.push(r);
      ws.send(payload);
    });
  for (let i = 0; i < 100; i++) await one(); // warm up (pool threads, module load)
  const r = await pipeline(one);
  ws.close();
  await rt.shutdown();
  return { ...r, name };
}

const results: Result[] = [];
results.push(await inThread());
results.push(await viaRelay());
results.push(await throughProxy({ spec: { protocol: 'Transform', module: MODULE, export: 'identity' } }, `proxy: WebSocket → Transform identity (1 worker, ${THREADS} pool threads)`));
results.push(await throughProxy({ spec: { protocol: 'Echo' } }, 'proxy: WebSocket → Echo (baseline, 1 worker)'));

process.stdout.write(`\nTransform throughput: ${SIZE}-byte messages, window ${WINDOW}, ${SECONDS} s per run, ${os.availableParallelism()} CPUs, node ${process.version}\n\n`);
process.stdout.write('| path | messages | msg/s | µs/msg |\n|---|---|---|---|\n');
for (const r of results) {
  const rate = r.messages / r.seconds;
  process.stdout.write(`| ${r.name} | ${r.messages} | ${Math.round(rate).toLocaleString('en')} | ${(1e6 / rate).toFixed(2)} |\n`);
}
process.exit(0);
