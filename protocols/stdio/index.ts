/**
 * Stdio (docs/l7mp-compat.md §3.3): the proxy's own stdin and stdout as a byte stream. As a cluster
 * (l7mp's, virtual): each session stage reads stdin (every stage of a worker gets every chunk, as
 * l7mp's pipes did) and writes to stdout. As a listener (new in l7mp-ts): one session at startup
 * over stdin/stdout, like a UDP singleton; it is not restarted when it ends.
 */
import { Type } from '@sinclair/typebox';
import type { ListenerContext, ListenerInstance, ListenerSpecContext } from '../types.ts';
import { defineProtocol } from '../core/define.ts';
import { StdioConnection } from './connection.ts';

const StdioSpec = (what: string) => Type.Object({ protocol: Type.Literal('Stdio') }, { description: what });

class StdioListener implements ListenerInstance {
  private readonly name: string;
  private readonly ctx: ListenerContext;
  private conn: StdioConnection | null = null;

  constructor(cfg: ListenerSpecContext<unknown>, ctx: ListenerContext) {
    this.name = cfg.name;
    this.ctx = ctx;
  }

  start(): Promise<void> {
    this.conn = new StdioConnection();
    this.ctx.accept(this.conn, { STDIO: { pid: process.pid } }, `STDIO:${this.name}-${this.ctx.nextSessionSeq()}`);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.conn?.close();
    this.conn = null;
    return Promise.resolve();
  }

  describe(): Record<string, unknown> {
    return { protocol: 'Stdio' };
  }
}

export const stdio = defineProtocol({
  name: 'Stdio',
  kind: 'byte',
  listener: {
    schema: StdioSpec('Stdio listener: one session at startup over the proxy\'s stdin (reads) and stdout (writes).'),
    placement: () => 'single',
    create: (cfg, ctx) => new StdioListener(cfg, ctx),
  },
  cluster: {
    schema: StdioSpec('Stdio cluster: each session stage reads the proxy\'s stdin and writes to its stdout.'),
    virtual: true,
    create: () => ({
      connect: () => Promise.resolve(new StdioConnection()),
      close() {},
    }),
  },
});
