/**
 * The UDP listener of steered workers (`session_sockets` unset, more than one worker, an
 * SO_REUSEPORT program steering each peer to its ring owner): sessions are answered from the
 * listening sockets, except a "stray" one whose datagrams reach this worker although another owns
 * the peer on the ring (its owner was down) or that another worker handed over: it gets a socket
 * connected to its peer, so that the kernel brings its datagrams here whatever the steering does
 * when the owner is back; so does a session answered from the listening sockets once a datagram
 * of its peer comes by hand-off, or once the ring gives its peer to another worker. A real listener on 127.0.0.1 and real client sockets; the worker
 * around it (ring, hand-offs, admission) is the listener context, set per case.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { udp } from '../../protocols/udp/index.ts';
import type { Connection, DatagramHandoff, ListenerContext, ListenerInstance, SocketTuple } from '../../protocols/types.ts';
import { makeLogger, RateLimitedLog } from '../../common/log.ts';
import { freePort, UdpClient, waitFor } from '../helpers.ts';

interface Case {
  /** The listener's `options.session_sockets` (unset: the default). */
  sessionSockets?: 'connected' | 'listener';
  steered: boolean;
  /** The ring owner of every peer (set it, then call onRingChange, for a ring change). */
  owner: number;
  /** Whether a hand-off to the owner gets through (false: the owner is down). */
  handoffOk: boolean;
}

async function listener(c: Case): Promise<{ port: number; inst: ListenerInstance; accepted: Connection[]; handedOff: DatagramHandoff[] }> {
  const port = await freePort();
  const accepted: Connection[] = [];
  const handedOff: DatagramHandoff[] = [];
  const log = makeLogger('warn', { thread: 'test' });
  const ctx: ListenerContext = {
    slot: 0,
    workers: 2,
    steered: c.steered,
    log,
    rateLog: new RateLimitedLog(log),
    accept: (conn) => accepted.push(conn),
    admit: () => true,
    ownerOf: () => c.owner,
    handoff: (_slot, h) => {
      if (c.handoffOk) handedOff.push(h);
      return c.handoffOk;
    },
    count: () => {},
    nextSessionSeq: () => accepted.length,
  };
  const spec = { protocol: 'UDP' as const, port, address: '127.0.0.1', ...(c.sessionSockets === undefined ? {} : { options: { session_sockets: c.sessionSockets } }) };
  const inst = udp.listener?.create({ name: 'gw', spec }, ctx) as ListenerInstance;
  await inst.start();
  return { port, inst, accepted, handedOff };
}

/**
 * Run `body` against a listener of case `c` and, unless `first` is false, the session of a client
 * that sent it one datagram; everything is closed after.
 */
async function withSession(c: Case, body: (l: Awaited<ReturnType<typeof listener>>, conn: Connection | null, client: UdpClient) => Promise<void>, first = true): Promise<void> {
  const l = await listener(c);
  const client = await UdpClient.open();
  try {
    if (first) {
      client.sock.send('hi', l.port, '127.0.0.1');
      await waitFor(() => l.accepted.length === 1 || l.handedOff.length === 1, 2000, 'the session or its hand-off');
    }
    await body(l, l.accepted[0] ?? null, client);
  } finally {
    client.close();
    for (const conn of l.accepted) conn.close();
    await l.inst.close();
  }
}

/** `fn` for the default mode, where the rule applies (`want` true), and for a set `session_sockets: listener` (false). */
async function eachMode(fn: (c: Case, want: boolean, label: string) => Promise<void>): Promise<void> {
  for (const [sessionSockets, want] of [
    [undefined, true],
    ['listener', false],
  ] as const) {
    await fn({ steered: true, owner: 0, handoffOk: true, ...(sessionSockets === undefined ? {} : { sessionSockets }) }, want, `session_sockets ${sessionSockets ?? 'unset'}`);
  }
}

/** Whether the session has a socket of its own (connected to its peer). */
function ownSocket(conn: Connection): boolean {
  return (conn.rebuildTuple?.() as SocketTuple).shared !== true;
}

test('steered workers: a session whose owner is this worker is answered from the listening socket; one whose owner is down gets a connected socket', async () => {
  for (const [owner, handoffOk, want] of [
    [0, true, false],
    [1, false, true],
  ] as const) {
    await withSession({ steered: true, owner, handoffOk }, async (_l, conn) => {
      assert.equal(ownSocket(conn as Connection), want, `owner ${owner}, hand-off ${handoffOk ? 'delivered' : 'impossible'}`);
    });
  }
});

test('steered workers: a peer handed over by another worker gets a connected socket; a set session_sockets: listener never does', async () => {
  await eachMode(async (c, want, label) => {
    await withSession(
      c,
      async (l) => {
        l.inst.onHandoff?.({ listener: 'gw', address: '127.0.0.1', port: 9, data: new Uint8Array([1, 2, 3]) });
        assert.equal(l.accepted.length, 1);
        assert.equal(ownSocket(l.accepted[0] as Connection), want, label);
      },
      false,
    );
  });
});

test('steered workers: a session answered from the listening socket gets a connected socket at its first handed-over datagram; a set session_sockets: listener never does', async () => {
  await eachMode(async (c, want, label) => {
    await withSession(c, async (l, conn, client) => {
      assert.equal(ownSocket(conn as Connection), false, 'its first datagram came to its own worker');
      // A datagram of its peer that another worker received (a rebuilt session, its owner back).
      l.inst.onHandoff?.({ listener: 'gw', address: '127.0.0.1', port: client.sock.address().port, data: new Uint8Array([1]) });
      assert.equal(l.accepted.length, 1, 'the same session');
      assert.equal(ownSocket(conn as Connection), want, label);
    });
  });
});

test('steered workers: when the ring gives a peer served here to another worker (its owner is back), its session gets a connected socket; a set session_sockets: listener never does', async () => {
  await eachMode(async (c, want, label) => {
    await withSession(c, async (l, conn) => {
      l.inst.onRingChange?.();
      assert.equal(ownSocket(conn as Connection), false, 'still its own worker\'s peer');
      c.owner = 1;
      l.inst.onRingChange?.();
      assert.equal(ownSocket(conn as Connection), want, label);
    });
  });
});

test('unsteered workers: the default is a connected socket per session; a new peer of another worker is handed over, not served here', async () => {
  await withSession({ steered: false, owner: 1, handoffOk: true }, async (l) => {
    assert.equal(l.handedOff.length, 1, 'the first datagram went to its owner');
    assert.equal(l.accepted.length, 0);
    l.inst.onHandoff?.({ listener: 'gw', address: '127.0.0.1', port: 9, data: new Uint8Array([1]) });
    assert.equal(ownSocket(l.accepted[0] as Connection), true);
  });
});
