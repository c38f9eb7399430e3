import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Actor, Dispatcher, type ActorCell, type StopReason } from '../../actors/actor.ts';
import { makeLogger } from '../../common/log.ts';
import { FixedQueue } from '../../common/fixed-queue.ts';
import { CoarseTimers, FakeClock, MAX_EVERY } from '../../common/clock.ts';
import type { L7Error } from '../../common/errors.ts';
import { waitFor } from '../helpers.ts';
import { eventList } from '../../actors/describe.ts';

const log = makeLogger('silent');

/** Records what it receives; throws on 'boom'. */
class Recorder extends Actor<string> {
  readonly kind = 'test' as const;
  static log: string[] = [];
  static starts = 0;
  static stops: Array<string | null> = [];
  readonly tag: string;
  constructor(tag: string) {
    super();
    this.tag = tag;
  }
  override preStart(): void {
    Recorder.starts++;
  }
  receive(m: string): void {
    if (m === 'boom') throw new Error('boom');
    Recorder.log.push(`${this.tag}:${m}`);
  }
  override postStop(reason: StopReason): void {
    Recorder.stops.push(reason === null ? null : reason.code);
  }
}

function reset(): void {
  Recorder.log = [];
  Recorder.starts = 0;
  Recorder.stops = [];
}

/** A parent that spawns one child with the given policy and records child stops. */
class Parent extends Actor<string> {
  readonly kind = 'test' as const;
  child!: ActorCell<string>;
  stopped: string[] = [];
  private readonly policy: 'permanent' | 'temporary';
  constructor(policy: 'permanent' | 'temporary') {
    super();
    this.policy = policy;
  }
  override preStart(): void {
    this.child = this.ctx.spawn('child', { factory: () => new Recorder('c'), restart: this.policy, maxRestarts: 2, periodMs: 60_000 });
  }
  receive(): void {}
  override onChildStopped(c: ActorCell<unknown>): void {
    this.stopped.push(c.name);
  }
}

test('FixedQueue keeps FIFO order across ring boundaries', () => {
  const q = new FixedQueue<number>();
  for (let i = 0; i < 5000; i++) q.push(i);
  assert.equal(q.length, 5000);
  for (let i = 0; i < 5000; i++) assert.equal(q.shift(), i);
  assert.equal(q.shift(), undefined);
  assert.equal(q.length, 0);
});

test('FixedQueue: interleaved pushes and shifts across growing rings keep FIFO order', () => {
  const q = new FixedQueue<number>();
  let next = 0;
  let want = 0;
  for (const [push, shift] of [[10, 5], [40, 30], [300, 10], [5000, 5000], [3, 308]]) {
    for (let i = 0; i < push!; i++) q.push(next++);
    for (let i = 0; i < shift!; i++) assert.equal(q.shift(), want++);
  }
  assert.equal(q.length, 0);
  assert.equal(q.shift(), undefined);
  q.push(7);
  q.clear();
  assert.equal(q.shift(), undefined);
});

test('mailbox: messages are handled one at a time, in order', () => {
  reset();
  const d = new Dispatcher('t', log);
  const cell = d.spawnRoot('r', { factory: () => new Recorder('a') }, () => {});
  for (let i = 0; i < 100; i++) cell.tell(String(i));
  d.drain();
  assert.deepEqual(Recorder.log, Array.from({ length: 100 }, (_, i) => `a:${i}`));
  assert.equal(cell.processed, 100);
});

test('dispatcher: an actor runs at most `throughput` messages per turn, so others interleave', () => {
  reset();
  const d = new Dispatcher('t', log, { throughput: 2, budget: 1000 });
  const a = d.spawnRoot('a', { factory: () => new Recorder('a') }, () => {});
  const b = d.spawnRoot('b', { factory: () => new Recorder('b') }, () => {});
  for (let i = 0; i < 4; i++) a.tell(String(i));
  for (let i = 0; i < 4; i++) b.tell(String(i));
  d.drain();
  assert.deepEqual(Recorder.log, ['a:0', 'a:1', 'b:0', 'b:1', 'a:2', 'a:3', 'b:2', 'b:3']);
});

test('dispatcher: yields to the event loop after its budget', async () => {
  reset();
  const d = new Dispatcher('t', log, { throughput: 10, budget: 10 });
  const a = d.spawnRoot('a', { factory: () => new Recorder('a') }, () => {});
  for (let i = 0; i < 35; i++) a.tell(String(i));
  // One turn runs on the next setImmediate; an I/O-phase callback must get in between turns.
  let interleaved = -1;
  setImmediate(() => {
    interleaved = Recorder.log.length;
  });
  // Bounded wait for the outcome (a loaded machine may take longer than one timer tick).
  await waitFor(() => Recorder.log.length === 35, 5000, 'all 35 messages');
  assert.ok(interleaved > 0 && interleaved < 35, `a callback ran between turns (after ${interleaved} messages)`);
});

test('supervision: a permanent child that throws is restarted with a fresh instance and keeps its mailbox', () => {
  reset();
  const d = new Dispatcher('t', log);
  const root = d.spawnRoot('p', { factory: () => new Parent('permanent') }, () => {});
  const parent = root.actor as Parent;
  const child = parent.child;
  child.tell('1');
  child.tell('boom');
  child.tell('2');
  d.drain();
  assert.deepEqual(Recorder.log, ['c:1', 'c:2']);
  assert.equal(child.restarts, 1);
  assert.equal(Recorder.starts, 2);
  assert.equal(child.state, 'running');
});

test('supervision: restart intensity exceeded escalates to the parent, which fails to its root handler', () => {
  reset();
  const d = new Dispatcher('t', log);
  let rootFailure: L7Error | null = null;
  const root = d.spawnRoot('p', { factory: () => new Parent('permanent') }, (e) => {
    rootFailure = e;
  });
  const child = (root.actor as Parent).child;
  for (let i = 0; i < 3; i++) {
    child.tell('boom');
    d.drain();
  }
  assert.equal(child.state, 'stopped');
  assert.equal(root.state, 'stopped');
  assert.equal((rootFailure as L7Error | null)?.code, 'L7_ERR_ACTOR_RESTART_LIMIT');
});

test('supervision: a temporary child that throws is stopped, not restarted; the parent is told', () => {
  reset();
  const d = new Dispatcher('t', log);
  const root = d.spawnRoot('p', { factory: () => new Parent('temporary') }, () => {});
  const parent = root.actor as Parent;
  parent.child.tell('boom');
  parent.child.tell('after');
  d.drain();
  assert.equal(parent.child.state, 'stopped');
  assert.equal(parent.child.restarts, 0);
  assert.deepEqual(Recorder.log, []);
  assert.deepEqual(parent.stopped, ['child']);
  assert.deepEqual(Recorder.stops, ['L7_ERR_ACTOR_FAILED']);
  assert.equal(root.children.size, 0);
});

test('a failure in preStart stops the actor and is never retried', () => {
  reset();
  class BadStart extends Actor<string> {
    readonly kind = 'test' as const;
    override preStart(): void {
      Recorder.starts++;
      throw new Error('cannot start');
    }
    receive(): void {}
  }
  class P extends Actor<string> {
    readonly kind = 'test' as const;
    child!: ActorCell<string>;
    override preStart(): void {
      this.child = this.ctx.spawn('bad', { factory: () => new BadStart(), restart: 'permanent' });
    }
    receive(): void {}
  }
  const d = new Dispatcher('t', log);
  const root = d.spawnRoot('p', { factory: () => new P() }, () => {});
  d.drain();
  assert.equal((root.actor as P).child.state, 'stopped');
  assert.equal(Recorder.starts, 1);
  assert.equal(root.state, 'running');
});

test('stop is idempotent, stops children first, and drops later messages', () => {
  reset();
  const d = new Dispatcher('t', log);
  const root = d.spawnRoot('p', { factory: () => new Parent('permanent') }, () => {});
  const child = (root.actor as Parent).child;
  root.stop();
  root.stop();
  d.drain();
  child.tell('late');
  d.drain();
  assert.equal(root.state, 'stopped');
  assert.equal(child.state, 'stopped');
  assert.deepEqual(Recorder.log, []);
  assert.deepEqual(Recorder.stops, [null]);
});

test('system messages (stop) are handled before queued user messages', () => {
  reset();
  const d = new Dispatcher('t', log);
  const cell = d.spawnRoot('r', { factory: () => new Recorder('a') }, () => {});
  cell.tell('1');
  cell.tell('2');
  cell.stop();
  d.drain();
  assert.deepEqual(Recorder.log, []);
  assert.equal(cell.state, 'stopped');
});

test('pipeToSelf delivers async results as messages', async () => {
  reset();
  class Async extends Actor<string> {
    readonly kind = 'test' as const;
    override preStart(): void {
      this.ctx.pipeToSelf(Promise.resolve(42), (v) => `ok:${v}`, () => 'err');
      this.ctx.pipeToSelf(Promise.reject(new Error('x')), () => 'ok', (e) => `err:${(e as Error).message}`);
    }
    receive(m: string): void {
      Recorder.log.push(m);
    }
  }
  const d = new Dispatcher('t', log);
  d.spawnRoot('a', { factory: () => new Async() }, () => {});
  await waitFor(() => Recorder.log.length >= 2, 5000, 'both results');
  assert.deepEqual(Recorder.log.sort(), ['err:x', 'ok:42']);
});

test('coarse timers: a member is called within one period of its add, then once per period; above 1000 members a fifth of them per tick; only while there are members', () => {
  const clock = new FakeClock();
  const timers = new CoarseTimers(clock, 250);
  const few: number[] = [];
  const one = { onTick: (now: number): void => void few.push(now) };
  timers.add(one);
  clock.advance(1000);
  assert.equal(few.length, 4, 'few members: one tick per period');
  timers.delete(one);
  clock.advance(1000);
  assert.equal(few.length, 4, 'no member, no tick');
  assert.equal(timers.size, 0);
  const n = 2000;
  const seen = new Array<number[]>(n);
  const members = Array.from({ length: n }, (_, i) => ({ onTick: (now: number): void => void (seen[i] ??= []).push(now) }));
  for (const m of members) timers.add(m);
  const start = clock.now();
  clock.advance(250);
  assert.ok(seen.every((v) => v.length === 1), 'each member once in the first period');
  // Sliced: a tick every 50 ms, each visiting 400 of them.
  const perTick = new Map<number, number>();
  for (const v of seen) perTick.set((v[0] as number) - start, (perTick.get((v[0] as number) - start) ?? 0) + 1);
  assert.deepEqual([...perTick].sort((a, b) => a[0] - b[0]), [[50, 400], [100, 400], [150, 400], [200, 400], [250, 400]]);
  clock.advance(750);
  assert.ok(seen.every((v) => v.length === 4), 'each member once per period');
  for (const m of members) timers.delete(m);
  clock.advance(1000);
  assert.ok(seen.every((v) => v.length === 4), 'no member, no tick');
});

test('coarse timers: a member is called again after the periods its tick returns (at most MAX_EVERY); add brings a far one within a period', () => {
  const clock = new FakeClock();
  const timers = new CoarseTimers(clock, 250);
  const t0 = clock.now();
  const calls: number[] = [];
  let every = 8;
  const m = { onTick: (now: number): number => (calls.push(now), every) };
  timers.add(m);
  clock.advance(250);
  assert.deepEqual(calls, [t0 + 250]);
  clock.advance(8 * 250);
  assert.deepEqual(calls, [t0 + 250, t0 + 2250], 'the next call 8 periods later, none between');
  timers.add(m);
  clock.advance(250);
  assert.deepEqual(calls.slice(2), [t0 + 2500], 'add: due within one period again');
  every = 1000;
  clock.advance(2000);
  assert.deepEqual(calls.slice(3), [t0 + 4500]);
  clock.advance(MAX_EVERY * 250 - 1);
  assert.equal(calls.length, 4, 'capped at MAX_EVERY periods, not 1000');
  clock.advance(1);
  assert.deepEqual(calls.slice(4), [t0 + 4500 + MAX_EVERY * 250]);
  timers.delete(m);
  assert.equal(timers.size, 0);
});

test("a session's events: INIT and LOOKUP SUCCESS first, the first CONNECT where it happened among the logged ones", () => {
  const t0 = Date.UTC(2026, 11, 7, 6, 0, 0);
  const names = (e: Array<{ event: string }>): string => e.map((x) => x.event).join(',');
  // Connected and idle: nothing logged at all.
  const idle = eventList(null, t0, 's', 'rulelist:r/rule:a', 3, 0);
  assert.equal(names(idle), 'INIT,LOOKUP SUCCESS,CONNECT');
  assert.deepEqual(idle[0], { event: 'INIT', timestamp: '2026-12-07T06:00:00.000Z', message: 'Session s initialized' });
  assert.deepEqual(idle[1], { event: 'LOOKUP SUCCESS', timestamp: '2026-12-07T06:00:00.000Z', message: 'rulelist:r/rule:a' });
  assert.deepEqual(idle[2], { event: 'CONNECT', timestamp: '2026-12-07T06:00:00.003Z', message: 'Session successfully connected' });
  // Ended after connecting: the connect stays before the later events.
  assert.equal(names(eventList(['DISCONNECT', 9, 'x', 'END', 9, 'Normal end', 'DESTROY', 10, null], t0, 's', 'v', 3, 0)), 'INIT,LOOKUP SUCCESS,CONNECT,DISCONNECT,END,DESTROY');
  // Rebuilt (no lookup): REBUILD was logged before it connected.
  assert.equal(names(eventList(['REBUILD', 0, 'r', 'CONNECT', 50, 'Stage up reconnected'], t0, 's', null, 2, 1)), 'INIT,REBUILD,CONNECT,CONNECT');
  // Failed during setup: never connected.
  const failed = eventList(['ERROR', 1, 'no route', 'END', 1, 'no route', 'DESTROY', 1, null], t0, 's', null, -1, 0);
  assert.equal(names(failed), 'INIT,ERROR,END,DESTROY');
  assert.equal(failed[3]?.message, '', 'an event logged without a message has an empty one');
});
