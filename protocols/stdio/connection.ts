/**
 * A byte-stream {@link Connection} over the process's stdin (reads) and stdout (writes). It cannot
 * half-close (the proxy's stdout stays open for others): `end()` returns false.
 */
import { BaseConnection } from '../core/connection.ts';
import { pauseStdin, subscribeStdin, unsubscribeStdin, type StdinSubscriber } from './streams.ts';

export class StdioConnection extends BaseConnection implements StdinSubscriber {
  readonly kind = 'byte' as const;
  readonly local = 'stdio';
  readonly remote = 'stdio';

  constructor() {
    super();
    subscribeStdin(this);
  }

  onStdin(chunk: Buffer): void {
    this.receive(chunk);
  }

  onStdinEnd(): void {
    this.receiveEnd();
  }

  // end(): the proxy's stdout is not ours to close, no half-close (the default).

  protected override write(data: Buffer): boolean {
    const ok = process.stdout.write(data);
    if (!ok) process.stdout.once('drain', this.onDrain);
    return ok;
  }

  private readonly onDrain = (): void => this.handler.onDrain();

  override pause(): void {
    pauseStdin(true);
  }
  override resume(): void {
    pauseStdin(false);
  }

  protected override shutdown(): void {
    unsubscribeStdin(this);
    process.stdout.removeListener('drain', this.onDrain);
  }
}
