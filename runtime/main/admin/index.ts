/** Start the admin server with every route module. */
import type { Logger } from '../../../common/log.ts';
import type { Runtime } from '../runtime.ts';
import { AdminServer, type AdminServerOptions } from './server.ts';
import { registerActors } from './actors.ts';
import { registerHealth } from './health.ts';
import { registerApi } from './api-v1.ts';
import { ConfigStore } from '../../../cluster-config/store.ts';
import type { Namer } from '../../../cluster-config/normalize.ts';
import { registerMetrics } from './metrics.ts';
import type { ConfigSnapshot } from '../../../cluster-config/snapshot.ts';
import { isLoopback } from '../../../common/net-addr.ts';

/** The clusters that serve the admin API to a listener's sessions. */
const ADMIN_CLUSTERS: ReadonlySet<string> = new Set(['L7mpController', 'Prometheus']);

/**
 * The listeners whose rules can route a session to an L7mpController or Prometheus cluster and
 * whose address is not loopback (no address: every interface). Without an admin token their
 * non-loopback peers get 403 (runtime/main/admin/server.ts); the CLI logs a warning for each.
 * Follows rulelist → rules (and `apply`) → route → destination, ingress and egress clusters.
 */
export function exposedAdminListeners(s: ConfigSnapshot): Array<{ listener: string; address: string; cluster: string }> {
  const out: Array<{ listener: string; address: string; cluster: string }> = [];
  for (const l of s.listeners) {
    const address = (l.spec as { address?: unknown }).address;
    if (typeof address === 'string' && isLoopback(address)) continue;
    const seen = new Set<string>();
    const lists = [l.rules];
    let found: string | undefined;
    while (lists.length > 0 && found === undefined) {
      const name = lists.pop() as string;
      if (seen.has(name)) continue;
      seen.add(name);
      for (const rn of s.rulelists.find((x) => x.name === name)?.rules ?? []) {
        const r = s.rules.find((x) => x.name === rn);
        if (r?.action.apply !== undefined) lists.push(r.action.apply);
        const rt = r?.action.route === undefined ? undefined : s.routes.find((x) => x.name === r.action.route);
        if (rt === undefined) continue;
        for (const cn of [rt.destination, ...rt.ingress, ...rt.egress]) {
          const c = s.clusters.find((x) => x.name === cn);
          if (c !== undefined && ADMIN_CLUSTERS.has(c.spec.protocol)) found ??= c.name;
        }
      }
    }
    if (found !== undefined) out.push({ listener: l.name, address: typeof address === 'string' ? address : '*', cluster: found });
  }
  return out;
}

export interface AdminOptions {
  host: string;
  port: number;
  token?: string;
  /** Serve without a token beyond loopback (see {@link AdminServerOptions.insecure}). Default false. */
  insecure?: boolean;
  log: Logger;
  /** The process's name counters for inline objects (default: seeded from the snapshot's generated names). */
  namer?: Namer;
  /** The config store the API edits (default: a new one over the runtime's snapshot, applying on it). */
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
  registerApi(server, runtime, opts.store ?? new ConfigStore(runtime.snapshot, { ...(opts.namer ? { namer: opts.namer } : {}), target: runtime, warn: (m) => opts.log.debug(m) }));
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
