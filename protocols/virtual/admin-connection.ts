/**
 * The connection of a cluster served by the process's admin API (L7mpController, Prometheus):
 * it reads the whole request body, as l7mp's controller did (compat reference §2.2), hands the
 * request to the main thread's admin server, and sends the answer back as the stage's byte stream;
 * the answer's status and headers go to the downstream HTTP exchange when there is one. Then it
 * ends, which ends the HTTP response.
 */
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import { ConnStats } from '../types.ts';
import type { AdminAnswer, AdminCall, Connection, ConnectionHandler, Metadata, ProtocolModule } from '../types.ts';
import { Type } from '@sinclair/typebox';
import { PendingHandler } from '../udp/listener.ts';
import { httpExchange, l7mpErrorAnswer, l7mpStatusMessage, type HttpExchange } from '../http/exchange.ts';

/** Largest request body an admin cluster reads, bytes (as the admin server). */
export const MAX_ADMIN_BODY = 1 << 20;

/** Builds the admin request from the session's metadata and the request body, or says why it cannot. */
export type AdminCallBuilder = (metadata: Metadata, body: Buffer) => AdminCall | L7Error;

export class AdminConnection implements Connection {
  readonly kind = 'byte' as const;
  readonly stats = new ConnStats();
  readonly local: string;
  readonly remote = '<ADMIN API>';
  private handler: ConnectionHandler = new PendingHandler();
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private asked = false;
  private closed = false;
  private readonly metadata: Metadata;
  private readonly build: AdminCallBuilder;
  private readonly admin: (call: AdminCall) => Promise<AdminAnswer>;
  private readonly exchange: HttpExchange | undefined;

  constructor(clusterName: string, metadata: Metadata, build: AdminCallBuilder, admin: (call: AdminCall) => Promise<AdminAnswer>) {
    this.local = clusterName;
    this.metadata = metadata;
    this.build = build;
    this.admin = admin;
    this.exchange = httpExchange(metadata);
  }

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) prev.flushTo(h);
  }

  /** A chunk of the request body; beyond {@link MAX_ADMIN_BODY} the request is answered 413. */
  send(data: Buffer): boolean {
    if (this.closed || this.asked) {
      this.stats.drops++;
      return true;
    }
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
    this.size += data.length;
    if (this.size <= MAX_ADMIN_BODY) this.chunks.push(data);
    return true;
  }

  pause(): void {}
  resume(): void {}

  /** The request is complete: ask the admin API. */
  end(): boolean {
    if (this.closed || this.asked) return true;
    this.asked = true;
    const call =
      this.size > MAX_ADMIN_BODY
        ? new L7Error(ErrorCode.InvalidArgument, `request body larger than ${MAX_ADMIN_BODY} bytes`, { status: 413 })
        : this.build(this.metadata, Buffer.concat(this.chunks));
    this.chunks.length = 0;
    if (call instanceof L7Error) {
      this.answer(l7mpErrorAnswer(call.status, l7mpStatusMessage(call.status), call.message));
      return true;
    }
    void this.admin(call).then((a) => this.answer(a));
    return true;
  }

  private answer(a: AdminAnswer): void {
    if (this.closed) return;
    this.exchange?.setResponseHead({ status: a.status, statusMessage: a.statusMessage, headers: a.headers });
    const body = Buffer.from(a.body.buffer, a.body.byteOffset, a.body.byteLength);
    this.stats.rxPackets++;
    this.stats.rxBytes += body.length;
    this.handler.onData(body);
    this.handler.onEnd();
    this.finish();
  }

  close(): void {
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.handler.onClose(null);
  }
}

/** `build`, with the session's `IP.src_addr` as the call's peer ('' when the session has none). */
function withPeer(build: AdminCallBuilder): AdminCallBuilder {
  return (md, body) => {
    const call = build(md, body);
    if (call instanceof L7Error) return call;
    const src = (md.IP as { src_addr?: unknown } | undefined)?.src_addr;
    return { ...call, peer: typeof src === 'string' ? src : '' };
  };
}

/**
 * A virtual byte-stream cluster whose every connection is an {@link AdminConnection} that asks the
 * admin API what `build` makes of the session (L7mpController, Prometheus).
 */
export function adminCluster(name: string, description: string, build: AdminCallBuilder): ProtocolModule {
  return {
    name,
    kind: 'byte',
    cluster: {
      schema: Type.Object({ protocol: Type.Literal(name) }, { description }),
      virtual: true,
      create: (cfg, ctx) => ({
        connect: (s) => Promise.resolve(new AdminConnection(cfg.name, s.metadata, withPeer(build), ctx.admin)),
        close() {},
      }),
    },
  };
}
