/**
 * A byte-stream {@link Connection} over a child process: `send` writes to its stdin, its stdout
 * reads go to the handler. Half-close as the stream protocols: EOF on stdout is `onEnd`, `end()`
 * closes stdin. The connection closes when the process has exited and its pipes are closed
 * (`'close'`): exit code 0 is a normal end, anything else an upstream error. `close()` ends stdin,
 * sends SIGTERM, and SIGKILL after the kill timeout.
 */
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import { BaseConnection } from '../core/connection.ts';

export type Child = ChildProcessByStdio<Writable, Readable, null>;

export class ExecConnection extends BaseConnection {
  readonly kind = 'byte' as const;
  readonly local: string;
  readonly remote: string;
  private killTimer: NodeJS.Timeout | null = null;
  private readonly child: Child;
  private readonly killTimeoutMs: number;

  constructor(child: Child, program: string, killTimeoutMs: number) {
    super();
    this.child = child;
    this.killTimeoutMs = killTimeoutMs;
    this.local = 'exec';
    this.remote = `exec:${program}[${child.pid}]`;
    child.stdout.on('data', (chunk: Buffer) => this.receive(chunk));
    child.stdout.on('end', () => this.receiveEnd());
    child.stdout.on('error', () => {});
    child.stdin.on('drain', () => this.handler.onDrain());
    // EPIPE when the process exits without reading all of its input: the exit decides the outcome.
    child.stdin.on('error', () => {});
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (this.killTimer !== null) clearTimeout(this.killTimer);
      if (code === 0 || this.closed) this.finish(null);
      else this.finish(new L7Error(ErrorCode.UpstreamReset, `${this.remote} exited with ${code === null ? `signal ${signal}` : `code ${code}`}`));
    });
  }

  protected override writable(): boolean {
    const stdin = this.child.stdin;
    return !stdin.writableEnded && !stdin.destroyed;
  }

  protected override write(data: Buffer): boolean {
    return this.child.stdin.write(data);
  }

  override pause(): void {
    this.child.stdout.pause();
  }

  override resume(): void {
    this.child.stdout.resume();
  }

  override end(): boolean {
    if (!this.closed && !this.child.stdin.writableEnded) this.child.stdin.end();
    return true;
  }

  protected override shutdown(): void {
    this.kill();
  }

  /** SIGTERM now (stdin closed first), SIGKILL after the kill timeout if it has not exited. */
  kill(): void {
    const c = this.child;
    if (!c.stdin.writableEnded) c.stdin.end();
    if (c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGTERM');
    if (this.killTimer === null) {
      this.killTimer = setTimeout(() => {
        if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }, this.killTimeoutMs);
      this.killTimer.unref();
    }
  }
}
