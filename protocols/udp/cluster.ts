/**
 * UDP cluster (docs/l7mp-compat.md §3.3): each session stage gets its own socket, bound to
 * `spec.bind` (default: any address, an ephemeral port of its own) and connect()ed to the
 * endpoint's `address:spec.port`. An ICMP port-unreachable from
 * the upstream arrives as ECONNREFUSED (on a read, or on the next send) and closes the connection
 * as an upstream failure (the session's retry policy decides what happens next). A send the kernel
 * refuses (EMSGSIZE, ENOBUFS, ECONNREFUSED...) is a drop counted by errno, never in tx
 * ({@link ConnStats.sendFailed}).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import { dgramLookup } from '../../common/dgram-lookup.ts';
import type { Connection, EndpointInfo, SessionInfo, SocketTuple } from '../types.ts';
import { connectAttempt, EndpointCluster } from '../core/connect.ts';
import { SpliceableDgramConnection, SYNC_SOCKETS } from '../core/dgram-connection.ts';
import type { UdpClusterSpec } from './config.ts';
import { udpType } from './modes.ts';

class UdpUpstream extends SpliceableDgramConnection {
  readonly remote: string;
  private readonly remoteAddress: string;
  private readonly remotePort: number;
  /** The socket's local address and port (getsockname), if known, else read at the first need (null, -1): two fields, no object per session. */
  private boundAddress: string | null = null;
  private boundPort = -1;

  /**
   * @param remote `address:port` (the cluster's string for the endpoint, shared by its sessions)
   * @param bound the socket's local address and port, if known (else read when needed)
   */
  constructor(sock: dgram.Socket, address: string, port: number, remote: string, bound: { address: string; port: number } | null = null) {
    super();
    if (bound !== null) {
      this.boundAddress = bound.address;
      this.boundPort = bound.port;
    }
    this.remoteAddress = address;
    this.remotePort = port;
    this.remote = remote;
    this.attach(sock);
  }

  get local(): string {
    const a = this.localAddr();
    return a === null ? '' : `${a.address}:${a.port}`;
  }

  private localAddr(): { address: string; port: number } | null {
    if (this.boundAddress === null && this.sock !== null) {
      try {
        const a = this.sock.address();
        this.boundAddress = a.address;
        this.boundPort = a.port;
      } catch {
        return null; // closed
      }
    }
    return this.boundAddress === null ? null : { address: this.boundAddress, port: this.boundPort };
  }

  /** The socket's local address:port (as the kernel bound it) and the endpoint's it is connected to. */
  rebuildTuple(): SocketTuple | null {
    if (this.closed) return null;
    const l = this.localAddr();
    return l === null ? null : { localAddress: l.address, localPort: l.port, remoteAddress: this.remoteAddress, remotePort: this.remotePort };
  }

  /** The endpoint's port is closed (ECONNREFUSED, on a read or a send): an upstream failure. */
  protected resetError(err: Error): L7Error {
    return new L7Error(ErrorCode.UpstreamReset, `UDP upstream ${this.remote}: ${err.message}`, { cause: err });
  }
}

function ipLiteral(address: string | undefined): string | undefined {
  return address !== undefined && net.isIP(address) !== 0 ? address : undefined;
}

/** What a UDP cluster knows of one endpoint address, made once for all its sessions. */
interface EndpointAddress {
  /** `address:port` (the cluster's port). */
  readonly remote: string;
  /** The socket type for an IP literal; null for a name (resolved per connect). */
  readonly type: 'udp4' | 'udp6' | null;
}

export class UdpCluster extends EndpointCluster<UdpClusterSpec> {
  /** The endpoints' addresses, so that a session's upstream neither builds its string nor parses its address. */
  private readonly addresses = new Map<string, EndpointAddress>();
  /** `spec.bind.address` if it is an IP literal (the synchronous path binds it); else undefined. */
  private readonly bindIp = ipLiteral(this.spec.bind?.address);

  private endpointAddress(address: string): EndpointAddress {
    let a = this.addresses.get(address);
    if (a === undefined) {
      // Bounded: an endpoint set that churned through more than 1024 addresses starts afresh.
      if (this.addresses.size > 1024) this.addresses.clear();
      const family = net.isIP(address);
      a = { remote: `${address}:${this.spec.port}`, type: family === 0 ? null : family === 6 ? 'udp6' : 'udp4' };
      this.addresses.set(address, a);
    }
    return a;
  }

  private remoteName(address: string, port: number): string {
    // A rebuilt session's old port, or the cluster's.
    return port === this.spec.port ? this.endpointAddress(address).remote : `${address}:${port}`;
  }

  /**
   * A session's socket bound (to `spec.bind`, else an ephemeral port) and connected to `ep`, made
   * synchronously (`bindSync` and `connectSync`, Node >= 24.19; the bind's address is kept, so no
   * getsockname later): for IP literals, which is every new session of the usual config. Else null,
   * and {@link open} does it asynchronously (names, rebuilt sessions).
   */
  connectNow(session: SessionInfo, ep: EndpointInfo): Connection | null {
    const bind = this.spec.bind;
    const ea = this.endpointAddress(ep.address);
    // An older Node (no bindSync), a name to resolve, a rebuilt session: the asynchronous path.
    if (!SYNC_SOCKETS || session.rebind !== undefined || ea.type === null || (bind?.address !== undefined && this.bindIp === undefined)) return null;
    const port = this.spec.port;
    const bindPort = bind?.port ?? 0;
    // No SO_REUSEADDR for an ephemeral port (see open).
    const s = dgram.createSocket({ type: ea.type, reuseAddr: bindPort !== 0, lookup: dgramLookup as dgram.SocketOptions['lookup'] });
    let local: { address: string; port: number };
    try {
      local = s.bindSync(this.bindIp === undefined ? { port: bindPort } : { address: this.bindIp, port: bindPort });
      // The address is the one asked for (a string every session shares), the port the kernel's.
      local = { address: this.bindIp ?? (ea.type === 'udp6' ? '::' : '0.0.0.0'), port: local.port };
      s.connectSync(port, ep.address);
    } catch (e) {
      try {
        s.close();
      } catch {
        // never bound
      }
      const err = e as Error;
      throw new L7Error(ErrorCode.UpstreamConnect, `cluster "${this.name}": UDP ${ep.address}:${port}: ${err.message}`, { cause: err });
    }
    return new UdpUpstream(s, ep.address, port, ea.remote, local);
  }

  /**
   * A session's socket, connected to `ep`. A rebuilt session (`session.rebind`, its worker died)
   * binds the local address:port its old socket had and connects to the same endpoint port, so the
   * endpoint sees the same source; a port taken meanwhile fails the connect (EADDRINUSE).
   */
  protected open(session: SessionInfo, ep: EndpointInfo, signal: AbortSignal): Promise<Connection> {
    const rebind = session.rebind;
    const port = rebind?.remotePort ?? this.spec.port;
    return connectAttempt<Connection>(signal, `cluster "${this.name}": UDP ${ep.address}:${port}`, (a) => {
      // No SO_REUSEADDR for an ephemeral port: with it the kernel may give two sessions the same
      // local port, and two sockets connected to one endpoint from one port share a 4-tuple, so
      // replies would reach the wrong session (l7mp set it; a deliberate deviation).
      const explicitPort = (this.spec.bind?.port ?? 0) !== 0;
      const s = dgram.createSocket({ type: udpType(ep.address), reuseAddr: explicitPort, lookup: dgramLookup as dgram.SocketOptions['lookup'] });
      a.onFail(() => {
        try {
          s.close();
        } catch {
          // not yet bound
        }
      });
      s.once('error', a.fail);
      const connect = (): void => {
        s.connect(port, ep.address, (err?: Error) => {
          if (a.settled) return;
          if (err) return a.fail(err);
          s.removeListener('error', a.fail);
          a.done(new UdpUpstream(s, ep.address, port, this.remoteName(ep.address, port)));
        });
      };
      const bind = rebind === undefined ? this.spec.bind : { address: rebind.localAddress, port: rebind.localPort };
      if (bind !== undefined) s.bind({ address: bind.address, port: bind.port ?? 0 }, connect);
      else connect();
    });
  }
}
