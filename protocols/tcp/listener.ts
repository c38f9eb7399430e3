/**
 * TCP listener: bound on every worker with SO_REUSEPORT; the kernel spreads connections. Closing
 * does not wait on peers: connections still open are ended and destroyed once flushed.
 */
import net from 'node:net';
import type { ListenerContext, ListenerInstance, ListenerSpecContext } from '../types.ts';
import { SocketConnection } from '../stream/socket-connection.ts';
import { adoptAccepted, closeServer, hostPort, listen, stopListening } from '../stream/server.ts';
import type { TcpListenerSpec } from './config.ts';

export class TcpListener implements ListenerInstance {
  private readonly name: string;
  private readonly spec: TcpListenerSpec;
  private readonly ctx: ListenerContext;
  private readonly server: net.Server;
  private readonly conns = new Set<net.Socket>();
  private closed = false;

  constructor(cfg: ListenerSpecContext<TcpListenerSpec>, ctx: ListenerContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
    this.ctx = ctx;
    // Paused: adoptAccepted moves each connection to a socket that reads into recycled buffers.
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => this.onConnection(sock));
  }

  start(): Promise<void> {
    const address = this.spec.address ?? '::';
    return listen(this.server, { port: this.spec.port, host: address, reusePort: true }, this.name, `TCP ${hostPort(address, this.spec.port)}`, this.ctx);
  }

  private onConnection(accepted: net.Socket): void {
    if (this.closed) {
      accepted.destroy();
      return;
    }
    const { sock, reader } = adoptAccepted(accepted);
    this.conns.add(sock);
    sock.once('close', () => this.conns.delete(sock));
    const raddr = sock.remoteAddress ?? '';
    const rport = sock.remotePort ?? 0;
    const laddr = sock.localAddress ?? '';
    const lport = sock.localPort ?? 0;
    const conn = new SocketConnection(sock, 'downstream', hostPort(laddr, lport), hostPort(raddr, rport), reader);
    const metadata = { IP: { src_addr: raddr, dst_addr: laddr }, TCP: { src_port: rport, dst_port: lport } };
    this.ctx.accept(conn, metadata, `TCP:${raddr}:${rport}-${laddr}:${lport}`);
  }

  /** Drain: stop listening; the connections accepted so far carry on. */
  drain(): void {
    stopListening(this.server);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return closeServer(this.server, this.conns);
  }

  describe(): Record<string, unknown> {
    return { protocol: 'TCP', address: hostPort(this.spec.address ?? '::', this.spec.port), connections: this.conns.size };
  }
}
