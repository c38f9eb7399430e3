/**
 * The access log (`admin.access_log_path`): one JSON line per ended session, appended by the
 * worker that hosted it. Every worker opens the file itself with O_APPEND (flags `a`); a line goes
 * to the kernel in one write, and appends of whole writes to a regular file do not interleave, so
 * lines from different workers never mix mid-line. Writes are asynchronous (a write stream); when
 * the disk falls behind by more than {@link AccessLogOptions.maxBufferedBytes}, lines are dropped
 * and counted instead of buffering without bound.
 *
 * A line (keys in this order; counts are the proxy's view: `rx` = sent by that peer to the proxy,
 * `tx` = sent by the proxy to that peer; packets are datagrams or stream chunks):
 * ```json
 * {"time":"2025-01-01T00:00:00.000Z","worker":0,"session":"UDP:127.0.0.1:5000-127.0.0.1:9001-0",
 *  "listener":"gw","route":"gw-RuleList-0-Rule-0-Route-0","remote":"127.0.0.1:5000",
 *  "reason":"L7_ERR_SESSION_IDLE","duration_ms":1234,
 *  "rx_packets":5,"rx_bytes":50,"tx_packets":5,"tx_bytes":60,"drops":0,
 *  "stages":[{"role":"destination","cluster":"up","endpoint":"up-EndPoint-0","address":"127.0.0.1",
 *             "remote":"127.0.0.1:7000","rx_packets":5,"rx_bytes":60,"tx_packets":5,"tx_bytes":50,"drops":0}]}
 * ```
 */
import fs from 'node:fs';
import type { SessionRecord } from '../../actors/record.ts';
import type { Logger } from '../../common/log.ts';
import { sendDrops } from './stats.ts';

/** Tuning of an {@link AccessLog}. */
export interface AccessLogOptions {
  /** Bytes waiting for the disk above which new lines are dropped (default 8 MiB). Unit: bytes. */
  maxBufferedBytes?: number;
}

/** One access log line (with its newline) for a final session record. `end` = when it ended. */
export function accessLogLine(r: SessionRecord, worker: number, end: Date): string {
  return `${JSON.stringify({
    time: end.toISOString(),
    worker,
    session: r.name,
    listener: r.listener,
    route: r.route,
    remote: r.remote,
    reason: r.reason,
    duration_ms: r.durationMs,
    rx_packets: r.rxPackets,
    rx_bytes: r.rxBytes,
    tx_packets: r.txPackets,
    tx_bytes: r.txBytes,
    drops: r.drops + r.setupDrops + sendDrops(r),
    stages: r.stages.map((s) => ({
      role: s.role,
      cluster: s.cluster,
      endpoint: s.endpoint,
      address: s.address,
      remote: s.remote,
      rx_packets: s.rxPackets,
      rx_bytes: s.rxBytes,
      tx_packets: s.txPackets,
      tx_bytes: s.txBytes,
      drops: s.drops + s.setupDrops + sendDrops(s),
    })),
  })}\n`;
}

/** One worker's handle on the access log file. */
export class AccessLog {
  readonly path: string;
  /** Lines not written: the disk fell behind, or the file failed. */
  dropped = 0;
  private readonly stream: fs.WriteStream;
  private readonly max: number;
  private broken = false;

  constructor(path: string, log: Logger, opts: AccessLogOptions = {}) {
    this.path = path;
    this.max = opts.maxBufferedBytes ?? 8 << 20;
    this.stream = fs.createWriteStream(path, { flags: 'a' });
    this.stream.on('error', (err) => {
      if (!this.broken) log.error({ access_log_path: path, err: err.message }, 'access log failed; session lines are dropped from now on');
      this.broken = true;
    });
  }

  /** The file could not be opened or written; every line is dropped from then on. */
  get failed(): boolean {
    return this.broken;
  }

  /** Append the line of a session that ended on `worker`. Never throws. */
  write(r: SessionRecord, worker: number): void {
    if (this.broken || this.stream.writableLength > this.max) {
      this.dropped++;
      return;
    }
    this.stream.write(accessLogLine(r, worker, new Date()));
  }

  /** Flush what is buffered and close the file. Idempotent. */
  close(): Promise<void> {
    if (this.stream.closed || this.stream.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.stream.once('close', () => resolve());
      this.stream.end();
    });
  }
}
