/**
 * Reads the JSONSocket header off a fresh transport connection: the first message on a datagram
 * transport; the first complete JSON object on a byte stream (what follows it is payload). Set as
 * the transport's handler until the header is in; not on the packet path after that.
 */
import type { Connection, ConnectionHandler } from '../types.ts';
import type { L7Error } from '../../common/errors.ts';
import { JsonObjectScanner, MAX_HEADER_BYTES, MAX_HEADER_DEPTH, Scan } from './codec.ts';

/** What the owner of a {@link HeaderReader} is told. */
export interface HeaderSink {
  /** The header bytes (maybe not valid JSON: the owner checks), and payload bytes that followed it on a byte stream. */
  header(bytes: Buffer, rest: Buffer | null): void;
  /**
   * A byte stream whose header cannot be one: longer than {@link MAX_HEADER_BYTES} or nested
   * deeper than {@link MAX_HEADER_DEPTH}; `reason` says which. The owner answers (400) and closes.
   */
  invalid(reason: string): void;
  /** The connection ended or closed before a header came. */
  gone(err: L7Error | null): void;
}

export class HeaderReader implements ConnectionHandler {
  private readonly conn: Connection;
  private readonly sink: HeaderSink;
  /** Chunks of an incomplete header on a byte stream, and their total length. */
  private chunks: Buffer[] = [];
  private length = 0;
  private readonly scanner = new JsonObjectScanner();
  private done = false;
  /** Creation time, for the listener's header timeout. Unit: ms (Date.now()). */
  readonly since = Date.now();

  constructor(conn: Connection, sink: HeaderSink) {
    this.conn = conn;
    this.sink = sink;
  }

  onData(data: Buffer): void {
    if (this.done) return;
    if (this.conn.kind === 'datagram') {
      this.finish(data, null);
      return;
    }
    // Each byte is scanned once, and the chunks are joined once, when the header is complete.
    const end = this.scanner.scan(data);
    if (end === Scan.Incomplete) {
      this.chunks.push(data);
      this.length += data.length;
      if (this.length > MAX_HEADER_BYTES) this.fail(`header longer than ${MAX_HEADER_BYTES} bytes`);
      return;
    }
    if (end === Scan.TooDeep) {
      this.fail(`JSON header nested deeper than ${MAX_HEADER_DEPTH} levels`);
      return;
    }
    if (end !== Scan.NotObject && this.length + end > MAX_HEADER_BYTES) {
      // Complete, but too long: the limit holds however the bytes were chunked.
      this.fail(`header longer than ${MAX_HEADER_BYTES} bytes`);
      return;
    }
    const acc = this.chunks.length === 0 ? data : Buffer.concat([...this.chunks, data]);
    // Not an object: the owner's parser answers 400. Else the header, and the payload after it.
    if (end === Scan.NotObject) this.finish(acc, null);
    else {
      const at = this.length + end;
      this.finish(acc.subarray(0, at), at < acc.length ? acc.subarray(at) : null);
    }
  }

  private finish(bytes: Buffer, rest: Buffer | null): void {
    this.done = true;
    this.release();
    this.sink.header(bytes, rest);
  }

  private fail(reason: string): void {
    this.done = true;
    this.release();
    this.sink.invalid(reason);
  }

  private release(): void {
    this.chunks = [];
    this.length = 0;
  }

  onDrain(): void {}

  onEnd(): void {
    if (this.done) return;
    this.done = true;
    this.sink.gone(null);
  }

  onClose(err: L7Error | null): void {
    if (this.done) return;
    this.done = true;
    this.sink.gone(err);
  }
}
