/**
 * Admission control and the overload guard with a fake clock: caps, per-source buckets, the source
 * table's bound, the gauges shared between workers, and the guard's hysteresis.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Admission, AdmissionReason, SharedGauge, SOURCE_TABLE_MAX, admissionLimits } from '../../actors/admission.ts';
import { OverloadGuard } from '../../actors/overload.ts';
import { HeapReclaimer } from '../../runtime/worker/heap-reclaim.ts';

function make(opts: Parameters<typeof admissionLimits>[0], cap = 1000): { a: Admission; clock: { t: number }; listener: SharedGauge; process: SharedGauge } {
  const clock = { t: 0 };
  const listener = SharedGauge.local();
  const process = SharedGauge.local();
  const a = new Admission(admissionLimits(opts), listener, process, () => cap, () => clock.t);
  return { a, clock, listener, process };
}

test('limits: defaults are finite and the burst defaults to two seconds of the rate', () => {
  const l = admissionLimits({ track: 0 });
  assert.equal(l.maxSessions, Infinity, 'the process cap bounds a listener without its own');
  assert.equal(l.maxPerSource, 1024);
  assert.equal(l.ratePerSource, 1000);
  assert.equal(l.burstPerSource, 2000);
  assert.equal(admissionLimits({ track: 0, source_session_rate: 0.2 }).burstPerSource, 1);
});

test('the process cap, then the listener cap, are checked before any per-source state is made', () => {
  const { a, process, listener } = make({ track: 0, max_sessions: 2 }, 3);
  assert.equal(a.admit('10.0.0.1'), null);
  assert.equal(a.admit('10.0.0.2'), null);
  assert.equal(a.admit('10.0.0.3'), AdmissionReason.ListenerSessions);
  process.add(1); // another listener's session
  assert.equal(a.check('10.0.0.3'), AdmissionReason.ProcessSessions);
  assert.equal(listener.total(), 2);
  a.release('10.0.0.1');
  process.add(-1);
  assert.equal(a.check('10.0.0.3'), null);
  assert.equal(a.trackedSources, 2);
});

test('fd budget: the sessions of each listener are charged their own fds against the process budget (UDP through the listening socket 1, TCP 2); a session that would pass it is refused, a release gives its fds back', () => {
  const fds = new SharedGauge(new Int32Array(2), 0);
  const other = new SharedGauge(new Int32Array(fds.cells.buffer), 1); // the same cells, another worker's view
  const process = SharedGauge.local();
  const budget = 5;
  const udp = new Admission(admissionLimits({ track: 0 }), SharedGauge.local(), process, () => 1000, () => 0, 1, { gauge: fds, perSession: 1, budget: () => budget });
  const tcp = new Admission(admissionLimits({ track: 0 }), SharedGauge.local(), process, () => 1000, () => 0, 1, { gauge: other, perSession: 2, budget: () => budget });
  assert.equal(tcp.admit('10.0.0.1'), null);
  assert.equal(tcp.admit('10.0.0.2'), null);
  assert.equal(tcp.check('10.0.0.3'), AdmissionReason.ProcessSessions, '4 + 2 > 5');
  assert.equal(udp.admit('10.0.0.4'), null, '4 + 1 <= 5: a one-fd session still fits');
  assert.equal(udp.check('10.0.0.5'), AdmissionReason.ProcessSessions);
  assert.equal(fds.total(), 5);
  assert.equal(process.total(), 3);
  tcp.release('10.0.0.1');
  assert.equal(fds.total(), 3);
  assert.equal(udp.admit('10.0.0.5'), null);
  udp.adopt('10.0.0.6'); // a rebuilt session: counted, never refused
  assert.equal(fds.total(), 5);
  assert.equal(udp.describe().session_fds, 1);
  assert.equal(udp.describe().process_fd_budget, 5);
});

test('per source: concurrent sessions are capped, released ones come back', () => {
  const { a } = make({ track: 0, max_sessions_per_source: 2 });
  assert.equal(a.admit('10.0.0.1'), null);
  assert.equal(a.admit('10.0.0.1'), null);
  assert.equal(a.admit('10.0.0.1'), AdmissionReason.SourceSessions);
  assert.equal(a.admit('10.0.0.2'), null, 'another source is not affected');
  a.release('10.0.0.1');
  assert.equal(a.admit('10.0.0.1'), null);
});

test('per source: the new-session token bucket refills at the rate, up to the burst', () => {
  const { a, clock } = make({ track: 0, source_session_rate: 10, source_session_burst: 3 });
  for (let i = 0; i < 3; i++) assert.equal(a.admit('10.0.0.1'), null);
  assert.equal(a.admit('10.0.0.1'), AdmissionReason.SourceRate);
  clock.t += 100; // one token at 10/s
  assert.equal(a.admit('10.0.0.1'), null);
  assert.equal(a.admit('10.0.0.1'), AdmissionReason.SourceRate);
  clock.t += 10_000; // refilled, but never past the burst
  for (let i = 0; i < 3; i++) assert.equal(a.admit('10.0.0.1'), null);
  assert.equal(a.admit('10.0.0.1'), AdmissionReason.SourceRate);
});

test('a source without sessions and with a full bucket is forgotten: the table stays bounded', () => {
  const { a, clock } = make({ track: 0, source_session_rate: 1000 });
  for (let i = 0; i < 5000; i++) {
    const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    assert.equal(a.admit(src), null);
    a.release(src);
  }
  clock.t += 5000;
  assert.equal(a.admit('192.0.2.1'), null);
  assert.ok(a.trackedSources < 5000, `${a.trackedSources} sources still tracked`);
  assert.ok(SOURCE_TABLE_MAX >= 65_536);
});

test('session_rate: each worker takes its share (rate / workers) of new sessions per second, any source', () => {
  const clock = { t: 0 };
  const a = new Admission(admissionLimits({ track: 0, session_rate: 20 }), SharedGauge.local(), SharedGauge.local(), () => 1000, () => clock.t, 2);
  // 10 per second on this worker, a bucket one second deep.
  for (let i = 0; i < 10; i++) assert.equal(a.admit(`10.0.0.${i}`), null);
  assert.equal(a.check('10.0.1.1'), AdmissionReason.ListenerRate);
  assert.equal(a.check(undefined), AdmissionReason.ListenerRate, 'address-less peers too');
  clock.t += 100; // one token at 10/s
  assert.equal(a.admit('10.0.1.1'), null);
  assert.equal(a.admit('10.0.1.2'), AdmissionReason.ListenerRate);
  assert.equal(admissionLimits({ track: 0 }).sessionRate, 10_000, 'finite by default');
});

test('shared gauge: each worker writes its own cell; the total is their sum', () => {
  const sab = new SharedArrayBuffer(4 * 3);
  const w0 = new SharedGauge(new Int32Array(sab), 0);
  const w2 = new SharedGauge(new Int32Array(sab), 2);
  w0.add(5);
  w2.add(2);
  w2.add(-1);
  assert.equal(w0.total(), 6);
  assert.equal(w2.own(), 1);
});

test('overload guard: a sustained lag (3 late ticks in a row) admits one new session per tick until a timely tick', () => {
  const clock = { t: 0 };
  const g = new OverloadGuard(50, 10, () => clock.t);
  const late = (): void => {
    clock.t += 10 + 61;
    g.tick();
  };
  clock.t = 10;
  g.tick();
  assert.equal(g.admit(), true);
  late(); // a one-off stall (a GC, a pool starting): the peers that waited still get in
  assert.equal(g.admit(), true);
  assert.equal(g.admit(), true);
  clock.t += 10;
  g.tick(); // on time: the streak is over
  late();
  late();
  assert.equal(g.admit(), true, 'two late ticks are not yet overload');
  late(); // the third in a row
  assert.equal(g.active, true);
  assert.equal(g.admit(), true, 'one per tick while overloaded');
  assert.equal(g.admit(), false);
  clock.t += 10 + 30; // 30 ms late: between half and the threshold, still overloaded
  g.tick();
  assert.equal(g.admit(), true);
  assert.equal(g.admit(), false);
  clock.t += 10 + 10; // 10 ms late: below half
  g.tick();
  assert.equal(g.admit(), true);
  assert.equal(g.admit(), true);
  assert.equal(g.refused, 2);
  assert.equal(g.lateTicks, 4);
  g.setMaxLag(0);
  late();
  late();
  late();
  assert.equal(g.admit(), true, '0 turns the guard off');
  assert.equal(g.admit(), true);
});

test('overload guard: the probe runs while sessions are admitted and stops 200 ms after the last', async () => {
  const g = new OverloadGuard(50, 10);
  g.start();
  assert.equal(g.probing, false, 'no timer before the first admission');
  assert.equal(g.admit(), true);
  assert.equal(g.probing, true);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(g.admit(), true);
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(g.probing, true, 'an admission 100 ms in keeps it running');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(g.probing, false, 'stopped 200 ms after the last admission');
  assert.equal(g.lastLagMs, 0);
  g.admit();
  assert.equal(g.probing, true, 'the next admission starts it again');
  g.stop();
  assert.equal(g.probing, false);
  g.admit();
  assert.equal(g.probing, false, 'stopped: admissions do not start it');
});

test('heap reclaim: one collection once a burst of sessions has ended and the count holds still', () => {
  const MiB = 1024 * 1024;
  let total = 20 * MiB;
  let used = 10 * MiB;
  let sessions = 0;
  let busy = false;
  let collections = 0;
  const heap = {
    stats: () => ({ total, used }),
    collect: () => {
      collections++;
      total = 20 * MiB;
      used = 12 * MiB;
    },
  };
  const r = new HeapReclaimer(() => sessions, () => busy, 64 * MiB, 5000, heap);
  let t = 0;
  const step = (): boolean => r.check((t += 1000));
  // A burst: sessions and the heap grow; nothing is collected while sessions are there.
  for (sessions = 0; sessions <= 3000; sessions += 500) {
    total += 40 * MiB;
    used += 30 * MiB;
    assert.equal(step(), false);
  }
  sessions = 3000;
  assert.equal(step(), false, 'a full worker is left alone');
  sessions = 1000; // ending, not yet settled
  assert.equal(step(), false);
  busy = true;
  assert.equal(step(), false, 'not while the worker is overloaded');
  busy = false;
  assert.equal(step(), true, 'settled at a third of the peak: collect');
  assert.equal(collections, 1);
  assert.equal(r.reclaims, 1);
  sessions = 0;
  step();
  assert.equal(step(), false, 'the heap is back under the floor');
  assert.equal(collections, 1);
});
