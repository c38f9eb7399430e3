/**
 * The admin adapter: the connection of a cluster served by the process's admin API
 * (L7mpController, Prometheus). It reads the whole request body, as l7mp's controller did
 * (docs/l7mp-compat.md §2.2), hands the request to the main thread's admin server, and sends the
 * answer back as the stage's byte stream; the answer's status and headers go to the downstream
 * HTTP exchange when there is one. Then it ends, which ends the HTTP response.
 */
import { Type } from '@sinclair/typebox';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { AdminAnswer, AdminCall, Metadata, ProtocolModule } from '../types.ts';
import { BaseConnection } from './connection.ts';
import { defineProtocol } from './define.ts';
import { httpExchange, type HttpExchange } from './http.ts';
import { l7mpErrorAnswer, l7mpStatusMessage } from './l7mp-error.ts';

/** Largest request body an admin cluster reads, bytes (as the admin server). */
export const MAX_ADMIN_BODY = 1 << 20;

/** Builds the admin request from the session's metadata and the request body, or says why it cannot. */
export type AdminCallBuilder = (metadata: Metadata, body: Buffer) => AdminCall | L7Error;

export class AdminConnection extends BaseConnection {
  readonly kind = 'byte' as const;
  readonly local: string;
  readonly remote = '<ADMIN API>';
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private asked = false;
  private readonly metadata: Metadata;
  private readonly build: AdminCallBuilder;
  private readonly admin: (call: AdminCall) => Promise<AdminAnswer>;
  private readonly exchange: HttpExchange | undefined;

  constructor(clusterName: string, metadata: Metadata, build: AdminCallBuilder, admin: (call: AdminCall) => Promise<AdminAnswer>) {
    super();
    this.local = clusterName;
    this.metadata = metadata;
    this.build = build;
    this.admin = admin;
    this.exchange = httpExchange(metadata);
  }

  /** Once the request is complete, more body is dropped. */
  protected override writable(): boolean {
    return !this.asked;
  }

  /** A chunk of the request body; beyond {@link MAX_ADMIN_BODY} the request is answered 413. */
  protected override write(data: Buffer): boolean {
    this.size += data.length;
    if (this.size <= MAX_ADMIN_BODY) this.chunks.push(data);
    return true;
  }

  /** The request is complete: ask the admin API. */
  override end(): boolean {
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
    this.receive(Buffer.from(a.body.buffer, a.body.byteOffset, a.body.byteLength));
    this.handler.onEnd();
    this.finish(null);
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
 * A virtual byte-stream protocol whose every connection is an {@link AdminConnection} that asks
 * the admin API what `build` makes of the session (L7mpController, Prometheus).
 */
export function adminCluster(name: string, description: string, build: AdminCallBuilder): ProtocolModule {
  return defineProtocol({
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
  });
}
