/**
 * protocols/core: the base connection (pre-setup hold, drop after close, one idempotent close),
 * the abort-aware connect helper, and the counters protocols declare through defineProtocol.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { ConnectionHandler, StreamKind } from '../../protocols/types.ts';
import { BaseConnection } from '../../protocols/core/connection.ts';
import { HOLD_MAX } from '../../protocols/core/hold.ts';
import { connectAttempt } from '../../protocols/core/connect.ts';
import { defineProtocol, dropReasons as declaredDrops } from '../../protocols/core/define.ts';
import { dropReasons } from '../../protocols/registry.ts';

/** A connection over nothing: the test plays the peer. */
class TestConnection extends BaseConnection {
  readonly kind: StreamKind;
  readonly local = 'test';
  readonly remote = 'peer';
  readonly written: Buffer[] = [];
  paused = 0;
  resumed = 0;
  shutdowns = 0;
  released: Array<L7Error | null> = [];

  constructor(kind: StreamKind) {
    super();
    this.kind = kind;
  }
  read(d: Buffer): void {
    this.receive(d);
  }
  peerEnd(): void {
    this.receiveEnd();
  }
  fail(err: L7Error): void {
    this.finish(err);
  }
  protected override write(d: Buffer): boolean {
    this.written.push(d);
    return true;
  }
  override pause(): void {
    this.paused++;
  }
  override resume(): void {
    this.resumed++;
  }
  protected override shutdown(): void {
    this.shutdowns++;
  }
  protected override release(err: L7Error | null): void {
    this.released.push(err);
  }
}

/** A handler that records what it gets, in order. */
function recorder(onData?: (d: Buffer) => void): ConnectionHandler & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    onData(d) {
      log.push(`data:${d.toString()}`);
      onData?.(d);
    },
    onDrain() {
      log.push('drain');
    },
    onEnd() {
      log.push('end');
    },
    onClose(err) {
      log.push(`close:${err === null ? 'null' : err.code}`);
    },
  };
}

const err = new L7Error(ErrorCode.UpstreamReset, 'peer reset');

test('hold: a datagram connection keeps the first HOLD_MAX reads, drops and counts the rest, and replays reads, end and close in order', () => {
  const c = new TestConnection('datagram');
  for (let i = 0; i < HOLD_MAX + 3; i++) c.read(Buffer.from(String(i)));
  c.peerEnd();
  c.fail(err);
  assert.equal(c.paused, 0, 'a datagram source is never paused');
  const h = recorder();
  c.setHandler(h);
  assert.equal(h.log.length, HOLD_MAX + 2);
  assert.equal(h.log[0], 'data:0');
  assert.equal(h.log[HOLD_MAX - 1], `data:${HOLD_MAX - 1}`);
  assert.deepEqual(h.log.slice(-2), ['end', 'close:L7_ERR_UPSTREAM_RESET']);
  assert.equal(c.stats.drops, 3, 'drops past the hold are the connection\'s drops');
  assert.equal(c.stats.rxPackets, HOLD_MAX + 3, 'every read counted in rx');
});

test('hold: a byte stream pauses its source at the bound instead of dropping, and resumes it before the replay', () => {
  const c = new TestConnection('byte');
  for (let i = 0; i < HOLD_MAX + 2; i++) c.read(Buffer.from(String(i)));
  assert.equal(c.paused, 1, 'paused once, at the bound');
  let resumedBeforeFirstRead = -1;
  const h = recorder(() => {
    if (resumedBeforeFirstRead === -1) resumedBeforeFirstRead = c.resumed;
  });
  c.setHandler(h);
  assert.equal(resumedBeforeFirstRead, 1, 'resumed before the held reads are replayed (a pause the handler asks for then holds)');
  assert.equal(h.log.length, HOLD_MAX + 2, 'no byte lost');
  assert.equal(c.stats.drops, 0);
  c.read(Buffer.from('after'));
  assert.equal(h.log.at(-1), 'data:after');
});

test('close: idempotent, one shutdown, one release and one onClose; later errors, reads and sends are ignored or counted as drops', () => {
  const c = new TestConnection('datagram');
  const h = recorder();
  c.setHandler(h);
  assert.equal(c.send(Buffer.from('a')), true);
  assert.equal(c.stats.txPackets, 1);
  c.close();
  c.close();
  c.fail(err);
  assert.equal(c.shutdowns, 1);
  assert.deepEqual(c.released, [null]);
  assert.deepEqual(h.log, ['close:null']);
  assert.equal(c.send(Buffer.from('b')), true, 'a send after close never throws nor asks to wait');
  assert.equal(c.stats.drops, 1);
  assert.deepEqual(c.written.map(String), ['a']);
  c.read(Buffer.from('late'));
  c.peerEnd();
  assert.deepEqual(h.log, ['close:null'], 'nothing reaches the handler after onClose');
  assert.equal(c.stats.rxPackets, 0);
});

test('close: an error first wins; close() after it does nothing', () => {
  const c = new TestConnection('byte');
  const h = recorder();
  c.setHandler(h);
  c.fail(err);
  c.close();
  assert.equal(c.shutdowns, 0);
  assert.deepEqual(c.released, [err]);
  assert.deepEqual(h.log, ['close:L7_ERR_UPSTREAM_RESET']);
});

test('connectAttempt: done resolves; an abort rejects with L7_ERR_UPSTREAM_CONNECT naming the attempt and releases what was opened', async () => {
  assert.equal(await connectAttempt<number>(new AbortController().signal, 'x', (a) => a.done(7)), 7);

  const ac = new AbortController();
  let released = 0;
  const p = connectAttempt<number>(ac.signal, 'cluster "c": thing', (a) => a.onFail(() => released++));
  ac.abort();
  await assert.rejects(p, (e: L7Error) => e.code === 'L7_ERR_UPSTREAM_CONNECT' && e.message === 'cluster "c": thing: aborted');
  assert.equal(released, 1);
});

test('connectAttempt: an already aborted signal, a synchronous throw and a failure each reject once; late settles are ignored', async () => {
  let opened = 0;
  await assert.rejects(
    connectAttempt(AbortSignal.abort(), 'w', () => opened++),
    /w: aborted/,
  );
  assert.equal(opened, 0, 'nothing is opened under a signal that has already aborted');

  await assert.rejects(
    connectAttempt(new AbortController().signal, 'w', () => {
      throw new Error('spawn EACCES');
    }),
    (e: L7Error) => e.message === 'w: spawn EACCES' && (e.cause as Error).message === 'spawn EACCES',
  );

  let late = 0;
  const cause = new Error('ECONNREFUSED');
  await assert.rejects(
    connectAttempt<number>(new AbortController().signal, 'w', (a) => {
      a.fail('refused', cause);
      a.done(1);
      a.fail('again');
      a.onFail(() => late++);
    }),
    (e: L7Error) => e.message === 'w: refused' && e.cause === cause,
  );
  assert.equal(late, 1, 'a release registered after the failure runs at once');
});

test('defineProtocol: declared drop reasons reach metrics through the registry; a counter may not be a drop in one protocol and an event in another', () => {
  const listener = dropReasons('listener');
  for (const r of ['malformed', 'body_too_large', 'header_too_large', 'filtered', 'session_rate', 'fd_exhausted']) assert.ok(listener.has(r), r);
  for (const e of ['header_timeout', 'handshake_timeout', 'keepalive_timeout', 'accept_error', 'handoff_in', 'handoff_out', 'stray', 'rtp_absent']) assert.ok(!listener.has(e), e);
  const cluster = dropReasons('cluster');
  assert.deepEqual([...cluster].sort(), ['sync_undeliverable', 'sync_unheard', 'transform_error', 'transform_null', 'transform_overflow']);

  const schema = Type.Object({ protocol: Type.Literal('A') });
  const mk = (name: string, drop: boolean) =>
    defineProtocol({ name, kind: 'datagram', cluster: { schema, virtual: true, create: () => ({ connect: () => Promise.reject(new Error('no')), close() {} }), events: { lost: { drop, help: 'x' } } } });
  assert.throws(() => declaredDrops([mk('A', true), mk('B', false)], 'cluster'), /cluster counter "lost" is a drop in A but a event in B/);
});
