/**
 * The actor model of l7mp-ts: every listener, cluster and session is an actor that owns its state
 * and is driven by messages, one at a time.
 *
 * Semantics (Erlang/OTP `supervisor.erl`, Pekko typed `ActorContext`/`SupervisorStrategy`,
 * Proto.Actor `mailbox.go`):
 * - `receive` is synchronous and handles one message at a time. Async work reports back as a
 *   message ({@link ActorContext.pipeToSelf}); an actor never awaits inside `receive`.
 * - Each actor has a mailbox: a system queue (stop, child failed, child stopped) drained before the
 *   user queue. The {@link Dispatcher} runs at most `throughput` messages of one actor per turn and
 *   at most `budget` messages per event-loop turn, then yields (setImmediate) so socket I/O runs.
 * - A `receive` that throws fails the actor; its parent's supervision applies the child's
 *   {@link RestartPolicy}: `permanent` children (listeners, clusters) are restarted, at most
 *   `maxRestarts` times within `periodMs`, after which the parent itself fails (escalation);
 *   `temporary` children (sessions) are stopped. A failure in `preStart` stops the actor and is
 *   never retried (no restart loops on a broken start).
 * - Lifecycle methods are idempotent: stopping a stopped actor does nothing.
 *
 * The data path does not go through mailboxes: a session wires its sockets to each other with
 * handler objects once, and packets flow socket to socket. Mailboxes carry control: start, stop,
 * connect results, faults, idle ticks, stats queries.
 */
import { FixedQueue } from '../common/fixed-queue.ts';
import { L7Error, ErrorCode, asL7Error } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';

/** One node of the actor tree. */
export interface ActorNode {
  id: string;
  kind: string;
  name: string;
  worker: number | null;
  state: string;
  /** Messages waiting in its mailbox. */
  mailbox: number;
  /** Messages handled since spawn. */
  processed: number;
  restarts: number;
  children: ActorNode[];
  [field: string]: unknown;
}

/** What an actor is; shown in the actor tree. */
export type ActorKind = 'process' | 'worker' | 'listener' | 'cluster' | 'session' | 'test';

/** How a parent treats a child that failed (OTP's restart types). */
export type RestartPolicy = 'permanent' | 'temporary';

/** How to make (and remake) an actor. */
export interface Props<M> {
  /** Called once at spawn and again at each restart: a restart gets a fresh instance. */
  factory: () => Actor<M>;
  /** Default `permanent`. */
  restart?: RestartPolicy;
  /** Restart intensity: at most this many restarts within {@link Props.periodMs} (default 3). */
  maxRestarts?: number;
  /** Restart period in ms (default 5000). */
  periodMs?: number;
}

/** Why an actor stopped. `null` = normal stop. */
export type StopReason = L7Error | null;

/** Messages the runtime delivers before any user message. */
type SystemMessage =
  | { sys: 'stop'; reason: StopReason }
  | { sys: 'failed'; child: ActorCell<unknown>; error: L7Error }
  | { sys: 'stopped'; child: ActorCell<unknown>; reason: StopReason };

/** Base class of every actor. Subclasses implement `receive` and may override the hooks. */
export abstract class Actor<M> {
  /** Set by the runtime before `preStart`. */
  ctx!: ActorContext<M>;

  abstract readonly kind: ActorKind;

  /** Handle one message. Synchronous; may throw (the actor then fails and is supervised). */
  abstract receive(msg: M): void;

  /** Called once when the actor starts (and after each restart, on the new instance). */
  preStart(): void {}

  /** Called once when the actor stops (and on the old instance before a restart). Must not throw. */
  postStop(_reason: StopReason): void {}

  /** A child stopped (normally, or after a failure that was not restarted). */
  onChildStopped(_child: ActorCell<unknown>, _reason: StopReason): void {}

  /** Per-kind fields for the actor tree (bytes, packets, age...). Plain JSON data. */
  describe(): Record<string, unknown> {
    return {};
  }
  /**
   * Nodes the actor tree shows under this actor besides its live children: a listener with
   * l7mp's `options.track` keeps its ended sessions visible for a while.
   */
  retainedChildren(): ActorNode[] {
    return [];
  }

}

/** Run-queue scheduling knobs of a {@link Dispatcher}. */
export interface DispatcherOptions {
  /** Messages one actor may process per turn before the next actor runs (default 32). */
  throughput?: number;
  /** Messages processed per event-loop turn before yielding with setImmediate (default 1024). */
  budget?: number;
  /** ms a turn may run before it yields, checked between actors (default 5). */
  sliceMs?: number;
}

/**
 * One per thread. Holds the actors that have pending messages and runs them in turns, yielding to
 * the event loop between turns. Never blocks (no Atomics.wait in a thread that owns sockets).
 */
export class Dispatcher {
  private readonly runQueue = new FixedQueue<ActorCell<unknown>>();
  private armed = false;
  private readonly throughput: number;
  private readonly budget: number;
  private readonly sliceMs: number;
  private nextId = 0;
  /** Prefix of actor ids made on this thread (e.g. `w1`). */
  readonly idPrefix: string;
  readonly log: Logger;

  constructor(idPrefix: string, log: Logger, opts: DispatcherOptions = {}) {
    this.idPrefix = idPrefix;
    this.log = log;
    this.throughput = opts.throughput ?? 32;
    this.budget = opts.budget ?? 1024;
    this.sliceMs = opts.sliceMs ?? 5;
  }

  /** A new actor id, unique on this thread: `<prefix>.<n>`. */
  newId(): number {
    return this.nextId++;
  }

  /** Create a root actor (no parent). Its failure calls `onFailure`. */
  spawnRoot<M>(name: string, props: Props<M>, onFailure: (err: L7Error) => void): ActorCell<M> {
    const cell = new ActorCell<M>(this, null, name, props);
    cell.onRootFailure = onFailure;
    cell.start();
    return cell;
  }

  /** @internal Put a cell with pending messages on the run queue. */
  schedule(cell: ActorCell<unknown>): void {
    this.runQueue.push(cell);
    if (!this.armed) {
      this.armed = true;
      setImmediate(this.run);
    }
  }

  /** Process pending messages now, synchronously (tests; the loop does this on its own). */
  drain(): void {
    while (!this.runQueue.isEmpty()) this.turn();
  }

  private readonly run = (): void => {
    this.armed = false;
    this.turn();
    if (!this.runQueue.isEmpty() && !this.armed) {
      this.armed = true;
      setImmediate(this.run);
    }
  };

  private turn(): void {
    let budget = this.budget;
    const end = performance.now() + this.sliceMs;
    while (budget > 0) {
      const cell = this.runQueue.shift();
      if (cell === undefined) return;
      const n = cell.process(Math.min(this.throughput, budget));
      budget -= n;
      if (cell.hasMessages()) this.runQueue.push(cell);
      else cell.scheduled = false;
      // A time slice too: a thousand sessions ending at once (an idle sweep after a flood) must not
      // keep the sockets of live sessions unread for a second.
      if (performance.now() > end) return;
    }
  }
}

/** Life states of an actor. */
export type ActorState = 'starting' | 'running' | 'failed' | 'stopped';

/** The children of a cell that never spawned one. */
const NO_CHILDREN: ReadonlyMap<number, ActorCell<unknown>> = new Map();

/**
 * The runtime's half of an actor: mailbox, children, supervision bookkeeping. An {@link Actor}
 * instance can be replaced (restart) while its cell, id and mailbox stay.
 */
export class ActorCell<M> implements ActorContext<M> {
  /** Unique on this thread; {@link id} is `<prefix>.<seq>` (made when read: a session is mostly never shown). */
  readonly seq: number;
  readonly name: string;
  readonly parent: ActorCell<unknown> | null;
  /** Live children by id; null until the first spawn (a session has none). */
  private kids: Map<number, ActorCell<unknown>> | null = null;
  readonly dispatcher: Dispatcher;
  actor: Actor<M>;
  state: ActorState = 'starting';
  /** Messages handled since spawn. */
  processed = 0;
  /** Restarts since spawn. */
  restarts = 0;
  /** @internal */
  scheduled = false;
  /** @internal */
  onRootFailure: ((err: L7Error) => void) | null = null;

  private readonly props: Props<M>;
  /** The mailbox and the system queue, made at their first message (a UDP session's mailbox mostly never has one). */
  private user: FixedQueue<M> | null = null;
  private system: FixedQueue<SystemMessage> | null = null;
  /** When the last restarts happened (ms since the epoch); null until the first (most actors never restart). */
  private restartTimes: number[] | null = null;

  constructor(dispatcher: Dispatcher, parent: ActorCell<unknown> | null, name: string, props: Props<M>) {
    this.dispatcher = dispatcher;
    this.parent = parent;
    this.name = name;
    this.props = props;
    this.seq = dispatcher.newId();
    this.actor = props.factory();
  }

  /** Live children by id (read-only: spawn and stop change it). */
  get children(): ReadonlyMap<number, ActorCell<unknown>> {
    return this.kids ?? NO_CHILDREN;
  }

  /** The actor's id in the tree and the logs: `<prefix>.<seq>`. */
  get id(): string {
    return `${this.dispatcher.idPrefix}.${this.seq}`;
  }

  get kind(): ActorKind {
    return this.actor.kind;
  }

  get restartPolicy(): RestartPolicy {
    return this.props.restart ?? 'permanent';
  }

  /** ActorContext: the cell is its actor's context. */
  get self(): ActorCell<M> {
    return this;
  }

  get log(): Logger {
    return this.dispatcher.log;
  }

  spawn<C>(name: string, props: Props<C>): ActorCell<C> {
    return this.spawnChild(name, props);
  }

  pipeToSelf<T>(p: Promise<T>, ok: (v: T) => M, fail: (e: unknown) => M): void {
    p.then(
      (v) => this.tell(ok(v)),
      (e) => this.tell(fail(e)),
    );
  }

  stopSelf(reason: StopReason = null): void {
    this.stop(reason);
  }

  /** Messages waiting in the mailbox. */
  get mailboxSize(): number {
    return (this.user?.length ?? 0) + (this.system?.length ?? 0);
  }

  /** Enqueue a message; ignored once the actor stopped (dead letters are dropped). */
  tell(msg: M): void {
    if (this.state === 'stopped') return;
    (this.user ??= new FixedQueue<M>()).push(msg);
    this.wake();
  }

  /** Ask the actor to stop after the messages already in its system queue. Idempotent. */
  stop(reason: StopReason = null): void {
    if (this.state === 'stopped') return;
    this.systemQueue().push({ sys: 'stop', reason });
    this.wake();
  }

  /** @internal */
  hasMessages(): boolean {
    if (this.state === 'stopped') return false;
    return (this.system !== null && this.system.length > 0) || (this.state === 'running' && this.user !== null && this.user.length > 0);
  }

  /** @internal Start (or restart) the current actor instance. */
  start(): void {
    this.actor.ctx = this;
    try {
      this.actor.preStart();
      this.state = 'running';
      if (this.user !== null && this.user.length > 0) this.wake();
    } catch (e) {
      // A broken start is not retried: stop, and tell the parent why.
      const err = asL7Error(e, ErrorCode.ActorFailed, `${this.name}: start failed`);
      this.dispatcher.log.error({ actor: this.id, name: this.name, err: err.message }, 'actor failed to start');
      this.terminate(err);
    }
  }

  /** @internal Process up to `max` messages; returns how many were processed. */
  process(max: number): number {
    let n = 0;
    while (n < max) {
      const sys = this.system?.shift();
      if (sys !== undefined) {
        n++;
        this.handleSystem(sys);
        continue;
      }
      if (this.state !== 'running') break;
      const msg = this.user?.shift();
      if (msg === undefined) break;
      n++;
      this.processed++;
      try {
        this.actor.receive(msg);
      } catch (e) {
        this.fail(asL7Error(e, ErrorCode.ActorFailed, `${this.name}`));
      }
    }
    return n;
  }

  /** @internal Spawn a child of this cell. */
  spawnChild<C>(name: string, props: Props<C>): ActorCell<C> {
    const child = new ActorCell<C>(this.dispatcher, this as ActorCell<unknown>, name, props);
    (this.kids ??= new Map()).set(child.seq, child as ActorCell<unknown>);
    child.start();
    return child;
  }

  private systemQueue(): FixedQueue<SystemMessage> {
    return (this.system ??= new FixedQueue<SystemMessage>());
  }

  private wake(): void {
    if (!this.scheduled) {
      this.scheduled = true;
      this.dispatcher.schedule(this as ActorCell<unknown>);
    }
  }

  private fail(err: L7Error): void {
    if (this.state !== 'running') return;
    this.state = 'failed';
    this.dispatcher.log.warn({ actor: this.id, name: this.name, err: err.message }, 'actor failed');
    if (this.parent === null) {
      this.terminate(err);
      this.onRootFailure?.(err);
      return;
    }
    this.parent.systemQueue().push({ sys: 'failed', child: this as ActorCell<unknown>, error: err });
    this.parent.wake();
  }

  private handleSystem(m: SystemMessage): void {
    switch (m.sys) {
      case 'stop':
        this.terminate(m.reason);
        return;
      case 'stopped':
        this.kids?.delete(m.child.seq);
        if (this.state === 'running' || this.state === 'failed') {
          try {
            this.actor.onChildStopped(m.child, m.reason);
          } catch (e) {
            this.fail(asL7Error(e, ErrorCode.ActorFailed, `${this.name}`));
          }
        }
        return;
      case 'failed':
        this.supervise(m.child, m.error);
        return;
    }
  }

  /** Apply the failed child's restart policy, with restart intensity (OTP `MaxR` in `MaxT`). */
  private supervise(child: ActorCell<unknown>, err: L7Error): void {
    if (child.state === 'stopped') return;
    if (child.restartPolicy === 'temporary') {
      child.terminate(err);
      return;
    }
    if (!child.allowRestart()) {
      child.terminate(err);
      const limit = new L7Error(
        ErrorCode.ActorRestartLimit,
        `${child.name}: restarted ${child.props.maxRestarts ?? 3} times within ${child.props.periodMs ?? 5000} ms; giving up`,
        { cause: err },
      );
      if (this.state === 'running') this.fail(limit);
      return;
    }
    child.restart();
  }

  private allowRestart(): boolean {
    const now = Date.now();
    const period = this.props.periodMs ?? 5000;
    const times = (this.restartTimes ?? []).filter((t) => now - t < period);
    this.restartTimes = times;
    if (times.length >= (this.props.maxRestarts ?? 3)) return false;
    times.push(now);
    return true;
  }

  private restart(): void {
    this.dispatcher.log.info({ actor: this.id, name: this.name }, 'restarting actor');
    for (const c of [...this.children.values()]) c.terminate(null);
    this.safePostStop(null);
    this.restarts++;
    this.actor = this.props.factory();
    this.state = 'starting';
    this.start();
  }

  /** Stop now: children first, then this actor's postStop, then tell the parent. Idempotent. */
  private terminate(reason: StopReason): void {
    if (this.state === 'stopped') return;
    for (const c of [...this.children.values()]) c.terminate(null);
    const wasStarted = this.state !== 'starting';
    this.state = 'stopped';
    this.user = null;
    this.system = null;
    if (wasStarted) this.safePostStop(reason);
    if (this.parent !== null && this.parent.state !== 'stopped') {
      this.parent.systemQueue().push({ sys: 'stopped', child: this as ActorCell<unknown>, reason });
      this.parent.wake();
    }
  }

  private safePostStop(reason: StopReason): void {
    try {
      this.actor.postStop(reason);
    } catch (e) {
      this.dispatcher.log.error({ actor: this.id, err: (e as Error).message }, 'postStop threw');
    }
  }
}

/** What an actor can do: its handle to the runtime (its own {@link ActorCell}: no object of its own per actor). */
export interface ActorContext<M> {
  readonly self: ActorCell<M>;
  readonly log: Logger;
  /** Start a child actor under this one. */
  spawn<C>(name: string, props: Props<C>): ActorCell<C>;
  /**
   * Run `p` and deliver its outcome to this actor as a message (Pekko `pipeToSelf`). If the actor
   * stopped meanwhile, the message is dropped.
   */
  pipeToSelf<T>(p: Promise<T>, ok: (v: T) => M, fail: (e: unknown) => M): void;
  /** Stop this actor. */
  stopSelf(reason?: StopReason): void;
}
