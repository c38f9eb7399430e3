/**
 * The virtual adapter: a connection with no socket, only a function of what the session sends
 * (Echo, Discard, Logger, Metric, JSONEncap, JSONDecap), and the cluster side that makes one per
 * session stage.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { ConnStats } from '../types.ts';
import type { ClusterContext, SessionInfo, StreamKind } from '../types.ts';
import { BaseConnection } from './connection.ts';
import type { ClusterDef } from './define.ts';

/** What a virtual peer answers to one message: a message, or null for nothing. */
export type Reply = (data: Buffer) => Buffer | null;

export class VirtualConnection extends BaseConnection {
  readonly kind: StreamKind;
  /** Each message in is at most one message out: the input's framing is kept. */
  readonly passThrough = true;
  readonly local: string;
  readonly remote = '<VIRTUAL>';
  private ended = false;
  private readonly reply: Reply;

  /** @param stats the stage's counters, when `reply` was made for them. */
  constructor(kind: StreamKind, clusterName: string, reply: Reply, stats?: ConnStats) {
    super(stats);
    this.kind = kind;
    this.local = clusterName;
    this.reply = reply;
  }

  protected override write(data: Buffer): boolean {
    const out = this.reply(data);
    if (out !== null) this.receive(out);
    return true;
  }

  /** The virtual peer has nothing more to say after the session's end either: it ends too. */
  override end(): boolean {
    if (!this.closed && !this.ended) {
      this.ended = true;
      this.handler.onEnd();
    }
    return true;
  }
}

/** What a {@link replyCluster} builds once per cluster. */
export interface ReplyStages {
  /** The reply function of one session stage; `stats` are that stage's counters (count a malformed message in `drops`). */
  stage(session: SessionInfo, stats: ConnStats): Reply;
  /** The cluster is gone: release what it holds (a log file). */
  close?(): void;
}

/**
 * The cluster side of a virtual datagram protocol whose every stage maps each message through a
 * {@link Reply}: `build` runs once per cluster (and worker), its `stage` once per session stage.
 */
export function replyCluster<S extends TSchema>(
  schema: S,
  build: (cfg: { name: string; spec: Static<S> }, ctx: ClusterContext) => ReplyStages,
  opts: { sessionMetrics?: boolean } = {},
): ClusterDef<S> {
  return {
    schema,
    virtual: true,
    ...(opts.sessionMetrics === true ? { sessionMetrics: true } : {}),
    create: (cfg, ctx) => {
      const stages = build(cfg, ctx);
      return {
        connect: (session) => {
          const stats = new ConnStats();
          return Promise.resolve(new VirtualConnection('datagram', cfg.name, stages.stage(session, stats), stats));
        },
        close: () => stages.close?.(),
      };
    },
  };
}
