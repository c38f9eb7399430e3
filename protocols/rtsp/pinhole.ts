/**
 * RTP/RTCP pinholes: UDP sockets the RTSP proxy opens for a media track, one pair towards the
 * client and one towards the server, each bound to an even/odd port pair (RTP on the even port,
 * RTCP on the next: RFC 3550 §11) taken from the listener's `rtp_ports` range.
 *
 * A {@link PinholeSocket} is a plain connected UDP {@link Connection}: connected to the peer the
 * SETUP exchange named (the client's `client_port`, the server's `server_port`), so the kernel
 * drops datagrams from anyone else. An RTP pinhole offers `spliceFd` like the UDP protocol's
 * connections: an RTP relay (a child session of two pinholes) is spliced in the kernel under
 * `-o init`, at the first datagram from the server side or after `offload.establish` datagrams
 * from the client side. RTCP pinholes do not: their sender reports are read here, on every
 * datagram (`observer`), and RTCP is a few packets a second at most (RFC 3550 §6.2: 5% of the
 * session bandwidth, one report per 5 s per member).
 *
 * While spliced, the session that spliced it owns the close: `close()` waits for it to unsplice
 * (it clears `spliceErrorHook`, then closes), so a socket never leaves the kernel path by closing.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import { dgramFd, dgramReading } from '../../common/dgram-fd.ts';
import { ConnStats } from '../types.ts';
import type { Connection, ConnectionHandler } from '../types.ts';
import { PendingHandler } from '../core/hold.ts';

/** `a.b.c.d` for an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener sees), else the address. */
export function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}

/** A bound UDP socket of a pinhole; connected to its peer before it carries media. */
export class PinholeSocket implements Connection {
  readonly kind = 'datagram' as const;
  readonly stats = new ConnStats();
  readonly local: string;
  remote = '-';
  /** The bound port. */
  readonly port: number;
  /** Set on an RTP pinhole only (see the module comment). */
  readonly spliceFd?: () => number;
  readonly spliceReading?: (reading: boolean) => boolean;
  /** `offload.establish` of the relay whose source this pinhole is (the client side). */
  spliceAfter = 0;
  /** Sees every datagram received, before the relay does (RTCP: sender reports). Control path: RTCP only. */
  observer: ((d: Buffer) => void) | null = null;
  private handler: ConnectionHandler = new PendingHandler();
  private closed = false;
  private readonly sock: dgram.Socket;

  /** `spliceable`: an RTP pinhole (offers {@link Connection.spliceFd}). */
  constructor(sock: dgram.Socket, spliceable = true) {
    this.sock = sock;
    const a = sock.address();
    this.port = a.port;
    this.local = net.isIPv6(a.address) ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    sock.on('message', this.onMessage);
    sock.on('error', this.onError);
    if (spliceable) {
      this.spliceFd = () => (this.closed || this.remote === '-' ? -1 : dgramFd(this.sock));
      this.spliceReading = (reading: boolean) => !this.closed && dgramReading(this.sock, reading);
    }
  }

  /** Non-null while a session has this socket spliced (set and cleared by that session). */
  spliceErrorHook: ((err: Error) => void) | null = null;

  /** Connect to the peer; resolves false if the socket closed or connect failed (the caller releases the pinhole). */
  connect(address: string, port: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(false);
      try {
        this.sock.connect(port, address, (err?: Error) => {
          if (err !== undefined && err !== null) return resolve(false);
          this.remote = net.isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
          resolve(!this.closed);
        });
      } catch {
        resolve(false);
      }
    });
  }

  setHandler(h: ConnectionHandler): void {
    const prev = this.handler;
    this.handler = h;
    if (prev instanceof PendingHandler) prev.flushTo(h);
  }

  send(data: Buffer): boolean {
    if (this.closed || this.remote === '-') {
      this.stats.drops++;
      return true;
    }
    this.sock.send(data, this.onSent);
    return true;
  }

  /** Datagrams queued in the kernel-bound send queue of libuv (a slow path out: the fan-out drop policy reads it). */
  sendQueueCount(): number {
    return this.closed ? 0 : this.sock.getSendQueueCount();
  }

  private readonly onSent = (err: Error | null, bytes?: number): void => {
    this.stats.sendResult(err, bytes);
  };

  pause(): void {}
  resume(): void {}
  end(): boolean {
    return false;
  }

  close(): void {
    // Spliced: its relay is stopping (whoever closes a pinhole stops its relay first), and unsplices, then closes it.
    if (this.spliceErrorHook !== null) return;
    this.finish(null);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private finish(err: L7Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.removeListener('message', this.onMessage);
    try {
      this.sock.close();
    } catch {
      // already closed
    }
    this.handler.onClose(err);
  }

  private readonly onMessage = (msg: Buffer): void => {
    this.stats.rxPackets++;
    this.stats.rxBytes += msg.length;
    if (this.observer !== null) this.observer(msg);
    this.handler.onData(msg);
  };

  private readonly onError = (err: Error): void => {
    if (this.spliceErrorHook !== null) {
      this.spliceErrorHook(err);
      return;
    }
    // A peer's port closed (ICMP): count it and keep the pinhole; RTSP ends it (TEARDOWN, idle).
    if ((err as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
      this.stats.dropEconnrefused++;
      return;
    }
    this.finish(new L7Error(ErrorCode.UpstreamReset, `RTP pinhole ${this.local}: ${err.message}`, { cause: err }));
  };
}

/** An RTP/RTCP pair of pinhole sockets on ports p, p+1. */
export interface PinholePair {
  rtp: PinholeSocket;
  rtcp: PinholeSocket;
}

function bindOne(address: string, port: number): Promise<dgram.Socket | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket({ type: net.isIPv6(address) ? 'udp6' : 'udp4' });
    s.once('error', () => {
      try {
        s.close();
      } catch {
        // not bound
      }
      resolve(null);
    });
    s.bind({ address, port, exclusive: true }, () => {
      s.removeAllListeners('error');
      resolve(s);
    });
  });
}

/**
 * Hands out even/odd port pairs of `[min, max]` round robin, per listener and worker; a pair some
 * other socket holds (another worker, another process) is passed over. Bounded: at most
 * `maxTries` pairs are tried per allocation.
 */
export class PortPairs {
  private readonly min: number;
  private readonly max: number;
  private next: number;
  /** Pairs in use by this allocator. */
  inUse = 0;

  constructor(min: number, max: number) {
    this.min = min % 2 === 0 ? min : min + 1;
    this.max = max;
    this.next = this.min + 2 * Math.floor(Math.random() * Math.max(1, (this.max - this.min) / 2));
  }

  /** Bind a pair on `address`; null if none was free within `maxTries` pairs. */
  async allocate(address: string, maxTries = 64): Promise<PinholePair | null> {
    const pairs = Math.max(1, Math.floor((this.max - this.min + 1) / 2));
    for (let i = 0; i < Math.min(maxTries, pairs); i++) {
      const p = this.next;
      this.next += 2;
      if (this.next + 1 > this.max) this.next = this.min;
      const a = await bindOne(address, p);
      if (a === null) continue;
      const b = await bindOne(address, p + 1);
      if (b === null) {
        a.close();
        continue;
      }
      this.inUse++;
      return { rtp: new PinholeSocket(a, true), rtcp: new PinholeSocket(b, false) };
    }
    return null;
  }

  /** Close a pair (idempotent per pair: pass each pair once). */
  release(p: PinholePair): void {
    this.inUse--;
    p.rtp.close();
    p.rtcp.close();
  }
}
