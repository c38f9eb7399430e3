/**
 * The connection of a virtual cluster (Echo, Discard, Logger): no socket, only a function of what
 * the session sends. `reply` maps each sent message to what comes back (null: nothing).
 */
import { ConnStats } from '../types.ts';
import type { Connection, ConnectionHandler, StreamKind } from '../types.ts';
import type { L7Error } from '../../runtime/common/errors.ts';

const noHandler: ConnectionHandler = { onData() {}, onDrain() {}, onEnd() {}, onClose() {} };

export class VirtualConnection implements Connection {
  readonly kind: StreamKind;
  /** Each message in is at most one message out: the input's framing is kept. */
  readonly passThrough = true;
  readonly stats = new ConnStats();
  readonly local: string;
  readonly remote = '<VIRTUAL>';
  private handler: ConnectionHandler = noHandler;
  private closed = false;
  private ended = false;
  private readonly reply: (data: Buffer) => Buffer | null;

  constructor(kind: StreamKind, clusterName: string, reply: (data: Buffer) => Buffer | null) {
    this.kind = kind;
    this.local = clusterName;
    this.reply = reply;
  }

  setHandler(h: ConnectionHandler): void {
    this.handler = h;
  }

  send(data: Buffer): boolean {
    if (this.closed) {
      this.stats.drops++;
      return true;
    }
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
    const out = this.reply(data);
    if (out !== null) {
      this.stats.rxPackets++;
      this.stats.rxBytes += out.length;
      this.handler.onData(out);
    }
    return true;
  }

  pause(): void {}
  resume(): void {}

  /** The virtual peer has nothing more to say after the session's end either: it ends too. */
  end(): boolean {
    if (!this.closed && !this.ended) {
      this.ended = true;
      this.handler.onEnd();
    }
    return true;
  }

  close(): void {
    this.finish(null);
  }

  finish(err: L7Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.handler.onClose(err);
  }
}
