/**
 * RTP/RTCP pinholes: UDP sockets the RTSP proxy opens for a media track, one pair towards the
 * client and one towards the server, each bound to an even/odd port pair (RTP on the even port,
 * RTCP on the next: RFC 3550 §11) taken from the listener's `rtp_ports` range.
 *
 * A {@link PinholeSocket} is a plain connected UDP {@link Connection}: connected to the peer the
 * SETUP exchange named (the client's `client_port`, the server's `server_port`), so the kernel
 * drops datagrams from anyone else, and it offers `spliceFd` like the UDP protocol's connections:
 * a pinhole relay (a child session of two pinholes) is spliced in the kernel under `-o init`.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import { dgramFd, dgramReading } from '../../runtime/common/dgram-fd.ts';
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
  private handler: ConnectionHandler = new PendingHandler();
  private closed = false;
  private readonly sock: dgram.Socket;

  constructor(sock: dgram.Socket) {
    this.sock = sock;
    const a = sock.address();
    this.port = a.port;
    this.local = net.isIPv6(a.address) ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    sock.on('message', this.onMessage);
    sock.on('error', this.onError);
  }

  spliceErrorHook: ((err: Error) => void) | null = null;

  spliceFd(): number {
    return this.closed || this.remote === '-' ? -1 : dgramFd(this.sock);
  }

  spliceReading(reading: boolean): boolean {
    return !this.closed && dgramReading(this.sock, reading);
  }

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
      return { rtp: new PinholeSocket(a), rtcp: new PinholeSocket(b) };
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
