/**
 * `l7mp-ts -c FILE [-l LEVEL] [-s] [--workers N] [-o init|no_init|disable]`: run the proxy in the
 * foreground (l7mp-compatible flags, docs/l7mp-compat.md §0).
 *
 * Signals: SIGTERM drains (runtime/main/drain.ts): /readyz turns 503, listeners take no new sessions,
 * live ones may finish within `admin.drain_timeout_s` (default 30 s), then the process stops; a
 * second SIGTERM, or SIGINT, stops at once. SIGINT (Ctrl-C) stops at once. SIGHUP reloads the -c
 * file (so does a change of it with `--watch-config`).
 *
 * Exit codes: 0 after SIGINT, or SIGTERM once drained (stopping: listeners closed, sessions ended,
 * Unix socket files removed, within 2 s); 1 for a bad command line, an unreadable or invalid
 * config (the message names the field path and the value), a listener that cannot bind (nothing
 * is left listening), or a non-loopback admin address without a token or `--admin-insecure`; 2
 * when worker supervision gives up.
 */
import net from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { readConfigFile } from '../cluster-config/load.ts';
import { normalize } from '../cluster-config/normalize.ts';
import type { ConfigSnapshot } from '../cluster-config/snapshot.ts';
import { L7Error } from '../common/errors.ts';
import { isLogLevel, LOG_LEVELS, makeLogger, type LogLevel, type Logger } from '../common/log.ts';
import { Runtime } from '../runtime/main/runtime.ts';
import { offloadProvider } from '../native-offload/provider.ts';
import { checkAdminBind, parseAdminAddress, type AdminServer } from '../runtime/main/admin/server.ts';
import { isLoopback } from '../common/net-addr.ts';
import { createAdmin, exposedAdminListeners } from '../runtime/main/admin/index.ts';
import { actorsCommand } from './actors.ts';
import { ConfigStore } from '../cluster-config/store.ts';
import { configDiff } from '../cluster-config/diff.ts';
import { NATS_FLAGS, NATS_USAGE, connectionOptions, redactServers } from '../fleet/options.ts';
import { checkToken, defaultNodeId } from '../fleet/names.ts';
import { parseLabels } from '../fleet/labels.ts';
import { loadState } from '../fleet/state-dir.ts';
import { FleetAgent } from '../fleet/agent.ts';
import { mergeConfig } from '../fleet/desired.ts';
import { applyCommand, fleetCommand } from '../fleet/cli.ts';
import { ConfigWatch } from './config-watch.ts';
import type { DrainOutcome } from '../runtime/main/drain.ts';
import { DEFAULT_DRAIN_TIMEOUT_S } from '../cluster-config/schema.ts';
import type { ConnectionOptions } from '@nats-io/transport-node';

const USAGE = `Usage: l7mp-ts -c <config.yaml|config.json> [-l ${LOG_LEVELS.join('|')}] [-s] [--workers N] [--admin [HOST:]PORT] [-o init|no_init|disable]
       l7mp-ts [-c FILE] --nats URL [--fleet NAME] [--node-id ID] [--labels k=v,...] [--state-dir DIR] ...
       l7mp-ts actors --admin HOST:PORT [--admin-token TOKEN] [--json]
       l7mp-ts apply -f FILE --nats URL [--fleet F] [--node ID | --selector k=v,...] [--wait-s N]
       l7mp-ts fleet status|actors|drain ... (l7mp-ts fleet --help)

  -c, --config FILE     l7mp config (YAML if it ends in .yaml/.yml, else JSON)
  -l, --log-level LEVEL log level (overrides admin.log_level; default info)
  -s, --strict          strict validation: unknown fields and dangling references are errors
      --workers N       worker threads (default: available cores, ${os.availableParallelism()} here)
      --admin [HOST:]PORT admin HTTP server: REST API, actor tree, metrics (default host 127.0.0.1;
                        or admin.address/admin.port in the config)
      --admin-token TOKEN require 'Authorization: Bearer TOKEN' on the admin server (or L7MP_ADMIN_TOKEN)
      --admin-insecure  allow the admin API without a token beyond loopback (or admin.insecure: true):
                        a non-loopback --admin address, L7mpController/Prometheus requests from
                        non-loopback peers; without it (and no token) the first fails the start, the second gets 403
  -o, --offload MODE    kernel offload: init|no_init|disable (overrides admin.offload; needs CAP_BPF+CAP_NET_ADMIN)
      --watch-config    reload the -c file when its content changes, as SIGHUP does (or admin.watch_config: true)
  -h, --help            this text

Signals: SIGTERM drains (no new sessions, live ones finish within admin.drain_timeout_s, default
${DEFAULT_DRAIN_TIMEOUT_S} s; then exit 0); a second SIGTERM or SIGINT stops at once; SIGHUP reloads -c.

Fleet (config from NATS JetStream KV; -c is then optional and merged under the fleet's config):
${NATS_USAGE}
      --fleet NAME        fleet (KV bucket l7mp-NAME, subjects l7mp.NAME.*; default "default")
      --node-id ID        this node's id (default: hostname-pid)
      --labels k=v,...    this node's labels (label selectors and CRDs pick nodes by them)
      --advertise-address ADDR  address other nodes reach this one at (default: first non-loopback IPv4)
      --state-dir DIR     keep the last applied fleet config here; used at start (a restart while NATS is down serves it)
      --telemetry-s N     heartbeat and stats period, seconds (default 5)`;

function fail(msg: string): never {
  process.stderr.write(`l7mp-ts: ${msg}\n`);
  process.exit(1);
}

/** Parsed command line. */
interface Cli {
  /** Undefined only with --nats. */
  config: string | undefined;
  logLevel: LogLevel | undefined;
  strict: boolean;
  workers: number;
  offload: 'init' | 'no_init' | 'disable' | undefined;
  admin: { host: string; port: number } | undefined;
  adminToken: string | undefined;
  /** `--admin-insecure`: serve the admin API without a token beyond loopback. */
  adminInsecure: boolean;
  /** `--watch-config`: reload -c when it changes. */
  watchConfig: boolean;
  fleet: FleetCli | undefined;
}

/** The fleet part of the command line (`--nats` given). */
interface FleetCli {
  connection: ConnectionOptions;
  fleet: string;
  nodeId: string;
  labels: Record<string, string>;
  address: string;
  stateDir: string | undefined;
  telemetryMs: number;
}

/** The first non-internal IPv4 address of this host, else 127.0.0.1. */
function defaultAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
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
        'admin-insecure': { type: 'boolean' },
        'watch-config': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        ...NATS_FLAGS,
        fleet: { type: 'string' },
        'node-id': { type: 'string' },
        labels: { type: 'string' },
        'advertise-address': { type: 'string' },
        'state-dir': { type: 'string' },
        'telemetry-s': { type: 'string' },
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
  if (v.config === undefined && v.nats === undefined) fail(`-c <config> is required (or --nats)\n${USAGE}`);
  if (v['watch-config'] === true && v.config === undefined) fail('--watch-config needs -c');
  let fleet: FleetCli | undefined;
  if (v.nats !== undefined) {
    try {
      const nodeId = checkToken('--node-id', v['node-id'] ?? defaultNodeId(os.hostname(), process.pid));
      const telemetryS = Number(v['telemetry-s'] ?? 5);
      if (!(telemetryS >= 0.1 && telemetryS <= 3600)) fail(`--telemetry-s: must be a number 0.1..3600, got "${v['telemetry-s']}"`);
      const address = v['advertise-address'] ?? defaultAddress();
      if (net.isIP(address) === 0) fail(`--advertise-address: must be an IP address, got "${address}"`);
      fleet = {
        connection: connectionOptions(v, `l7mp-ts ${nodeId}`),
        fleet: checkToken('--fleet', v.fleet ?? 'default'),
        nodeId,
        labels: parseLabels('--labels', v.labels ?? ''),
        address,
        stateDir: v['state-dir'],
        telemetryMs: Math.round(telemetryS * 1000),
      };
    } catch (e) {
      fail((e as Error).message);
    }
  } else {
    for (const f of ['fleet', 'node-id', 'labels', 'state-dir', 'advertise-address', 'telemetry-s', ...Object.keys(NATS_FLAGS)]) {
      if ((v as Record<string, unknown>)[f] !== undefined) fail(`--${f} needs --nats`);
    }
  }
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
  return {
    fleet,
    config: v.config,
    logLevel: level as LogLevel | undefined,
    strict: v.strict === true,
    workers,
    offload: v.offload as Cli['offload'],
    admin,
    adminToken,
    adminInsecure: v['admin-insecure'] === true,
    watchConfig: v['watch-config'] === true,
  };
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
  if (process.argv[2] === 'apply') process.exit(await applyCommand(process.argv.slice(3)));
  if (process.argv[2] === 'fleet') process.exit(await fleetCommand(process.argv.slice(3)));
  const cli = parseCli(process.argv.slice(2));
  let snapshot: ConfigSnapshot;
  const warnings: string[] = [];
  // With --nats: the -c document is the base the fleet's config is merged onto; the state dir's
  // last applied config (when there is one) is what the proxy starts with.
  let base: Record<string, unknown> = {};
  let initial: { revision: number; doc: Record<string, unknown> } | undefined;
  try {
    if (cli.config !== undefined) base = readConfigFile(cli.config) as Record<string, unknown>;
    snapshot = normalize(cli.config !== undefined ? base : {}, { strict: cli.strict || undefined, warn: (m) => warnings.push(m) });
  } catch (e) {
    fail(e instanceof L7Error ? `${cli.config}: ${e.message}` : String(e));
  }
  if (cli.fleet?.stateDir !== undefined) {
    try {
      const st = loadState(cli.fleet.stateDir);
      if (st !== null) {
        snapshot = mergeConfig({ source: 'state', config: st.config }, [], cli.strict).snapshot;
        initial = { revision: st.revision, doc: st.config };
        warnings.push(`serving the last applied fleet config from ${cli.fleet.stateDir} (revision ${st.revision}) until NATS answers`);
      }
    } catch (e) {
      warnings.push(`${(e as Error).message}; starting from ${cli.config ?? 'an empty config'}`);
    }
  }
  // Run from the TypeScript sources without bin/l7mp-ts's flag: see bin/l7mp-ts (nodejs/node#64500).
  if (import.meta.url.endsWith('.ts') && !process.execArgv.includes('--no-liftoff')) {
    warnings.push('node was started without --no-liftoff: a worker thread that exits (a restart, a reload, the shutdown) may abort the process (V8, nodejs/node#64500); start with bin/l7mp-ts');
  }
  const level = cli.logLevel ?? snapshot.admin.log_level;
  const log = makeLogger(level, { thread: 'main' });
  for (const w of warnings) log.warn(w);
  const offload = cli.offload ?? snapshot.admin.offload;
  if (offload !== 'disable') {
    // Probed once here for the log; each worker loads its own maps.
    const p = offloadProvider(offload).probe();
    if (p.available) log.info({ offload }, 'kernel offload on: established UDP sessions are spliced in the kernel');
    else log.warn({ offload, reason: p.reason }, 'kernel offload unavailable; every flow runs in userspace');
  }
  const adminAddr = cli.admin ?? (snapshot.admin.port !== undefined ? { host: snapshot.admin.address ?? '127.0.0.1', port: snapshot.admin.port } : undefined);
  const adminInsecure = cli.adminInsecure || snapshot.admin.insecure === true;
  // Refused before anything starts (AdminServer.start checks again).
  if (adminAddr !== undefined) {
    try {
      checkAdminBind(adminAddr.host, adminAddr.port, cli.adminToken, adminInsecure);
    } catch (e) {
      fail((e as Error).message);
    }
    if (adminInsecure && !cli.adminToken && !isLoopback(adminAddr.host)) log.warn({ admin: `${adminAddr.host}:${adminAddr.port}` }, 'admin API served WITHOUT a token beyond loopback (--admin-insecure)');
  }
  const runtime = new Runtime({ snapshot, workers: cli.workers, logLevel: level, log, offload });
  runtime.on('gaveUp', (err: L7Error) => {
    log.error({ err: err.message }, 'exiting: worker supervision gave up');
    void runtime.shutdown().finally(() => process.exit(2));
  });

  let stopping = false;
  let started = false;
  let sigterms = 0;
  let admin: AdminServer | null = null;
  let agent: FleetAgent | null = null;
  let watch: ConfigWatch | null = null;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    const left = runtime.sessionCount();
    log.info({ signal, ...(left > 0 ? { sessions_cut: left } : {}) }, 'shutting down');
    watch?.close();
    // Whatever happens, exit within 2 s.
    setTimeout(() => process.exit(0), 1900).unref();
    void Promise.all([agent?.stop(), runtime.shutdown(), admin?.close()]).then(() => process.exit(0));
  };
  // SIGTERM drains, then exits; a second one (or SIGINT) stops at once. Before the runtime is up
  // there is nothing to drain.
  const onSigterm = (): void => {
    sigterms++;
    if (!started || sigterms > 1) {
      if (started && !stopping) log.warn({ signal: 'SIGTERM', sessions_left: runtime.sessionCount() }, 'second SIGTERM: ending the drain now');
      stop('SIGTERM');
      return;
    }
    runtime.drain({ timeoutS: runtime.snapshot.admin.drain_timeout_s ?? DEFAULT_DRAIN_TIMEOUT_S, source: 'SIGTERM', exit: true });
  };
  runtime.on('drained', (o: DrainOutcome) => {
    if (o.exit) stop(`drained (${o.source})`);
  });
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', onSigterm);

  try {
    await runtime.start();
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
  started = true;
  // The one config authority: REST changes, reloads and the fleet agent all go through its queue.
  const store = new ConfigStore(runtime.snapshot, { target: runtime, warn: (m) => log.debug(m) });
  process.on('SIGHUP', () => reload(cli.config, agent !== null, store, log, 'SIGHUP'));
  if (cli.watchConfig || snapshot.admin.watch_config === true) {
    const file = cli.config;
    if (file === undefined) log.warn('admin.watch_config ignored: no -c file');
    else if (cli.fleet !== undefined) log.warn({ file }, 'config file watch ignored: a fleet member takes its config from NATS');
    else {
      watch = new ConfigWatch(file, () => reload(file, false, store, log, 'file watch'), log);
      if (!watch.start()) watch = null;
    }
  }
  if (cli.fleet !== undefined) {
    const f = cli.fleet;
    agent = new FleetAgent({
      connection: f.connection,
      fleet: f.fleet,
      nodeId: f.nodeId,
      labels: f.labels,
      address: f.address,
      runtime,
      base: { source: cli.config ?? '(no -c)', config: base },
      strict: cli.strict,
      log,
      store,
      telemetryMs: f.telemetryMs,
      ...(f.stateDir !== undefined ? { stateDir: f.stateDir } : {}),
      ...(initial !== undefined ? { initial } : {}),
    });
    agent.start();
    log.info({ fleet: f.fleet, node: f.nodeId, labels: f.labels, address: f.address, nats: redactServers(f.connection.servers) }, 'fleet member: desired state from NATS KV');
  }
  // The admin routes exist even unbound: L7mpController and Prometheus clusters reach them.
  const api = createAdmin(runtime, {
    host: adminAddr?.host ?? '127.0.0.1',
    port: adminAddr?.port ?? 0,
    ...(cli.adminToken ? { token: cli.adminToken } : {}),
    insecure: adminInsecure,
    log,
    store,
  });
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
  const fds = runtime.fdLimit;
  log.info(
    { fd_soft_limit: fds?.soft ?? null, fd_hard_limit: fds?.hard ?? null, max_sessions: runtime.sessionCap() },
    // Node raised the soft limit to the hard one when it started (src/node.cc); the session cap derives from it.
    'open-file limit (soft raised to hard at start) and the process-wide session cap',
  );
  if (!cli.adminToken && !adminInsecure) {
    for (const x of exposedAdminListeners(snapshot)) {
      log.warn(x, `listener ${x.listener} serves the admin API (${x.cluster}) on a non-loopback address without a token: only loopback peers are served, others get 403 (set --admin-token, or --admin-insecure)`);
    }
  }
  log.info({ workers: cli.workers, config: cli.config, pid: process.pid }, 'l7mp-ts ready');
}

void main();

/**
 * SIGHUP (or a change seen by `--watch-config`, `trigger` says which): read the `-c` file again
 * and apply it as `POST /api/v1/config` does, through the config store's queue (the one every
 * change takes), all or nothing; sessions on an endpoint the file no longer lists leave it. A
 * file that does not parse, validate or bind is refused with its error and the running config
 * stays. The `admin` section is validated but, as over REST, its running settings stay (`POST
 * /api/v1/admin` changes them). A fleet member's config belongs to the fleet: -c is only
 * its base, so SIGHUP does nothing there.
 */
function reload(file: string | undefined, fleet: boolean, store: ConfigStore, log: Logger, trigger: 'SIGHUP' | 'file watch'): void {
  const via = trigger === 'SIGHUP' ? { signal: 'SIGHUP' } : { trigger };
  if (file === undefined || fleet) {
    log.warn(via, fleet ? `${trigger} ignored: a fleet member takes its config from NATS` : `${trigger} ignored: no -c file to read again`);
    return;
  }
  let before = store.current;
  store.update(() => {
    // Inside the queue: the diff logged is against what ran just before this reload.
    before = store.current;
    return store.replace(readConfigFile(file));
  }).then(
    (next) => log.info({ ...via, file, ...configDiff(before, next) }, 'config reloaded'),
    (e: unknown) => log.error({ ...via, file, err: (e as Error).message }, 'config reload refused; the running config stays'),
  );
}
