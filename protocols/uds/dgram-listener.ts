/**
 * Unix datagram (SOCK_DGRAM) listener: one socket bound to `filename` (owned by the main thread,
 * see dgram-host.ts), served by one worker; a session per sending socket path, answered with
 * sendto() to that path. Senders that did not bind a path (anonymous) all land in one session whose
 * replies are dropped and counted. The file is removed when the listener closes; a stale one is
 * replaced as for stream sockets.
 */
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { ListenerContext, ListenerInstance, ListenerSpecContext } from '../types.ts';
import { UdsDgramConnection } from './dgram.ts';
import { openUnixDgram, type UnixDgram } from './dgram-relay.ts';
import { clearStaleSocket } from './listener.ts';
import type { UdsListenerSpec } from './config.ts';

export class UdsDgramListener implements ListenerInstance {
  private readonly name: string;
  private readonly spec: UdsListenerSpec;
  private readonly ctx: ListenerContext;
  private sock: UnixDgram | null = null;
  private readonly peers = new Map<string, UdsDgramConnection>();
  private closed = false;

  constructor(cfg: ListenerSpecContext<UdsListenerSpec>, ctx: ListenerContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
    this.ctx = ctx;
  }

  async start(): Promise<void> {
    const path = this.spec.filename;
    await clearStaleSocket(path, this.name);
    try {
      this.sock = await openUnixDgram(path, {
        data: (buf, from) => this.onDatagram(buf, from),
        sent: (packets, bytes, to) => this.peers.get(to)?.sent(packets, bytes),
        sendError: (msg, to) => this.peers.get(to)?.sendFailed(msg),
        error: (msg) => {
          this.ctx.log.error({ listener: this.name, err: msg }, 'Unix datagram listener socket failed');
          for (const c of [...this.peers.values()]) c.fail(msg);
        },
      });
    } catch (e) {
      throw new L7Error(ErrorCode.ListenerBind, `listener "${this.name}": cannot bind unix dgram ${path}: ${(e as Error).message}`, { cause: e });
    }
    if (this.closed) this.sock.close();
  }

  private onDatagram(buf: Buffer, from: string): void {
    const known = this.peers.get(from);
    if (known !== undefined) {
      known.deliver(buf);
      return;
    }
    if (this.closed || this.sock === null) return;
    // Admission before anything is allocated for a new sender (a drain refuses it here).
    if (!this.ctx.admit(undefined)) return;
    const conn = new UdsDgramConnection(this.sock, this.spec.filename, from, 'downstream', (c) => {
      if (this.peers.get(c.peer) === c) this.peers.delete(c.peer);
    });
    this.peers.set(from, conn);
    conn.deliver(buf);
    // l7mp's UNIX metadata (with the path set: bug B8 fixed), plus the sender's path.
    this.ctx.accept(conn, { UNIX: { filename: this.spec.filename, peer: from } }, `UNIX:${this.name}-${this.ctx.nextSessionSeq()}`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.peers.values()]) c.close();
    // The host removes the socket file when it closes the socket.
    this.sock?.close();
    this.sock = null;
  }

  describe(): Record<string, unknown> {
    return { protocol: 'UnixDomainSocket', type: 'dgram', filename: this.spec.filename, peers: this.peers.size };
  }
}
