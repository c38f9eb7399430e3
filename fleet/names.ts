/**
 * The names a fleet uses on NATS: its JetStream KV bucket, the keys in it, and the core subjects.
 * One place, so the proxy, the CLI, the tests and the README agree.
 *
 * ```
 * KV bucket  l7mp-<fleet>                      desired state (history 10, file storage)
 *   node.<nodeId>                              {config}            `apply --node`
 *   selector.<base64url("k=v,k2=v2")>          {selector, config}  `apply --selector`
 *   compiled.<nodeId>                          {config, resources} `apply` of l7mp CRDs (compiled)
 *   k8s.<Kind>.<namespace>.<name>              one l7mp CRD (VirtualService, Target, Rule)
 *
 * subjects (core NATS; all of them lossy on purpose, nothing depends on one message)
 *   l7mp.<fleet>.status.<nodeId>               ACK / NACK after each apply attempt and each resync
 *   l7mp.<fleet>.hb.<nodeId>                   heartbeat: labels, address, revision, health, totals
 *   l7mp.<fleet>.stats.<nodeId>                per listener and cluster: sessions, pps, bytes, drops
 *   l7mp.<fleet>.discover                      request; every node answers with its heartbeat
 *   l7mp.<fleet>.actors.<nodeId>               request; the node answers with its actor tree
 *   l7mp.<fleet>.drain.<nodeId>                request {timeout_s?, exit?}; the node drains and answers its drain status
 * ```
 */
import { L7Error, ErrorCode } from '../common/errors.ts';

/** A fleet or node name: letters, digits, `_` and `-` (one NATS subject token, one KV key token). */
const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Check a fleet name or node id.
 * @param what the flag or field named in the error (`--fleet`, `--node-id`).
 * @throws L7Error `L7_ERR_INVALID_ARGUMENT` naming the flag and the value.
 */
export function checkToken(what: string, v: string): string {
  if (!TOKEN.test(v)) throw new L7Error(ErrorCode.InvalidArgument, `${what}: must be 1..64 letters, digits, '_' or '-', got ${JSON.stringify(v)}`);
  return v;
}

/** The default node id: `<hostname>-<pid>`, with characters a subject token cannot hold replaced by `-`. */
export function defaultNodeId(hostname: string, pid: number): string {
  return `${hostname.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 50)}-${pid}`;
}

/** Names of one fleet. */
export interface FleetNames {
  readonly fleet: string;
  /** KV bucket of desired state. */
  readonly bucket: string;
  nodeKey(nodeId: string): string;
  compiledKey(nodeId: string): string;
  /** Key of the config for a label selector (its canonical `k=v,...` form, base64url). */
  selectorKey(canonical: string): string;
  /** Key of a stored CRD. */
  resourceKey(kind: string, namespace: string, name: string): string;
  readonly selectorPrefix: string;
  readonly resourcePrefix: string;
  readonly compiledPrefix: string;
  status(nodeId: string): string;
  heartbeat(nodeId: string): string;
  stats(nodeId: string): string;
  actors(nodeId: string): string;
  /** The drain command of a node (request; the answer is its drain status). */
  drain(nodeId: string): string;
  readonly discover: string;
  /** Wildcards for observers. */
  readonly allStatus: string;
  readonly allHeartbeats: string;
  readonly allStats: string;
}

/** Names for `fleet` (already checked with {@link checkToken}). */
export function fleetNames(fleet: string): FleetNames {
  const s = `l7mp.${fleet}`;
  return {
    fleet,
    bucket: `l7mp-${fleet}`,
    nodeKey: (n) => `node.${n}`,
    compiledKey: (n) => `compiled.${n}`,
    selectorKey: (c) => `selector.${Buffer.from(c).toString('base64url') || '_'}`,
    resourceKey: (kind, ns, name) => `k8s.${kind}.${ns}.${name}`,
    selectorPrefix: 'selector.',
    resourcePrefix: 'k8s.',
    compiledPrefix: 'compiled.',
    status: (n) => `${s}.status.${n}`,
    heartbeat: (n) => `${s}.hb.${n}`,
    stats: (n) => `${s}.stats.${n}`,
    actors: (n) => `${s}.actors.${n}`,
    drain: (n) => `${s}.drain.${n}`,
    discover: `${s}.discover`,
    allStatus: `${s}.status.*`,
    allHeartbeats: `${s}.hb.*`,
    allStats: `${s}.stats.*`,
  };
}
