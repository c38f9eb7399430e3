/**
 * JSONSocket listener (docs/l7mp-compat.md §5, server side). It runs a transport listener (UDP, TCP,
 * Unix socket or WebSocket) under its own name, so hand-offs between workers reach it, and reads
 * a JSON header off each transport session before the session exists:
 * ```
 *  transport conn ─► HeaderReader ─ bad header ─► reply 400/505, close
 *                                 └ good ──────► FramedConnection ─► session (metadata.JSONSocket = header)
 *                                                  route up: reply 200 │ route failed: reply 404/503...
 * ```
 * A transport connection that sends no complete header within `options.header_timeout` (a
 * deadline from accept, default 10 s; l7mp had none) gets a 408 reply and is closed, on every
 * transport: a byte stream (TCP, Unix) is destroyed once the reply is flushed, so a peer that
 * never sends its FIN cannot keep it; counted `header_timeout`. On a datagram transport (UDP,
 * Unix dgram) the first datagram is the header, so the deadline cannot be reached there.
 */
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { Connection, DatagramHandoff, ListenerContext, ListenerInstance, ListenerSpecContext, Metadata, ProtocolModule } from '../types.ts';
import { checkRequest, reply, statusMessage } from './codec.ts';
import { FramedConnection } from './framed.ts';
import { HeaderReader } from './header-reader.ts';
import { transportOf, type JsonSocketListenerSpec } from './config.ts';

/** Default `options.header_timeout`. Unit: s. */
export const DEFAULT_HEADER_TIMEOUT_S = 10;

export class JsonSocketListener implements ListenerInstance {
  private readonly name: string;
  private readonly ctx: ListenerContext;
  private readonly inner: ListenerInstance;
  private readonly transportProtocol: string;
  private readonly headerTimeoutMs: number;
  /** Transport connections still waiting for their header. */
  private readonly pending = new Map<Connection, HeaderReader>();
  private sweep: NodeJS.Timeout | null = null;
  private closed = false;

  /** @param transports the listener transports by `protocol` name. */
  constructor(cfg: ListenerSpecContext<JsonSocketListenerSpec>, ctx: ListenerContext, transports: ReadonlyMap<string, ProtocolModule>) {
    this.name = cfg.name;
    this.ctx = ctx;
    const t = transportOf(cfg.spec);
    const mod = transports.get(t.protocol);
    if (mod?.listener === undefined) throw new L7Error(ErrorCode.ConfigInvalid, `listener "${cfg.name}": spec.transport.protocol: JSONSocket cannot run over ${JSON.stringify(t.protocol)}`);
    this.transportProtocol = t.protocol;
    this.headerTimeoutMs = (cfg.spec.options?.header_timeout ?? DEFAULT_HEADER_TIMEOUT_S) * 1000;
    this.inner = mod.listener.create(
      { name: cfg.name, spec: t },
      {
        slot: ctx.slot,
        log: ctx.log,
        rateLog: ctx.rateLog,
        accept: (conn, metadata) => this.onTransport(conn, metadata),
        ownerOf: (key) => ctx.ownerOf(key),
        handoff: (slot, h) => ctx.handoff(slot, h),
        admit: (source) => ctx.admit(source),
        count: (c, n) => ctx.count(c, n),
        // The transport's own session names are not used; ours are JSONSocket:<listener>-<n>.
        nextSessionSeq: () => 0,
      },
    );
  }

  async start(): Promise<void> {
    await this.inner.start();
    if (this.headerTimeoutMs > 0) {
      this.sweep = setInterval(() => this.expire(), Math.min(1000, this.headerTimeoutMs));
      this.sweep.unref();
    }
  }

  private onTransport(conn: Connection, metadata: Metadata): void {
    if (this.closed) {
      conn.close();
      return;
    }
    const reader = new HeaderReader(conn, {
      header: (bytes, rest) => {
        this.pending.delete(conn);
        const h = checkRequest(bytes);
        if (!h.ok) {
          this.reject(conn, h.status, h.message);
          return;
        }
        const framed = new FramedConnection(conn, false);
        if (rest !== null) framed.onData(rest);
        this.ctx.accept(framed, { ...metadata, JSONSocket: h.header }, `JSONSocket:${this.name}-${this.ctx.nextSessionSeq()}`);
      },
      invalid: (reason) => {
        this.pending.delete(conn);
        this.reject(conn, 400, statusMessage(400, reason));
      },
      gone: () => {
        this.pending.delete(conn);
        conn.close();
      },
    });
    this.pending.set(conn, reader);
    conn.setHandler(reader);
  }

  private reject(conn: Connection, status: number, message: string): void {
    this.ctx.count('malformed');
    this.ctx.rateLog.warn(`jsonsocket-header:${this.name}`, { listener: this.name, peer: conn.remote, status, message }, 'JSONSocket header rejected');
    conn.send(reply(status, message));
    conn.close();
  }

  /**
   * No header within `header_timeout` (a deadline from accept, on every transport): 408, then the
   * transport is closed for good (a byte stream is destroyed once the reply is flushed, so a peer
   * that never sends its FIN cannot keep it). Counted `header_timeout`.
   */
  private expire(): void {
    const now = Date.now();
    for (const [conn, r] of this.pending) {
      if (now - r.since < this.headerTimeoutMs) continue;
      this.pending.delete(conn);
      this.ctx.count('header_timeout');
      conn.send(reply(408, statusMessage(408, `no JSONSocket header within ${this.headerTimeoutMs / 1000} s`)));
      if (conn.abort !== undefined) conn.abort();
      else conn.close();
    }
  }

  onHandoff(h: DatagramHandoff): void {
    this.inner.onHandoff?.(h);
  }

  /** The transport's drain: a stream transport stops listening; connections awaiting their header may still send it. */
  drain(): void {
    this.inner.drain?.();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweep !== null) clearInterval(this.sweep);
    for (const conn of this.pending.keys()) conn.close();
    this.pending.clear();
    await this.inner.close();
  }

  describe(): Record<string, unknown> {
    return { ...this.inner.describe(), protocol: 'JSONSocket', transport: this.transportProtocol, awaiting_header: this.pending.size };
  }
}
