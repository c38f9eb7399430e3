/**
 * A byte-stream {@link Connection} over a child process: `send` writes to its stdin, its stdout
 * reads go to the handler. Half-close as the stream protocols: EOF on stdout is `onEnd`, `end()`
 * closes stdin. The connection closes when the process has exited and its pipes are closed
 * (`'close'`): exit code 0 is a normal end, anything else an upstream error. `close()` ends stdin,
 * sends SIGTERM, and SIGKILL after the kill timeout.
 */
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import { ConnStats } from '../types.ts';
import type { Connection, ConnectionHandler } from '../types.ts';
import { PendingHandler } from '../udp/listener.ts';

export type Child = ChildProcessByStdio<Writable, Readable, null>;

export class ExecConnection implements Connection {
  readonly kind = 'byte' as const;
  readonly stats = new ConnStats();
  readonly local: string;
  readonly remote: string;
  private handler: ConnectionHandler = new PendingHandler();
  private closed = false;
  private killTimer: NodeJS.Timeout | null = null;
  private readonly child: Child;
  private readonly killTimeoutMs: number;

  constructor(child: Child, program: string, killTimeoutMs: number) {
    this.child = child;
    this.killTimeoutMs = killTimeoutMs;
    this.local = 'exec';
    this.remote = `exec:${program}[${child.pid}]`;
    child.stdout.on('data', (chunk: Buffer) => {
      this.stats.rxPackets++;
      this.stats.rxBytes += chunk.length;
      this.handler.onData(chunk);
    });
    child.stdout.on('end', () => this.handler.onEnd());
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

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) prev.flushTo(h);
  }

  send(data: Buffer): boolean {
    const stdin = this.child.stdin;
    if (this.closed || stdin.writableEnded || stdin.destroyed) {
      this.stats.drops++;
      return true;
    }
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
    return stdin.write(data);
  }

  pause(): void {
    this.child.stdout.pause();
  }

  resume(): void {
    this.child.stdout.resume();
  }

  end(): boolean {
    if (!this.closed && !this.child.stdin.writableEnded) this.child.stdin.end();
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.kill();
    this.finish(null);
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

  private finish(err: L7Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.handler.onClose(err);
  }
}
