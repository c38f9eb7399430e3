/**
 * A session's data path: the handler set once on each of its connections, and the wiring of the
 * cycle (stage i's reads go to stage i+1). Per packet: `onData` → `next.send`, no mailbox, no
 * allocation of ours; what is not a packet (a fault, an end, a close, the first reply of an armed
 * session) goes to the session as a message. The first reply of a datagram upstream is seen here
 * (one flag test per packet) and reported to outlier detection at once.
 */
import { L7Error, ErrorCode, asL7Error } from '../common/errors.ts';
import type { Connection, ConnectionHandler } from '../protocols/types.ts';
import { confirm } from './connect.ts';
import type { SessionCore, Stage, StageSetup } from './session-core.ts';

/**
 * The per-connection handler on the packet path: forwards every read to the next stage. If the
 * next stage buffers above its high-water mark, this stage stops reading until it drains. On a
 * datagram upstream that has had no reply yet (`awaitingReply`), the first read confirms its
 * endpoint ({@link confirm}: a success for outlier detection, the replay buffer freed).
 */
export class Hop implements ConnectionHandler {
  next: Connection;
  prev: Connection;
  readonly self: Connection;
  private readonly session: SessionCore;
  private readonly stage: number;
  private awaitingReply: boolean;

  constructor(session: SessionCore, stage: number, self: Connection, next: Connection, prev: Connection, awaitingReply = false) {
    this.session = session;
    this.stage = stage;
    this.self = self;
    this.next = next;
    this.prev = prev;
    this.awaitingReply = awaitingReply;
  }

  onData(data: Buffer): boolean {
    try {
      if (!this.next.send(data)) this.self.pause();
      if (this.awaitingReply) this.firstReply();
      // The source may read into the same memory again if the write went out whole.
      return this.next.sendReleased?.() === true;
    } catch (e) {
      // The data path never throws into the socket's event loop: the session handles the fault.
      this.session.ctx.self.tell({ type: 'fault', err: asL7Error(e, ErrorCode.Internal, 'packet path') });
      return false;
    }
  }

  /** The first read of a datagram upstream: its endpoint answered (if this is still the stage's connection). */
  private firstReply(): void {
    this.awaitingReply = false;
    if ((this.session.stages[this.stage] as Stage).conn === this.self) confirm(this.session, this.stage);
  }

  onDrain(): void {
    this.prev.resume();
  }

  onEnd(): void {
    // Every read of this connection was forwarded synchronously before its end arrives.
    this.session.ctx.self.tell({ type: 'eof', stage: this.stage, conn: this.self });
  }

  onClose(err: L7Error | null): void {
    this.session.ctx.self.tell({ type: 'closed', stage: this.stage, err, conn: this.self });
  }
}

/**
 * A hop of a session that may be offloaded: the `after`-th datagram it forwards makes the session
 * established (then spliced). Armed towards the source (after = 1: the first reply), and on the
 * source itself when it has `spliceAfter` (`offload.establish: {packets: N}`, a one-way flow).
 * Only used when offload is on, so the plain path is unchanged.
 */
export class ArmedHop extends Hop {
  private left: number;
  private readonly owner: SessionCore;

  constructor(session: SessionCore, stage: number, self: Connection, next: Connection, prev: Connection, after: number, awaitingReply: boolean) {
    super(session, stage, self, next, prev, awaitingReply);
    this.owner = session;
    this.left = after;
  }

  override onData(data: Buffer): boolean {
    const released = super.onData(data);
    if (this.left > 0 && --this.left === 0) this.owner.ctx.self.tell({ type: 'established' });
    return released;
  }
}

/** Holds reads and reports a close while a session is being set up. */
export class SetupHandler implements ConnectionHandler {
  readonly held: Buffer[] = [];
  /** The peer half-closed during setup; replayed after the held data. */
  ended = false;
  private readonly session: SessionCore;
  private readonly stage: number;
  private readonly conn: Connection;

  constructor(session: SessionCore, stage: number, conn: Connection) {
    this.session = session;
    this.stage = stage;
    this.conn = conn;
  }
  onData(data: Buffer): void {
    if (this.held.length < 256) this.held.push(data);
    else this.conn.stats.drops++;
  }
  onDrain(): void {}
  onEnd(): void {
    this.ended = true;
  }
  onClose(err: L7Error | null): void {
    this.session.ctx.self.tell({ type: 'closed', stage: this.stage, err, conn: this.conn });
  }
}

/**
 * Give stage `i` a Hop to the next stage and point the previous stage's Hop at it. Returns what its
 * setup handler held. `armed`: the session may be offloaded; the hop towards the source is armed.
 */
export function wireStage(s: SessionCore, i: number, armed: boolean): StageSetup | null {
  const n = s.stages.length;
  const st = s.stages[i] as Stage;
  const next = s.stages[(i + 1) % n] as Stage;
  const prev = s.stages[(i - 1 + n) % n] as Stage;
  const conn = st.conn as Connection;
  // Armed: the last stage (replies towards the source); the source too with `spliceAfter` (a one-way flow).
  const after = !armed ? 0 : i === n - 1 ? 1 : i === 0 ? (conn.spliceAfter ?? 0) : 0;
  // A datagram "connect" is local: the endpoint's first reply is what proves it.
  const awaiting = i > 0 && conn.kind === 'datagram' && st.endpoint !== null && !st.confirmed;
  const hop = after > 0 ? new ArmedHop(s, i, conn, next.conn as Connection, prev.conn as Connection, after, awaiting) : new Hop(s, i, conn, next.conn as Connection, prev.conn as Connection, awaiting);
  st.hop = hop;
  if (prev.hop !== null) prev.hop.next = conn;
  if (next.hop !== null) next.hop.prev = conn;
  const setup = st.setup;
  st.setup = null;
  conn.setHandler(hop);
  return setup;
}

/**
 * Report (once per session) the first hop where messages with real boundaries enter a byte
 * stream. Walking the cycle from the source: a stage's output is framed if it is a datagram
 * connection, or a pass-through stage whose input was framed (Echo after a TCP source carries
 * chunks, not messages); the framing is lost where framed output meets a byte-stream connection
 * that is not a pass-through.
 */
export function checkFraming(s: SessionCore): void {
  const report = s.init.env.framingLost;
  if (report === undefined) return;
  const n = s.stages.length;
  let framed = false;
  for (let i = 0; i < n; i++) {
    const a = (s.stages[i] as Stage).conn;
    const b = (s.stages[(i + 1) % n] as Stage).conn;
    if (a === null || b === null) return;
    framed = a.passThrough === true ? framed : a.kind === 'datagram';
    if (framed && b.kind === 'byte' && b.passThrough !== true) {
      report(s.init.listener, s.route?.name ?? '', (s.stages[i] as Stage).cluster, (s.stages[(i + 1) % n] as Stage).cluster);
      return;
    }
  }
}
