/**
 * A byte-stream {@link Connection} over the process's stdin (reads) and stdout (writes). It cannot
 * half-close (the proxy's stdout stays open for others): `end()` returns false.
 */
import { ConnStats } from '../types.ts';
import type { Connection, ConnectionHandler } from '../types.ts';
import { PendingHandler } from '../udp/listener.ts';
import { pauseStdin, subscribeStdin, unsubscribeStdin, type StdinSubscriber } from './streams.ts';

export class StdioConnection implements Connection, StdinSubscriber {
  readonly kind = 'byte' as const;
  readonly stats = new ConnStats();
  readonly local = 'stdio';
  readonly remote = 'stdio';
  private handler: ConnectionHandler = new PendingHandler();
  private closed = false;

  constructor() {
    subscribeStdin(this);
  }

  onStdin(chunk: Buffer): void {
    if (this.closed) return;
    this.stats.rxPackets++;
    this.stats.rxBytes += chunk.length;
    this.handler.onData(chunk);
  }

  onStdinEnd(): void {
    if (!this.closed) this.handler.onEnd();
  }

  /** The proxy's stdout is not ours to close: no half-close. */
  end(): boolean {
    return false;
  }

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) prev.flushTo(h);
  }

  send(data: Buffer): boolean {
    if (this.closed) {
      this.stats.drops++;
      return true;
    }
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
    const ok = process.stdout.write(data);
    if (!ok) process.stdout.once('drain', this.onDrain);
    return ok;
  }

  private readonly onDrain = (): void => this.handler.onDrain();

  pause(): void {
    pauseStdin(true);
  }
  resume(): void {
    pauseStdin(false);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    unsubscribeStdin(this);
    process.stdout.removeListener('drain', this.onDrain);
    this.handler.onClose(null);
  }
}
