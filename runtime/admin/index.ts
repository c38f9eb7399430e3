/** Start the admin server with every route module. */
import type { Logger } from '../common/log.ts';
import type { Runtime } from '../runtime.ts';
import { AdminServer } from './server.ts';
import { registerActors } from './actors.ts';
import { registerHealth } from './health.ts';

export interface AdminOptions {
  host: string;
  port: number;
  token?: string;
  log: Logger;
}

/** Bind the admin server and register its routes. @throws L7Error when it cannot bind. */
export async function startAdmin(runtime: Runtime, opts: AdminOptions): Promise<AdminServer> {
  const server = new AdminServer({ host: opts.host, port: opts.port, log: opts.log, ...(opts.token ? { token: opts.token } : {}) });
  registerHealth(server, runtime);
  registerActors(server, runtime);
  await server.start();
  return server;
}
