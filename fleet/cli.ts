/**
 * Fleet commands (run, print, exit; nothing stays running):
 *
 * - `l7mp-ts apply -f FILE --nats URL [--fleet F] (--node ID | --selector k=v[,k=v]) [--wait-s N]`
 *   writes an l7mp config to `node.<ID>` or to `selector.<...>` in the fleet's KV bucket;
 *   without a target flag, FILE holds l7mp CRDs (multi-document YAML): they are stored under
 *   `k8s.<Kind>.<ns>.<name>`, every stored CRD is compiled against the live inventory
 *   (`discover`), and each node's result is written to `compiled.<node>`. Then it waits for every
 *   targeted node to report the new revision and prints one line per node:
 *   `<node> ACK revision <r>`, `<node> NACK revision <r>: <code> <message>` or
 *   `<node> TIMEOUT revision <r>: ...`. Exit 0 only if every targeted node ACKed; 1 otherwise
 *   (and for bad input or an unreachable server).
 * - `l7mp-ts fleet status --nats URL [--fleet F] [--json] [--wait-ms N]`: the nodes that answer
 *   `discover` within the wait (default 1000 ms).
 * - `l7mp-ts fleet actors NODE --nats URL [--fleet F] [--json]`: a node's actor tree.
 * - `l7mp-ts fleet drain NODE --nats URL [--fleet F] [--timeout-s N] [--exit]`: the node drains
 *   (runtime/main/drain.ts); prints its drain status as JSON. Exit 1 if it does not answer or refuses.
 *
 * Waiting for an answer does not rely on one status message (a core publish can be lost): the
 * command also asks every second with `discover`, whose answers carry each node's last result.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { readConfigFile } from '../cluster-config/load.ts';
import { parseYamlDocuments } from '../cluster-config/parse.ts';
import { renderTree } from '../runtime/main/admin/actors.ts';
import type { ActorNode } from '../actors/tree.ts';
import { L7Error } from '../common/errors.ts';
import { NATS_FLAGS, NATS_USAGE, connectionOptions } from './options.ts';
import { checkToken, fleetNames, type FleetNames } from './names.ts';
import { formatLabels, matches, parseLabels } from './labels.ts';
import { openBucket } from './agent.ts';
import { compile, fqn, parseResources, type InventoryNode, type Resource } from './crd.ts';
import type { Heartbeat } from './telemetry.ts';
import { FleetController } from './controller.ts';
import { isLogLevel, LOG_LEVELS, makeLogger } from '../common/log.ts';
import { MAX_DRAIN_TIMEOUT_S } from '../cluster-config/schema.ts';

const APPLY_USAGE = `Usage: l7mp-ts apply -f FILE --nats URL [--fleet F] [--node ID | --selector k=v[,k=v]] [--wait-s N]
  -f, --file FILE        an l7mp config (YAML/JSON) for --node/--selector; without them, l7mp CRDs
                         (VirtualService, Target, Rule; multi-document YAML), compiled for every node
      --node ID          the node to configure
      --selector k=v,... every node with these labels (now and later)
      --wait-s N         how long to wait for ACKs (default 10)
      --fleet F          fleet (default "default")
${NATS_USAGE}`;

const FLEET_USAGE = `Usage: l7mp-ts fleet status --nats URL [--fleet F] [--json] [--wait-ms N]
       l7mp-ts fleet actors NODE --nats URL [--fleet F] [--json]
       l7mp-ts fleet drain NODE --nats URL [--fleet F] [--timeout-s N] [--exit]
       l7mp-ts fleet controller --nats URL [--fleet F] [--interval-s N] [--expire-s N] [-l LEVEL]
  drain: the node takes no new sessions, lets live ones finish within N s (default its
         admin.drain_timeout_s), then cuts the rest; it stays up drained unless --exit
  controller: keep the stored l7mp CRDs compiled against the live inventory (runs until SIGTERM)
${NATS_USAGE}`;

function err(cmd: string, msg: string): number {
  process.stderr.write(`l7mp-ts ${cmd}: ${msg}\n`);
  return 1;
}

async function open(v: Record<string, string | boolean | undefined>, name: string): Promise<{ nc: NatsConnection; names: FleetNames }> {
  const opts = connectionOptions(v, name);
  // A command fails fast when the server is not there; it does not wait for it like a proxy.
  const nc = await connect({ ...opts, waitOnFirstConnect: false, maxReconnectAttempts: 20 });
  return { nc, names: fleetNames(checkToken('--fleet', (v.fleet as string | undefined) ?? 'default')) };
}

/** Every node's heartbeat, as answered to `discover` within `ms`. */
export async function discover(nc: NatsConnection, names: FleetNames, ms: number): Promise<Heartbeat[]> {
  const out = new Map<string, Heartbeat>();
  try {
    const it = await nc.requestMany(names.discover, '', { strategy: 'timer', maxWait: ms });
    for await (const m of it) {
      try {
        const h = m.json<Heartbeat>();
        if (typeof h.nodeId === 'string') out.set(h.nodeId, h);
      } catch {
        // not a heartbeat: ignore
      }
    }
  } catch {
    // no responders: an empty fleet
  }
  return [...out.values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
}

/** A node's answer for a revision: from a status message or a heartbeat's `last`. */
interface Answer {
  ok: boolean;
  revision: number;
  error?: { code: string; message: string };
}

/**
 * Wait until every node in `targets` (node → the revision it must reach) answered with that
 * revision or a later one, or `waitMs` passed. Status messages are the fast path; `discover`
 * every second covers the ones lost.
 */
async function waitAnswers(nc: NatsConnection, names: FleetNames, targets: Map<string, number>, waitMs: number, onStatus: (cb: (node: string, a: Answer) => void) => void): Promise<Map<string, Answer>> {
  const got = new Map<string, Answer>();
  const take = (node: string, a: Answer): void => {
    const want = targets.get(node);
    if (want === undefined || a.revision < want) return;
    got.set(node, a);
  };
  onStatus(take);
  const end = Date.now() + waitMs;
  let nextPoll = Date.now() + 1000;
  while (got.size < targets.size && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    if (Date.now() >= nextPoll && got.size < targets.size) {
      for (const h of await discover(nc, names, Math.min(500, Math.max(100, end - Date.now())))) {
        if (h.last) take(h.nodeId, { ok: h.last.ok, revision: h.last.revision, ...(h.last.error ? { error: h.last.error } : {}) });
      }
      nextPoll = Date.now() + 1000;
    }
  }
  return got;
}

/** `l7mp-ts apply`; returns the exit code. */
export async function applyCommand(argv: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: { ...NATS_FLAGS, file: { type: 'string', short: 'f' }, fleet: { type: 'string' }, node: { type: 'string' }, selector: { type: 'string' }, 'wait-s': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }).values;
  } catch (e) {
    return err('apply', `${(e as Error).message}\n${APPLY_USAGE}`);
  }
  if (v.help) {
    process.stdout.write(`${APPLY_USAGE}\n`);
    return 0;
  }
  if (v.file === undefined) return err('apply', `-f FILE is required\n${APPLY_USAGE}`);
  if (v.node !== undefined && v.selector !== undefined) return err('apply', '--node and --selector exclude each other');
  const waitS = Number(v['wait-s'] ?? 10);
  if (!(waitS > 0 && waitS <= 3600)) return err('apply', `--wait-s: must be a number of seconds 0..3600, got "${v['wait-s']}"`);
  let doc: unknown;
  let resources: Resource[] | undefined;
  let selector: Record<string, string> | undefined;
  try {
    if (v.node !== undefined) checkToken('--node', v.node);
    if (v.selector !== undefined) selector = parseLabels('--selector', v.selector);
    if (v.node !== undefined || v.selector !== undefined) doc = readConfigFile(v.file);
    else {
      let text: string;
      try {
        text = fs.readFileSync(v.file, 'utf8');
      } catch (e) {
        return err('apply', `cannot read ${v.file}: ${(e as Error).message}`);
      }
      let docs: unknown[];
      try {
        docs = parseYamlDocuments(text);
      } catch (e) {
        return err('apply', `${v.file}: ${(e as Error).message}`);
      }
      resources = parseResources(docs, v.file);
      if (resources.length === 0) return err('apply', `${v.file}: no l7mp resources (give --node or --selector for an l7mp config)`);
    }
  } catch (e) {
    return err('apply', (e as Error).message);
  }
  if (doc !== undefined && (doc === null || typeof doc !== 'object' || Array.isArray(doc))) return err('apply', `${v.file}: must hold an l7mp config object`);

  let conn;
  try {
    conn = await open(v, 'l7mp-ts apply');
  } catch (e) {
    return err('apply', e instanceof L7Error ? e.message : `cannot connect to NATS: ${(e as Error).message}`);
  }
  const { nc, names } = conn;
  try {
    const kv = await openBucket(nc, names);
    // Listen before writing, so no answer is missed.
    const early: Array<[string, Answer]> = [];
    let sink: (node: string, a: Answer) => void = (n, a) => early.push([n, a]);
    nc.subscribe(names.allStatus, {
      callback: (e, m) => {
        if (e) return;
        try {
          const s = m.json<{ type: string; nodeId: string; revision: number; error?: { code: string; message: string } }>();
          sink(s.nodeId, { ok: s.type === 'ack', revision: s.revision, ...(s.error ? { error: s.error } : {}) });
        } catch {
          // not a status message
        }
      },
    });
    const targets = new Map<string, number>();
    if (v.node !== undefined) {
      targets.set(v.node, await kv.put(names.nodeKey(v.node), JSON.stringify({ config: doc, time: new Date().toISOString() })));
    } else if (selector !== undefined) {
      const canonical = formatLabels(selector);
      const rev = await kv.put(names.selectorKey(canonical), JSON.stringify({ selector: { matchLabels: selector }, config: doc, time: new Date().toISOString() }));
      const nodes = (await discover(nc, names, 1000)).filter((h) => matches({ matchLabels: selector }, h.labels));
      for (const n of nodes) targets.set(n.nodeId, rev);
      if (nodes.length === 0) process.stdout.write(`selector ${canonical}: stored at revision ${rev}; no node matches it now\n`);
    } else {
      const rs = resources as Resource[];
      // Compile every stored resource (earlier applies included, as kubectl apply accumulates)
      // with these replacing theirs; nothing is written unless it all compiles.
      const byKey = new Map<string, Resource>();
      for await (const k of await kv.keys(`${names.resourcePrefix}>`)) {
        const e = await kv.get(k);
        if (e !== null && e.operation === 'PUT') byKey.set(k, e.json<Resource>());
      }
      for (const r of rs) byKey.set(names.resourceKey(r.kind, r.metadata.namespace, r.metadata.name), r);
      const all = [...byKey.values()];
      const inventory: InventoryNode[] = (await discover(nc, names, 1000)).map((h) => ({ nodeId: h.nodeId, labels: h.labels, address: h.address }));
      const compiled = compile(all, inventory);
      for (const r of rs) await kv.put(names.resourceKey(r.kind, r.metadata.namespace, r.metadata.name), JSON.stringify(r));
      if (inventory.length === 0) {
        process.stdout.write(`stored ${rs.length} resources; no node answered, nothing compiled\n`);
        return 1;
      }
      for (const [node, c] of compiled) {
        targets.set(node, await kv.put(names.compiledKey(node), JSON.stringify({ config: c.config, resources: c.resources, time: new Date().toISOString() })));
      }
      process.stderr.write(`compiled ${all.length} resources (${rs.map(fqn).join(', ')} applied) for ${compiled.size} nodes\n`);
    }
    const got = await waitAnswers(nc, names, targets, waitS * 1000, (cb) => {
      sink = cb;
      for (const [n, a] of early) cb(n, a);
    });
    let ok = true;
    for (const [node, rev] of [...targets].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const a = got.get(node);
      if (a === undefined) {
        ok = false;
        process.stdout.write(`${node} TIMEOUT revision ${rev}: no answer within ${waitS} s\n`);
      } else if (a.ok) process.stdout.write(`${node} ACK revision ${a.revision}\n`);
      else {
        ok = false;
        process.stdout.write(`${node} NACK revision ${a.revision}: ${a.error?.code ?? ''} ${a.error?.message ?? ''}\n`);
      }
    }
    return ok ? 0 : 1;
  } catch (e) {
    return err('apply', (e as Error).message);
  } finally {
    await nc.close().catch(() => {});
  }
}

/** `l7mp-ts fleet ...`; returns the exit code. */
export async function fleetCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...NATS_FLAGS, fleet: { type: 'string' }, json: { type: 'boolean' }, 'wait-ms': { type: 'string' }, 'interval-s': { type: 'string' }, 'expire-s': { type: 'string' }, 'log-level': { type: 'string', short: 'l' }, help: { type: 'boolean', short: 'h' }, 'timeout-s': { type: 'string' }, exit: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    return err('fleet', `${(e as Error).message}\n${FLEET_USAGE}`);
  }
  const v = parsed.values;
  const [sub, node, ...rest] = parsed.positionals;
  if (v.help) {
    process.stdout.write(`${FLEET_USAGE}\n`);
    return 0;
  }
  if (sub === 'controller') {
    if (node !== undefined) return err('fleet', `unexpected argument ${JSON.stringify(node)}`);
    return controller(v);
  }
  if (sub !== 'status' && sub !== 'actors' && sub !== 'drain') return err('fleet', `unknown subcommand ${JSON.stringify(sub ?? '')}\n${FLEET_USAGE}`);
  if (rest.length > 0 || (sub === 'status' && node !== undefined)) return err('fleet', `unexpected argument ${JSON.stringify(rest[0] ?? node)}`);
  if (sub !== 'status' && node === undefined) return err('fleet', `${sub}: the NODE argument is required`);
  if (sub !== 'drain' && (v['timeout-s'] !== undefined || v.exit !== undefined)) return err('fleet', '--timeout-s and --exit go with drain');
  const drainBody: { timeout_s?: number; exit?: boolean } = {};
  if (v['timeout-s'] !== undefined) {
    const t = Number(v['timeout-s']);
    if (!(t >= 0 && t <= MAX_DRAIN_TIMEOUT_S)) return err('fleet', `--timeout-s: must be 0..${MAX_DRAIN_TIMEOUT_S}, got "${v['timeout-s']}"`);
    drainBody.timeout_s = t;
  }
  if (v.exit === true) drainBody.exit = true;
  const waitMs = Number(v['wait-ms'] ?? 1000);
  if (!(waitMs >= 50 && waitMs <= 60_000)) return err('fleet', `--wait-ms: must be 50..60000, got "${v['wait-ms']}"`);
  let conn;
  try {
    conn = await open(v, `l7mp-ts fleet ${sub}`);
  } catch (e) {
    return err('fleet', e instanceof L7Error ? e.message : `cannot connect to NATS: ${(e as Error).message}`);
  }
  const { nc, names } = conn;
  try {
    if (sub === 'status') {
      const nodes = await discover(nc, names, waitMs);
      const rows = nodes.map((h) => ({ nodeId: h.nodeId, labels: h.labels, address: h.address, revision: h.revision, health: h.health, workers: h.workers, last: h.last, synced: h.synced, stats: h.stats }));
      if (v.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return 0;
      }
      const table = [['NODE', 'LABELS', 'ADDRESS', 'REVISION', 'HEALTH', 'SESSIONS', 'ACTIVE', 'PPS', 'BYTES', 'DROPS', 'LAST']];
      for (const r of rows) {
        const last = r.last === null ? '-' : r.last.ok ? `ACK ${r.last.revision}` : `NACK ${r.last.revision}: ${r.last.error?.message ?? ''}`;
        table.push([r.nodeId, formatLabels(r.labels) || '-', r.address, String(r.revision), r.health, String(r.stats.sessions), String(r.stats.active), String(r.stats.pps), String(r.stats.bytes), String(r.stats.drops), last]);
      }
      const width = (table[0] as string[]).map((_, i) => Math.max(...table.map((row) => (row[i] as string).length)));
      for (const row of table) process.stdout.write(`${row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(width[i] as number))).join('  ')}\n`);
      if (rows.length === 0) process.stderr.write(`no node of fleet ${names.fleet} answered within ${waitMs} ms\n`);
      return 0;
    }
    if (sub === 'drain') {
      let d;
      try {
        d = await nc.request(names.drain(node as string), JSON.stringify(drainBody), { timeout: 5000 });
      } catch (e) {
        return err('fleet', `node ${node} did not answer: ${(e as Error).message}`);
      }
      const status = d.json<{ error?: { message: string } }>();
      if (status.error !== undefined) return err('fleet', `node ${node}: ${status.error.message}`);
      process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      return 0;
    }
    let m;
    try {
      m = await nc.request(names.actors(node as string), '', { timeout: 5000 });
    } catch (e) {
      return err('fleet', `node ${node} did not answer: ${(e as Error).message}`);
    }
    const tree = m.json<ActorNode>();
    process.stdout.write(v.json ? `${JSON.stringify(tree, null, 2)}\n` : renderTree(tree));
    return 0;
  } finally {
    await nc.close().catch(() => {});
  }
}

/** `l7mp-ts fleet controller`: runs until SIGINT/SIGTERM (exit 0). */
async function controller(v: Record<string, string | boolean | undefined>): Promise<number> {
  const intervalS = Number(v['interval-s'] ?? 2);
  const expireS = Number(v['expire-s'] ?? 15);
  if (!(intervalS >= 0.1 && intervalS <= 3600)) return err('fleet', `--interval-s: must be 0.1..3600, got "${String(v['interval-s'])}"`);
  if (!(expireS > intervalS && expireS <= 86_400)) return err('fleet', `--expire-s: must be more than --interval-s and at most 86400, got "${String(v['expire-s'])}"`);
  const level = (v['log-level'] as string | undefined) ?? 'info';
  if (!isLogLevel(level)) return err('fleet', `-l: must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  let opts;
  let fleet: string;
  try {
    opts = connectionOptions(v, 'l7mp-ts fleet controller');
    fleet = checkToken('--fleet', (v.fleet as string | undefined) ?? 'default');
  } catch (e) {
    return err('fleet', (e as Error).message);
  }
  const log = makeLogger(level, { thread: 'controller' });
  const c = new FleetController({ connection: opts, fleet, log, intervalMs: Math.round(intervalS * 1000), expireMs: Math.round(expireS * 1000) });
  const done = new Promise<number>((resolve) => {
    const stop = (): void => void c.stop().then(() => resolve(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await c.start();
  log.info({ fleet }, 'l7mp-ts fleet controller ready');
  return done;
}
