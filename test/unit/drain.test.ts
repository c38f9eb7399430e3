/** The drain state machine (runtime/main/drain.ts) on a fake clock, and the drain request body. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Drain, parseDrain, type DrainOutcome } from '../../runtime/main/drain.ts';
import { makeLogger } from '../../common/log.ts';
import { hasCode } from '../../common/errors.ts';

function setup(sessions: number) {
  const s = { sessions, now: 1_000_000, told: 0, cut: 0, done: [] as DrainOutcome[] };
  const d = new Drain(
    {
      sessions: () => s.sessions,
      drainWorkers: async () => {
        s.told++;
      },
      cutSessions: async () => {
        s.cut += s.sessions;
        return s.sessions;
      },
    },
    { log: makeLogger('silent'), onDone: (o) => s.done.push(o), now: () => s.now, tickMs: 0 },
  );
  return { s, d };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

test('drain: serving → draining → drained when the last session ends; onDone once, with exit', async () => {
  const { s, d } = setup(3);
  assert.equal(d.status().state, 'serving');
  const st = d.start({ timeoutS: 30, source: 'SIGTERM', exit: true });
  assert.equal(st.state, 'draining');
  assert.equal(st.sessions_left, 3);
  assert.equal(Date.parse(st.deadline as string) - Date.parse(st.started as string), 30_000);
  await turn();
  assert.equal(s.told, 1);
  s.now += 5000;
  s.sessions = 1;
  d.tick();
  assert.equal(d.current, 'draining');
  s.sessions = 0;
  d.tick();
  await turn();
  assert.equal(d.current, 'drained');
  assert.deepEqual(s.done, [{ cut: 0, exit: true, source: 'SIGTERM', ms: 5000 }]);
  assert.equal(s.cut, 0);
  assert.equal(d.status().cut, 0);
});

test('drain: the deadline cuts the sessions left; a second request keeps the deadline and may add exit', async () => {
  const { s, d } = setup(2);
  d.start({ timeoutS: 10, source: 'api', exit: false });
  await turn();
  s.now += 4000;
  const again = d.start({ timeoutS: 1, source: 'SIGTERM', exit: true });
  assert.equal(again.timeout_s, 10, 'the first deadline stays');
  assert.equal(again.exit, true);
  s.now += 5999;
  d.tick();
  assert.equal(d.current, 'draining');
  s.now += 1;
  d.tick();
  await turn();
  assert.equal(d.current, 'drained');
  assert.equal(s.cut, 2);
  assert.deepEqual(s.done, [{ cut: 2, exit: true, source: 'api', ms: 10_000 }]);
  // Drained: a request with exit is answered at once.
  d.start({ timeoutS: 5, source: 'SIGTERM', exit: true });
  await turn();
  assert.equal(s.done.length, 2);
  assert.equal(s.done[1]?.exit, true);
});

test('drain: a timeout of 0 ends at once; zero sessions are not "drained" before the workers were told', async () => {
  const a = setup(4);
  a.d.start({ timeoutS: 0, source: 'SIGTERM', exit: true });
  await turn();
  assert.equal(a.d.current, 'drained');
  assert.equal(a.s.done[0]?.cut, 4);

  const b = setup(0);
  b.d.start({ timeoutS: 30, source: 'api', exit: false });
  assert.equal(b.d.current, 'draining', 'not before the workers stopped taking sessions');
  await turn();
  await turn();
  assert.equal(b.d.current, 'drained');
});

test('parseDrain: true or {timeout_s, exit}; false, bad fields and out-of-range timeouts are 400s', () => {
  assert.deepEqual(parseDrain(true), {});
  assert.deepEqual(parseDrain({ timeout_s: 2.5, exit: true }), { timeout_s: 2.5, exit: true });
  for (const bad of [false, null, 3, [], { timeout_s: -1 }, { timeout_s: 3601 }, { timeout_s: '5' }, { exit: 'yes' }, { later: 1 }]) {
    assert.throws(
      () => parseDrain(bad),
      (e: unknown) => hasCode(e, 'L7_ERR_INVALID_ARGUMENT') && (e as { status: number }).status === 400 && /^Cannot drain: /.test((e as Error).message),
      JSON.stringify(bad),
    );
  }
});
