/** Start the admin server with every route module. */
import type { Logger } from '../common/log.ts';
import type { Runtime } from '../runtime.ts';
import { AdminServer, type AdminServerOptions } from './server.ts';
import { registerActors } from './actors.ts';
import { registerHealth } from './health.ts';
import { registerApi } from './api-v1.ts';
import { ConfigStore } from '../../cluster-config/store.ts';
import type { Namer } from '../../cluster-config/normalize.ts';
import { registerMetrics } from './metrics.ts';

export interface AdminOptions {
  host: string;
  port: number;
  token?: string;
  /** Serve without a token beyond loopback (see {@link AdminServerOptions.insecure}). Default false. */
  insecure?: boolean;
  log: Logger;
  /** The process's name counters for inline objects (default: seeded from the snapshot's generated names). */
  namer?: Namer;
  /** The config store the API edits (default: a new one over the runtime's snapshot). */
  store?: ConfigStore;
}

/**
 * The admin server with every route, not bound yet: {@link AdminServer.request} serves the
 * workers' L7mpController and Prometheus clusters even when no admin port is configured (it is
 * set as the runtime's admin handler here).
 */
export function createAdmin(runtime: Runtime, opts: AdminOptions): AdminServer {
  const server = new AdminServer({ host: opts.host, port: opts.port, log: opts.log, ...(opts.token ? { token: opts.token } : {}), insecure: opts.insecure === true });
  registerHealth(server, runtime);
  registerActors(server, runtime);
  registerApi(server, runtime, opts.store ?? new ConfigStore(runtime.snapshot, { ...(opts.namer ? { namer: opts.namer } : {}), warn: (m) => opts.log.debug(m) }));
  registerMetrics(server, runtime);
  runtime.setAdminHandler((call) => server.request(call));
  return server;
}

/** Bind the admin server and register its routes. @throws L7Error when it cannot bind. */
export async function startAdmin(runtime: Runtime, opts: AdminOptions): Promise<AdminServer> {
  const server = createAdmin(runtime, opts);
  await server.start();
  return server;
}
