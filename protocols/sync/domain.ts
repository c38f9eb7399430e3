/**
 * Sync broadcast domains, and how one domain spans worker threads.
 *
 * Every worker has an instance of each Sync cluster. A domain (cluster + key, the session's
 * metadata value at `query`) is *owned* by the worker that owns the key on the consistent hash
 * ring of live workers. Members are the Sync connections of sessions; each lives on its session's
 * worker. The owner knows on which other workers the domain has members (a count per slot); a
 * worker that is not the owner knows only its own members.
 * ```
 *   worker A (member a1)            worker O (owner; member o1)           worker B (member b1)
 *   a1 sends d ──► local members ─┐
 *                                 └─► [DATA d] ──► O: o1 ◄─ d; forward to slots with members
 *                                                      except A ──► [DELIVER d] ──► B: b1 ◄─ d
 *   o1 sends d ──► local members;  [DELIVER d] to every slot with members (A, B)
 * ```
 * Membership: a worker tells the owner its member count of a domain whenever it changes
 * ([STATE n], n = 0 leaves), and tells the new owner again when the ring moves the domain (a worker
 * died or came back). State messages carry absolute counts, so they can be repeated. Messages
 * between two workers arrive in order (one MessagePort per pair), so a member's datagrams keep
 * their order; across the two hops through the owner they keep it too.
 *
 * Drops are counted per cluster: `sync_unheard` (a message that reached no other member: the
 * sender is alone in its domain, as known where the message ends), `sync_undeliverable` (the next
 * worker was unreachable, or a message for a domain this worker does not know). Events:
 * `sync_forwarded` (messages sent to another worker), `sync_received` (from another worker).
 */
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { ClusterContext, ClusterInstance, Connection, SessionInfo, StreamKind } from '../types.ts';
import { BaseConnection } from '../core/connection.ts';

/**
 * Wire ops of the cluster messages between workers: [STATE, key, n] | [DATA, key, bytes, heard] |
 * [DELIVER, key, bytes]. `heard` is how many members the sender's worker delivered to already, so
 * the owner does not count a message as unheard that members next to the sender got.
 */
const Op = { State: 0, Data: 1, Deliver: 2 } as const;


/** A metadata path's value at `path` (own properties only, `/a/b` or `a/b`), or undefined. */
function valueAt(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const s of path.split('/')) {
    if (s === '') continue;
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, s)) return undefined;
    cur = (cur as Record<string, unknown>)[s];
  }
  return cur;
}

/** One broadcast domain as one worker sees it. */
class Domain {
  readonly key: string;
  /** Members on this worker. */
  readonly members: SyncConnection[] = [];
  /** Owner slot (cached; recomputed on ring changes). */
  owner: number;
  /** On the owner: slot → member count on that slot (other slots only). */
  readonly remote = new Map<number, number>();

  constructor(key: string, owner: number) {
    this.key = key;
    this.owner = owner;
  }
}

/** The Sync cluster on one worker: its domains and the cross-worker protocol. */
export class SyncCluster implements ClusterInstance {
  private readonly name: string;
  private readonly query: string;
  private readonly ctx: ClusterContext;
  private readonly domains = new Map<string, Domain>();
  private closed = false;

  constructor(name: string, query: string, ctx: ClusterContext) {
    this.name = name;
    this.query = query;
    this.ctx = ctx;
  }

  connect(session: SessionInfo): Promise<Connection> {
    if (this.closed) return Promise.reject(new L7Error(ErrorCode.UpstreamConnect, `Sync cluster "${this.name}" is closed`));
    const v = valueAt(session.metadata, this.query);
    if (v === undefined) {
      return Promise.reject(new L7Error(ErrorCode.UpstreamConnect, `Sync cluster "${this.name}": session "${session.name}" has no metadata at ${this.query}`));
    }
    // JSON keeps 1 and "1" apart, and gives objects a stable-enough name.
    const key = JSON.stringify(v);
    let d = this.domains.get(key);
    if (d === undefined) {
      d = new Domain(key, this.ctx.ownerOf(`${this.name}/${key}`));
      this.domains.set(key, d);
    }
    const conn = new SyncConnection(this, d, this.name);
    d.members.push(conn);
    this.announce(d);
    return Promise.resolve(conn);
  }

  /** Tell the owner our member count of `d` (if the owner is another worker). */
  private announce(d: Domain): void {
    if (d.owner === this.ctx.slot) return;
    if (!this.ctx.sendPeer(d.owner, [Op.State, d.key, d.members.length])) this.ctx.count('sync_undeliverable');
  }

  private forget(d: Domain): void {
    if (d.members.length === 0 && d.remote.size === 0) this.domains.delete(d.key);
  }

  /** A member left (its session ended or the cluster closed). */
  leave(conn: SyncConnection, d: Domain): void {
    const i = d.members.indexOf(conn);
    if (i < 0) return;
    d.members.splice(i, 1);
    this.announce(d);
    this.forget(d);
  }

  /** Deliver to this worker's members except `from`; returns how many got it. */
  private deliverLocal(d: Domain, from: SyncConnection | null, data: Buffer): number {
    let n = 0;
    // A member may leave inside onData (its session ends): iterate over a stable view.
    const ms = d.members.length === 1 || (d.members.length === 2 && from !== null) ? d.members : d.members.slice();
    for (const m of ms) {
      if (m === from) continue;
      m.deliver(data);
      n++;
    }
    return n;
  }

  /** Owner side: forward to every other slot with members, except `except`. Returns how many slots. */
  private fanOut(d: Domain, except: number, data: Uint8Array): number {
    let n = 0;
    for (const slot of d.remote.keys()) {
      if (slot === except) continue;
      if (this.ctx.sendPeer(slot, [Op.Deliver, d.key, data])) {
        this.ctx.count('sync_forwarded');
        n++;
      } else this.ctx.count('sync_undeliverable');
    }
    return n;
  }

  /** A member sent `data` into its domain. */
  broadcast(from: SyncConnection, d: Domain, data: Buffer): void {
    const local = this.deliverLocal(d, from, data);
    if (d.owner === this.ctx.slot) {
      if (local + this.fanOut(d, this.ctx.slot, data) === 0) {
        from.stats.drops++;
        this.ctx.count('sync_unheard');
      }
      return;
    }
    if (this.ctx.sendPeer(d.owner, [Op.Data, d.key, data, local])) this.ctx.count('sync_forwarded');
    else {
      this.ctx.count('sync_undeliverable');
      if (local === 0) from.stats.drops++;
    }
  }

  onPeerMessage(from: number, msg: unknown): void {
    if (!Array.isArray(msg) || typeof msg[1] !== 'string') {
      this.ctx.count('sync_undeliverable');
      return;
    }
    const [op, key] = msg as [number, string];
    if (op === Op.State) {
      const n = msg[2];
      if (typeof n !== 'number') return this.ctx.count('sync_undeliverable');
      let d = this.domains.get(key);
      if (n <= 0) {
        if (d !== undefined) {
          d.remote.delete(from);
          this.forget(d);
        }
        return;
      }
      if (d === undefined) {
        d = new Domain(key, this.ctx.ownerOf(`${this.name}/${key}`));
        this.domains.set(key, d);
      }
      d.remote.set(from, n);
      return;
    }
    const raw = msg[2];
    if (!(raw instanceof Uint8Array)) return this.ctx.count('sync_undeliverable');
    this.ctx.count('sync_received');
    const data = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    const d = this.domains.get(key);
    if (d === undefined) {
      if (!(op === Op.Data && typeof msg[3] === 'number' && msg[3] > 0)) this.ctx.count('sync_unheard');
      return;
    }
    const local = this.deliverLocal(d, null, data);
    const fwd = op === Op.Data ? this.fanOut(d, from, data) : 0;
    const heardAtSender = op === Op.Data && typeof msg[3] === 'number' ? msg[3] : 0;
    if (heardAtSender + local + fwd === 0) this.ctx.count('sync_unheard');
  }

  onRingChange(): void {
    for (const d of [...this.domains.values()]) {
      const owner = this.ctx.ownerOf(`${this.name}/${d.key}`);
      if (owner === d.owner) continue;
      d.owner = owner;
      // Only the owner keeps the others' member counts; they announce themselves to the new owner.
      if (owner !== this.ctx.slot) d.remote.clear();
      if (d.members.length > 0) this.announce(d);
      this.forget(d);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const err = new L7Error(ErrorCode.SessionStopped, `Sync cluster "${this.name}" removed`);
    for (const d of [...this.domains.values()]) for (const m of [...d.members]) m.finish(err);
    this.domains.clear();
  }
}

/** A session's membership in a broadcast domain. */
export class SyncConnection extends BaseConnection {
  readonly kind: StreamKind = 'datagram';
  readonly local: string;
  readonly remote: string;
  private readonly cluster: SyncCluster;
  private readonly domain: Domain;

  constructor(cluster: SyncCluster, domain: Domain, clusterName: string) {
    super();
    this.cluster = cluster;
    this.domain = domain;
    this.local = clusterName;
    this.remote = `<SYNC:${domain.key}>`;
  }

  protected override write(data: Buffer): boolean {
    this.cluster.broadcast(this, this.domain, data);
    return true;
  }

  /** Another member's message for this session. */
  deliver(data: Buffer): void {
    this.receive(data);
  }

  // end(): a domain has no half-close, the session decides (it ends after its linger).

  /** Close with `err`: the cluster ends its members when it is removed. */
  override finish(err: L7Error | null): void {
    super.finish(err);
  }

  protected override release(): void {
    this.cluster.leave(this, this.domain);
  }
}
