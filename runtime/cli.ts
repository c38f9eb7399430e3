/**
 * `l7mp-ts -c FILE [-l LEVEL] [-s] [--workers N] [-o init|no_init|disable]`: run the proxy in the
 * foreground (l7mp-compatible flags, compat reference §0).
 *
 * Exit codes: 0 after SIGINT/SIGTERM (listeners closed, sessions ended, Unix socket files removed,
 * within 2 s); 1 for a bad command line, an unreadable or invalid config (the message names the
 * field path and the value), or a listener that cannot bind (nothing is left listening); 2 when
 * worker supervision gives up.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { readConfigFile } from '../cluster-config/load.ts';
import { normalize } from '../cluster-config/normalize.ts';
import type { ConfigSnapshot } from '../cluster-config/snapshot.ts';
import { L7Error } from './common/errors.ts';
import { isLogLevel, LOG_LEVELS, makeLogger, type LogLevel, type Logger } from './common/log.ts';
import { Runtime } from './runtime.ts';
import { offloadProvider } from '../native-offload/provider.ts';
import { parseAdminAddress, type AdminServer } from './admin/server.ts';
import { createAdmin } from './admin/index.ts';
import { actorsCommand } from './admin/actors-cli.ts';

const USAGE = `Usage: l7mp-ts -c <config.yaml|config.json> [-l ${LOG_LEVELS.join('|')}] [-s] [--workers N] [--admin [HOST:]PORT] [-o init|no_init|disable]
       l7mp-ts actors --admin HOST:PORT [--admin-token TOKEN] [--json]

  -c, --config FILE     l7mp config (YAML if it ends in .yaml/.yml, else JSON)
  -l, --log-level LEVEL log level (overrides admin.log_level; default info)
  -s, --strict          strict validation: unknown fields and dangling references are errors
      --workers N       worker threads (default: available cores, ${os.availableParallelism()} here)
      --admin [HOST:]PORT admin HTTP server: REST API, actor tree, metrics (default host 127.0.0.1;
                        or admin.address/admin.port in the config)
      --admin-token TOKEN require 'Authorization: Bearer TOKEN' on the admin server (or L7MP_ADMIN_TOKEN)
  -o, --offload MODE    kernel offload: init|no_init|disable (overrides admin.offload; userspace only for now)
  -h, --help            this text`;

function fail(msg: string): never {
  process.stderr.write(`l7mp-ts: ${msg}\n`);
  process.exit(1);
}

/** Parsed command line. */
interface Cli {
  config: string;
  logLevel: LogLevel | undefined;
  strict: boolean;
  workers: number;
  offload: 'init' | 'no_init' | 'disable' | undefined;
  admin: { host: string; port: number } | undefined;
  adminToken: string | undefined;
}

function parseCli(argv: string[]): Cli {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        'log-level': { type: 'string', short: 'l' },
        strict: { type: 'boolean', short: 's' },
        workers: { type: 'string' },
        offload: { type: 'string', short: 'o' },
        interfaces: { type: 'string', short: 'i' },
        admin: { type: 'string' },
        'admin-token': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (e) {
    fail(`${(e as Error).message}\n${USAGE}`);
  }
  if (v.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (v.config === undefined) fail(`-c <config> is required\n${USAGE}`);
  const level = v['log-level'];
  if (level !== undefined && !isLogLevel(level)) fail(`-l: must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  let workers = os.availableParallelism();
  if (v.workers !== undefined) {
    workers = Number(v.workers);
    if (!Number.isInteger(workers) || workers < 1 || workers > 256) fail(`--workers: must be an integer 1..256, got "${v.workers}"`);
  }
  if (v.offload !== undefined && !['init', 'no_init', 'disable'].includes(v.offload)) fail(`-o: must be init, no_init or disable, got "${v.offload}"`);
  let admin: Cli['admin'];
  if (v.admin !== undefined) {
    try {
      admin = parseAdminAddress(v.admin);
    } catch (e) {
      fail((e as Error).message);
    }
  }
  const adminToken = v['admin-token'] ?? process.env.L7MP_ADMIN_TOKEN;
  return { config: v.config, logLevel: level as LogLevel | undefined, strict: v.strict === true, workers, offload: v.offload as Cli['offload'], admin, adminToken };
}

/** A line per listener telling how to try it (the default example relies on it). */
function hints(snapshot: ConfigSnapshot, log: Logger): void {
  for (const l of snapshot.listeners) {
    const s = l.spec as { protocol: string; port?: number; address?: string; filename?: string };
    const host = s.address === undefined || s.address === '0.0.0.0' || s.address === '::' ? '127.0.0.1' : s.address;
    const try_: Record<string, string> = {
      UDP: `socat - UDP:${host}:${s.port}`,
      TCP: `socat - TCP:${host}:${s.port}`,
      UnixDomainSocket: `socat - UNIX-CONNECT:${s.filename}`,
    };
    const hint = try_[s.protocol];
    log.info({ listener: l.name, protocol: s.protocol, ...(hint ? { try: hint } : {}) }, hint ? `listener ${l.name}: try \`${hint}\`` : `listener ${l.name}`);
  }
}

async function main(): Promise<void> {
  process.title = 'l7mp-ts';
  if (process.argv[2] === 'actors') {
    process.exit(await actorsCommand(process.argv.slice(3)));
  }
  const cli = parseCli(process.argv.slice(2));
  let snapshot: ConfigSnapshot;
  const warnings: string[] = [];
  try {
    snapshot = normalize(readConfigFile(cli.config), { strict: cli.strict || undefined, warn: (m) => warnings.push(m) });
  } catch (e) {
    fail(e instanceof L7Error ? `${cli.config}: ${e.message}` : String(e));
  }
  const level = cli.logLevel ?? snapshot.admin.log_level;
  const log = makeLogger(level, { thread: 'main' });
  for (const w of warnings) log.warn(w);
  const offload = cli.offload ?? snapshot.admin.offload;
  if (offload !== 'disable') log.warn({ offload, reason: offloadProvider(offload).probe().reason }, 'kernel offload unavailable');
  const runtime = new Runtime({ snapshot, workers: cli.workers, logLevel: level, log });
  runtime.on('gaveUp', (err: L7Error) => {
    log.error({ err: err.message }, 'exiting: worker supervision gave up');
    void runtime.shutdown().finally(() => process.exit(2));
  });

  let stopping = false;
  let admin: AdminServer | null = null;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    // Whatever happens, exit within 2 s.
    setTimeout(() => process.exit(0), 1900).unref();
    void Promise.all([runtime.shutdown(), admin?.close()]).then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  try {
    await runtime.start();
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
  const adminAddr = cli.admin ?? (snapshot.admin.port !== undefined ? { host: snapshot.admin.address ?? '127.0.0.1', port: snapshot.admin.port } : undefined);
  // The admin routes exist even unbound: L7mpController and Prometheus clusters reach them.
  const api = createAdmin(runtime, { host: adminAddr?.host ?? '127.0.0.1', port: adminAddr?.port ?? 0, ...(cli.adminToken ? { token: cli.adminToken } : {}), log });
  admin = api;
  if (adminAddr !== undefined) {
    try {
      await api.start();
    } catch (e) {
      await runtime.shutdown();
      fail((e as Error).message);
    }
    log.info({ admin: api.address, auth: cli.adminToken ? 'bearer' : 'none' }, `admin API on http://${api.address}/api/v1`);
  }
  hints(snapshot, log);
  log.info({ workers: cli.workers, config: cli.config, pid: process.pid }, 'l7mp-ts ready');
}

void main();
