/**
 * UDP cluster (l7mp compat reference §3.3): each session stage gets its own socket, bound to
 * `spec.bind` (default: any address, an ephemeral port of its own) and connect()ed to the
 * endpoint's `address:spec.port`. An ICMP port-unreachable from
 * the upstream arrives as ECONNREFUSED (on a read, or on the next send) and closes the connection
 * as an upstream failure (the session's retry policy decides what happens next). A send the kernel
 * refuses (EMSGSIZE, ENOBUFS, ECONNREFUSED...) is a drop counted by errno, never in tx
 * ({@link ConnStats.sendFailed}).
 */
import dgram from 'node:dgram';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import { dgramFd, dgramReading } from '../../runtime/common/dgram-fd.ts';
import { ConnStats } from '../types.ts';
import type { ClusterContext, ClusterInstance, Connection, ConnectionHandler, EndpointInfo, SessionInfo, SocketTuple } from '../types.ts';
import type { UdpClusterSpec } from './config.ts';
import { PendingHandler, udpType } from './listener.ts';

class UdpUpstream implements Connection {
  readonly kind = 'datagram' as const;
  readonly stats = new ConnStats();
  readonly local: string;
  readonly remote: string;
  private handler: ConnectionHandler = new PendingHandler();
  private closed = false;
  private readonly sock: dgram.Socket;

  constructor(sock: dgram.Socket, remote: string) {
    this.sock = sock;
    const a = sock.address();
    this.local = `${a.address}:${a.port}`;
    this.remote = remote;
    sock.on('message', this.onMessage);
    sock.on('error', this.onError);
  }

  spliceErrorHook: ((err: Error) => void) | null = null;

  /** The socket's local address:port and the endpoint's, as the kernel has them. */
  rebuildTuple(): SocketTuple | null {
    if (this.closed) return null;
    try {
      const l = this.sock.address();
      const r = this.sock.remoteAddress();
      return { localAddress: l.address, localPort: l.port, remoteAddress: r.address, remotePort: r.port };
    } catch {
      return null; // not connected (any more)
    }
  }

  /** The connected upstream socket's fd, or -1 once closed. */
  spliceFd(): number {
    return this.closed ? -1 : dgramFd(this.sock);
  }

  spliceReading(reading: boolean): boolean {
    return !this.closed && dgramReading(this.sock, reading);
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
    // Counted in tx by onSent once the kernel took it; a refused send is a drop by errno.
    this.sock.send(data, this.onSent);
    return true;
  }

  /** The send callback, one per connection (no closure per datagram). */
  private readonly onSent = (err: Error | null, bytes?: number): void => {
    // The endpoint's port is closed: an upstream failure, as when the ICMP error is read.
    if (this.stats.sendResult(err, bytes) === 'ECONNREFUSED') this.onError(err as Error);
  };

  pause(): void {}
  resume(): void {}
  end(): boolean {
    return false;
  }

  close(): void {
    this.finish(null);
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
    this.finish(new L7Error(ErrorCode.UpstreamReset, `UDP upstream ${this.remote}: ${err.message}`, { cause: err }));
  };
}

export class UdpCluster implements ClusterInstance {
  private readonly spec: UdpClusterSpec;
  private readonly name: string;

  constructor(cfg: { name: string; spec: UdpClusterSpec }, _ctx: ClusterContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
  }

  /**
   * A session's socket, connected to `ep`. A rebuilt session (`session.rebind`, its worker died)
   * binds the local address:port its old socket had and connects to the same endpoint port, so the
   * endpoint sees the same source; a port taken meanwhile fails the connect (EADDRINUSE).
   */
  connect(session: SessionInfo, ep: EndpointInfo | null, signal: AbortSignal): Promise<Connection> {
    if (ep === null) return Promise.reject(new L7Error(ErrorCode.ClusterNoEndpoint, `No endpoint in cluster "${this.name}"`));
    const rebind = session.rebind;
    const port = rebind?.remotePort ?? this.spec.port;
    return new Promise((resolve, reject) => {
      // No SO_REUSEADDR for an ephemeral port: with it the kernel may give two sessions the same
      // local port, and two sockets connected to one endpoint from one port share a 4-tuple, so
      // replies would reach the wrong session (l7mp set it; a deliberate deviation).
      const explicitPort = (this.spec.bind?.port ?? 0) !== 0;
      const s = dgram.createSocket({ type: udpType(ep.address), reuseAddr: explicitPort });
      const fail = (err: Error): void => {
        signal.removeEventListener('abort', onAbort);
        try {
          s.close();
        } catch {
          // not yet bound
        }
        reject(new L7Error(ErrorCode.UpstreamConnect, `cluster "${this.name}": UDP ${ep.address}:${port}: ${err.message}`, { cause: err }));
      };
      const onAbort = (): void => fail(new Error('aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      s.once('error', fail);
      const connect = (): void => {
        s.connect(port, ep.address, (err?: Error) => {
          if (signal.aborted) return;
          if (err) return fail(err);
          signal.removeEventListener('abort', onAbort);
          s.removeListener('error', fail);
          resolve(new UdpUpstream(s, `${ep.address}:${port}`));
        });
      };
      const bind = rebind === undefined ? this.spec.bind : { address: rebind.localAddress, port: rebind.localPort };
      if (bind !== undefined) s.bind({ address: bind.address, port: bind.port ?? 0 }, connect);
      else connect();
    });
  }

  close(): void {}
}
