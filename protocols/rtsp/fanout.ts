/**
 * Fan-out (listener option `fanout`): a track that is already flowing through this listener is
 * served to the next client from that flow, with one upstream SETUP/PLAY in all.
 *
 * ```
 *                       ┌─► Tap ═ child session ═ [reader 1 client pinhole] ─► client 1
 *  server ─► [server  ] │
 *   RTP      [pinhole ] ─► Tap ═ child session ═ [reader 2 client pinhole] ─► client 2
 *            (hub)      └─► ...           readers' RTCP (Tap.send) ─► server's RTCP port
 * ```
 * The hub owns the server-side pinhole pair of the first client's SETUP (its "owner"); every
 * client, the owner included, is a reader: a pair of {@link Tap}s, each the upstream end of a
 * child session whose source is the reader's client pinhole. A tap's queue is the kernel-bound
 * send queue of its reader's socket: above `reader_queue` datagrams, the next ones to that reader
 * are dropped and counted (`reader_drops`); the other readers do not wait. The hub ends when its
 * last reader leaves; the owner's control connection then tears the upstream session down.
 */
import { ConnStats } from '../types.ts';
import type { Connection, ConnectionHandler } from '../types.ts';
import { PendingHandler } from '../core/hold.ts';
import type { PinholePair, PinholeSocket } from './pinhole.ts';
import type { RtcpSenderInfo } from '../core/rtcp.ts';

/**
 * `/RTP` metadata of a track's relays, shared by its RTP and RTCP relays (and by every reader of a
 * shared track): the fields of the last RTCP sender report seen on the track's RTCP pinholes, and
 * how many were seen. Absent until the first one.
 */
export type TrackRtp = Partial<RtcpSenderInfo> & { sender_reports?: number };

/** The upstream end of one reader's RTP or RTCP relay. */
export class Tap implements Connection {
  readonly kind = 'datagram' as const;
  readonly stats = new ConnStats();
  readonly local: string;
  readonly remote: string;
  private handler: ConnectionHandler = new PendingHandler();
  private closed = false;
  private readonly hub: Hub;
  private readonly rtcp: boolean;
  /** The reader's client-facing socket: its send queue is this tap's queue. */
  private readonly out: PinholeSocket;

  constructor(hub: Hub, rtcp: boolean, out: PinholeSocket) {
    this.hub = hub;
    this.rtcp = rtcp;
    this.out = out;
    this.local = `fanout:${hub.key}`;
    this.remote = (rtcp ? hub.server.rtcp : hub.server.rtp).remote;
  }

  /** A datagram of the shared flow for this reader; dropped (counted) while the reader's queue is full. */
  deliver(d: Buffer): void {
    if (this.closed) return;
    if (this.out.sendQueueCount() >= this.hub.queueLimit) {
      this.stats.drops++;
      this.hub.readerDrops++;
      return;
    }
    this.stats.rxPackets++;
    this.stats.rxBytes += d.length;
    this.handler.onData(d);
  }

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) prev.flushTo(h);
  }

  /** What the reader sent: its RTCP goes to the server; RTP from a reader is not for a shared flow (dropped). */
  send(data: Buffer): boolean {
    if (this.closed || !this.rtcp) {
      this.stats.drops++;
      return true;
    }
    this.stats.txPackets++;
    this.stats.txBytes += data.length;
    this.hub.server.rtcp.send(data);
    return true;
  }

  pause(): void {}
  resume(): void {}
  end(): boolean {
    return false;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handler.onClose(null);
  }
}

/** One reader: its RTP and RTCP taps. */
export interface Reader {
  rtp: Tap;
  rtcp: Tap;
}

/** One shared track: the server-side pinholes and the readers fed from them. */
export class Hub {
  readonly key: string;
  readonly server: PinholePair;
  /** The track URL and the SSRC the server announced, for local SETUP answers. */
  readonly url: string;
  readonly ssrc: string | null;
  readonly queueLimit: number;
  readonly readers = new Set<Reader>();
  /** The control connection whose upstream session feeds this hub. */
  readonly owner: object;
  /** RTP sequence number and timestamp of the last packet, for a local PLAY answer's RTP-Info. */
  lastSeq = -1;
  lastTs = 0;
  /** The upstream PLAY succeeded: the flow is there. */
  playing = false;
  readerDrops = 0;
  ended = false;
  /** `/RTP` of the shared track (its readers' relays show it). */
  rtp: TrackRtp = {};
  private readonly onEnd: (h: Hub) => void;

  constructor(key: string, url: string, ssrc: string | null, server: PinholePair, owner: object, queueLimit: number, onEnd: (h: Hub) => void) {
    this.key = key;
    this.url = url;
    this.ssrc = ssrc;
    this.server = server;
    this.owner = owner;
    this.queueLimit = queueLimit;
    this.onEnd = onEnd;
    const hub = this;
    server.rtp.setHandler({
      onData(d: Buffer): void {
        if (d.length >= 12) {
          hub.lastSeq = ((d[2] as number) << 8) | (d[3] as number);
          hub.lastTs = d.readUInt32BE(4);
        }
        for (const r of hub.readers) r.rtp.deliver(d);
      },
      onDrain(): void {},
      onEnd(): void {},
      onClose(): void {
        hub.end();
      },
    });
    server.rtcp.setHandler({
      onData(d: Buffer): void {
        for (const r of hub.readers) r.rtcp.deliver(d);
      },
      onDrain(): void {},
      onEnd(): void {},
      onClose(): void {},
    });
  }

  /** A new reader whose client-facing pair is `client`. */
  addReader(client: PinholePair): Reader {
    const r = { rtp: new Tap(this, false, client.rtp), rtcp: new Tap(this, true, client.rtcp) };
    this.readers.add(r);
    return r;
  }

  /** A reader left; the last one ends the hub. */
  removeReader(r: Reader): void {
    if (!this.readers.delete(r)) return;
    r.rtp.close();
    r.rtcp.close();
    if (this.readers.size === 0) this.end();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const r of this.readers) {
      r.rtp.close();
      r.rtcp.close();
    }
    this.readers.clear();
    this.onEnd(this);
  }
}

/** The hubs of one listener instance, by key (the track URL's path). */
export class HubRegistry {
  readonly hubs = new Map<string, Hub>();
  /** Readers served from a flow that was already there (local SETUP answers). */
  sharedReaders = 0;
  /** Datagrams dropped for slow readers, of hubs that ended. */
  endedDrops = 0;

  get(key: string): Hub | undefined {
    const h = this.hubs.get(key);
    return h !== undefined && !h.ended ? h : undefined;
  }

  add(h: Hub): void {
    this.hubs.set(h.key, h);
  }

  remove(h: Hub): void {
    if (this.hubs.get(h.key) === h) this.hubs.delete(h.key);
    this.endedDrops += h.readerDrops;
  }

  /** Datagrams dropped for slow readers, all hubs. */
  get readerDrops(): number {
    let n = this.endedDrops;
    for (const h of this.hubs.values()) n += h.readerDrops;
    return n;
  }

  /** The hub key of a track URL: its path (clients name the proxy by different hosts). */
  static keyOf(url: string): string {
    try {
      return new URL(url).pathname;
    } catch {
      return url;
    }
  }
}
