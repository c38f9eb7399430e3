/**
 * Unix stream-socket listener. Linux has no SO_REUSEPORT for AF_UNIX, so the listener lives on one
 * worker (the runtime places it). A stale socket file (left by a crash) is detected by a connect
 * probe and replaced; a live one is a bind error. The file is removed on close (l7mp removed it at
 * exit only); connections still open then (a peer that never closes its side) are ended and
 * destroyed once flushed, so closing never waits on a peer. Fixes l7mp bug B8: `/UNIX/filename` is set.
 */
import fs from 'node:fs';
import net from 'node:net';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { ListenerContext, ListenerInstance, ListenerSpecContext } from '../types.ts';
import type { ReadBuffer } from '../core/read-buffer.ts';
import { SocketConnection, SocketServer } from '../core/socket-connection.ts';
import type { UdsListenerSpec } from './config.ts';

/** Remove `path` if it is a socket file that nobody listens on; reject if someone does. */
export async function clearStaleSocket(path: string, listenerName: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return; // no file
  }
  if (!st.isSocket()) {
    throw new L7Error(ErrorCode.ListenerBind, `listener "${listenerName}": ${path} exists and is not a socket`);
  }
  const live = await new Promise<boolean>((resolve) => {
    const c = net.createConnection({ path });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    // EPROTOTYPE: a live socket of another type (SOCK_DGRAM) is bound there; only a refused
    // connect means nobody is.
    c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'EPROTOTYPE'));
  });
  if (live) throw new L7Error(ErrorCode.ListenerBind, `listener "${listenerName}": ${path} is in use by another process`);
  fs.rmSync(path, { force: true });
}

export class UdsListener implements ListenerInstance {
  private readonly name: string;
  private readonly spec: UdsListenerSpec;
  private readonly ctx: ListenerContext;
  private readonly server: SocketServer;
  private bound = false;
  private closed = false;

  constructor(cfg: ListenerSpecContext<UdsListenerSpec>, ctx: ListenerContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
    this.ctx = ctx;
    this.server = new SocketServer((sock, reader) => this.onConnection(sock, reader));
  }

  async start(): Promise<void> {
    await clearStaleSocket(this.spec.filename, this.name);
    await this.server.listen({ path: this.spec.filename }, this.name, `unix:${this.spec.filename}`, this.ctx);
    this.bound = true;
  }

  private onConnection(sock: net.Socket, reader: ReadBuffer | null): void {
    const conn = new SocketConnection(sock, 'downstream', `unix:${this.spec.filename}`, 'unix-peer', reader);
    const seq = this.ctx.nextSessionSeq();
    this.ctx.accept(conn, { UNIX: { filename: this.spec.filename } }, `UNIX:${this.name}-${seq}`);
  }

  /**
   * Drain: stop listening (net.Server removes the socket file, so new connects fail with ENOENT);
   * the connections accepted so far carry on.
   */
  drain(): void {
    this.server.drain();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.server.close();
    // net.Server unlinks its path on close; make sure no file is left if it did not.
    if (this.bound) fs.rmSync(this.spec.filename, { force: true });
  }

  describe(): Record<string, unknown> {
    return { protocol: 'UnixDomainSocket', filename: this.spec.filename };
  }
}
