/**
 * `GET /healthz`: the process answers (200 `{"status":"ok"}`).
 * `GET /readyz`: 200 once every worker is live with its listeners up, else 503 naming the workers
 * that are not; 503 `{"status":"draining", ...}` from the start of a drain on (runtime/main/drain.ts),
 * with the sessions left and the deadline, so a load balancer stops sending new sessions here.
 */
import type { Runtime } from '../runtime.ts';
import type { AdminServer } from './server.ts';

export function registerHealth(server: AdminServer, runtime: Runtime): void {
  server.route('GET', '/healthz', () => ({ body: { status: 'ok' } }));
  server.route('GET', '/readyz', () => {
    if (runtime.draining) {
      const d = runtime.drainStatus();
      return { status: 503, body: { status: d.state, sessions_left: d.sessions_left, ...(d.deadline !== undefined ? { deadline: d.deadline } : {}) } };
    }
    const live = runtime.liveSlots();
    const missing = Array.from({ length: runtime.workers }, (_, i) => i).filter((i) => !live.includes(i));
    if (missing.length === 0) return { body: { status: 'ready', workers: live.length } };
    return { status: 503, body: { status: 'not ready', workers_not_ready: missing } };
  });
}
