/**
 * One interleaved channel (RFC 2326 §10.12) of an RTSP control connection as a datagram
 * {@link Connection}: what it is sent leaves as a `$` frame on that connection, and the frames
 * the control connection parses on its channel are its reads. It lets a pinhole relay (a child
 * session) join a UDP pinhole to interleaved media: interleaved in, UDP out, and the reverse.
 */
import type { L7Error } from '../../common/errors.ts';
import { ConnStats } from '../types.ts';
import type { Connection, ConnectionHandler } from '../types.ts';
import { PendingHandler } from '../core/hold.ts';

/** Writes one frame on `channel`; returns false if it was dropped (counted by the caller's stats). */
export type FrameWriter = (channel: number, payload: Buffer) => boolean;

export class ChannelConnection implements Connection {
  readonly kind = 'datagram' as const;
  readonly stats = new ConnStats();
  readonly local: string;
  readonly remote: string;
  readonly channel: number;
  /** Sees every frame read, before the relay does (the RTCP channel: sender reports). */
  observer: ((d: Buffer) => void) | null = null;
  private handler: ConnectionHandler = new PendingHandler();
  private closed = false;
  private readonly write: FrameWriter;

  constructor(channel: number, write: FrameWriter, local: string, remote: string) {
    this.channel = channel;
    this.write = write;
    this.local = `${local}#${channel}`;
    this.remote = `${remote}#${channel}`;
  }

  /** A frame the control connection read on this channel. */
  deliver(payload: Buffer): void {
    if (this.closed) return;
    this.stats.rxPackets++;
    this.stats.rxBytes += payload.length;
    if (this.observer !== null) this.observer(payload);
    this.handler.onData(payload);
  }

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) prev.flushTo(h);
  }

  send(data: Buffer): boolean {
    if (this.closed || !this.write(this.channel, data)) {
      this.stats.drops++;
      return true;
    }
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
    // A datagram source is never paused: a full control connection drops (the writer counts it).
    return true;
  }

  pause(): void {}
  resume(): void {}
  end(): boolean {
    return false;
  }

  close(err: L7Error | null = null): void {
    if (this.closed) return;
    this.closed = true;
    this.handler.onClose(err);
  }
}
