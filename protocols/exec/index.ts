/**
 * Exec (new in l7mp-ts): a virtual cluster that pipes each session stage through a process of its
 * own, like socat's `EXEC:` address or inetd: `{protocol: Exec, command: [prog, args...]}`. The
 * process starts when the stage connects (a program that cannot be spawned fails the connect, so
 * the route's retry policy applies) and is killed when the session ends. The process gets a clean
 * environment ({@link childEnv}).
 */
import { spawn } from 'node:child_process';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { ClusterContext, ClusterInstance, Connection, SessionInfo } from '../types.ts';
import { connectAttempt } from '../core/connect.ts';
import { defineProtocol } from '../core/define.ts';
import { DEFAULT_ENV_PASSTHROUGH, ENV_NAME, ExecClusterSpec } from './config.ts';
import { ExecConnection, type Child } from './connection.ts';

/** Default `kill_timeout`. Unit: s. */
const DEFAULT_KILL_TIMEOUT_S = 2;

/**
 * The environment of an Exec process: only `spec.env_passthrough` (default PATH) copied from
 * `parent` when set there, then `spec.env`, then L7MP_SESSION and L7MP_METADATA. Nothing else of
 * the proxy's environment reaches the child (an admin token, NATS credentials).
 */
export function childEnv(spec: ExecClusterSpec, parent: NodeJS.ProcessEnv, session: string, metadata: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of spec.env_passthrough ?? DEFAULT_ENV_PASSTHROUGH) {
    const v = parent[name];
    if (v !== undefined) env[name] = v;
  }
  return Object.assign(env, spec.env, { L7MP_SESSION: session, L7MP_METADATA: metadata });
}

class ExecCluster implements ClusterInstance {
  private readonly name: string;
  private readonly spec: ExecClusterSpec;
  private readonly live = new Set<ExecConnection>();

  constructor(cfg: { name: string; spec: ExecClusterSpec }, _ctx: ClusterContext) {
    this.name = cfg.name;
    this.spec = cfg.spec;
  }

  connect(session: SessionInfo, _ep: unknown, signal: AbortSignal): Promise<Connection> {
    const [program, ...args] = this.spec.command as [string, ...string[]];
    return connectAttempt(signal, `cluster "${this.name}": cannot run ${JSON.stringify(program)}`, (a) => {
      const child = spawn(program, args, {
        cwd: this.spec.cwd,
        env: childEnv(this.spec, process.env, session.name, JSON.stringify(session.metadata)),
        stdio: ['pipe', 'pipe', this.spec.stderr === 'ignore' ? 'ignore' : 'inherit'],
      }) as Child;
      a.onFail(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      child.once('error', a.fail);
      child.once('spawn', () => {
        child.removeListener('error', a.fail);
        child.on('error', () => {}); // a later kill() failure; 'close' still comes
        const conn = new ExecConnection(child, program, (this.spec.kill_timeout ?? DEFAULT_KILL_TIMEOUT_S) * 1000);
        this.live.add(conn);
        child.once('close', () => this.live.delete(conn));
        a.done(conn);
      });
    });
  }

  /** The cluster is gone (config change, shutdown): no process outlives it. */
  close(): void {
    for (const c of this.live) c.kill();
  }
}

/** `env` names are checked here (a record's key pattern is not enforced by the schema). @throws L7Error `L7_ERR_CONFIG_INVALID` naming `<at>.env` and the name. */
function prepare(spec: ExecClusterSpec, at: string): ExecClusterSpec {
  const re = new RegExp(ENV_NAME);
  for (const k of Object.keys(spec.env ?? {})) {
    if (!re.test(k)) throw new L7Error(ErrorCode.ConfigInvalid, `${at}.env: must name environment variables (letters, digits, _; not a digit first), got ${JSON.stringify(k)}`);
  }
  return spec;
}

export const exec = defineProtocol({
  name: 'Exec',
  kind: 'byte',
  cluster: { schema: ExecClusterSpec, virtual: true, prepare, create: (cfg, ctx) => new ExecCluster(cfg, ctx) },
});
