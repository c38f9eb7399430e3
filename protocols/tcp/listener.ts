/**
 * TCP listener: bound on every worker with SO_REUSEPORT; the kernel spreads connections. Closing
 * does not wait on peers: connections still open are ended and destroyed once flushed.
 */
import type net from 'node:net';
import type { ListenerContext, ListenerInstance, ListenerSpecContext } from '../types.ts';
import { hostPort } from '../core/server.ts';
import type { ReadBuffer } from '../core/read-buffer.ts';
import { SocketConnection, SocketServer } from '../core/socket-connection.ts';
import type { TcpListenerSpec } from './config.ts';

export class TcpListener implements ListenerInstance {
  private readonly name: string;
  private readonly spec: TcpListenerSpec;
  private readonly ctx: ListenerContext;
  private readonly server: SocketServer;

  constructor(cfg: ListenerSpecContext<TcpListenerSpec>, ctx: ListenerContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
    this.ctx = ctx;
    this.server = new SocketServer((sock, reader) => this.onConnection(sock, reader));
  }

  start(): Promise<void> {
    const address = this.spec.address ?? '::';
    return this.server.listen({ port: this.spec.port, host: address, reusePort: true }, this.name, `TCP ${hostPort(address, this.spec.port)}`, this.ctx);
  }

  private onConnection(sock: net.Socket, reader: ReadBuffer | null): void {
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
    this.server.drain();
  }

  close(): Promise<void> {
    return this.server.close();
  }

  describe(): Record<string, unknown> {
    return { protocol: 'TCP', address: hostPort(this.spec.address ?? '::', this.spec.port), connections: this.server.size };
  }
}
