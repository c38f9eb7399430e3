/**
 * Reads the JSONSocket header off a fresh transport connection: the first message on a datagram
 * transport; the first complete JSON object on a byte stream (what follows it is payload). Set as
 * the transport's handler until the header is in; not on the packet path after that.
 */
import type { Connection, ConnectionHandler } from '../types.ts';
import type { L7Error } from '../../runtime/common/errors.ts';
import { jsonObjectEnd, MAX_HEADER_BYTES } from './codec.ts';

/** What the owner of a {@link HeaderReader} is told. */
export interface HeaderSink {
  /** The header bytes (maybe not valid JSON: the owner checks), and payload bytes that followed it on a byte stream. */
  header(bytes: Buffer, rest: Buffer | null): void;
  /** The connection ended or closed before a header came. */
  gone(err: L7Error | null): void;
}

export class HeaderReader implements ConnectionHandler {
  private readonly conn: Connection;
  private readonly sink: HeaderSink;
  private acc: Buffer | null = null;
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
    const acc = this.acc === null ? data : Buffer.concat([this.acc, data]);
    const end = jsonObjectEnd(acc);
    if (end === -2) this.finish(acc, null); // not an object: the owner answers 400
    else if (end === -1) {
      if (acc.length > MAX_HEADER_BYTES) this.finish(Buffer.from(`header longer than ${MAX_HEADER_BYTES} bytes`), null);
      else this.acc = acc;
    } else this.finish(acc.subarray(0, end), end < acc.length ? acc.subarray(end) : null);
  }

  private finish(bytes: Buffer, rest: Buffer | null): void {
    this.done = true;
    this.acc = null;
    this.sink.header(bytes, rest);
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
