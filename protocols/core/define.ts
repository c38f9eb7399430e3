/**
 * `defineProtocol()`: a protocol declared once, typed from its schemas. Each spec a factory or
 * hook receives is `Static<typeof schema>` (the runtime passes only specs validated against that
 * schema); the counters it emits are declared with it, as drops or events; so are a main-thread
 * service and CRD hooks it needs. The result is the {@link ProtocolModule} the registry lists.
 *
 * ```ts
 * export const echo = defineProtocol({
 *   name: 'Echo',
 *   kind: 'datagram',
 *   cluster: { schema: EchoSpec, virtual: true, create: (cfg) => ... },
 * });
 * ```
 */
import type { Static, TSchema } from '@sinclair/typebox';
import type {
  ClusterContext,
  ClusterInstance,
  CrdHooks,
  ListenerBind,
  ListenerContext,
  ListenerInstance,
  ListenerSpecContext,
  ProtocolEvents,
  ProtocolModule,
  ProcessShape,
  ProtocolService,
  StreamKind,
} from '../types.ts';

/** The listener side of a protocol, typed by its schema `S`. */
export interface ListenerDef<S extends TSchema> {
  /** TypeBox schema of the listener `spec` (every field with description, default, unit). */
  readonly schema: S;
  create(cfg: ListenerSpecContext<Static<S>>, ctx: ListenerContext): ListenerInstance;
  /** `shared`: bound on every worker (SO_REUSEPORT); `single`: on one worker. */
  placement(spec: Static<S>): 'shared' | 'single';
  /** Idle timeout of its sessions, ms (0 = none). Default 0. */
  idleTimeoutMs?(spec: Static<S>): number;
  /** While the process drains, its sessions end once quiet (datagram protocols). Default false. */
  drainWhenQuiet?(spec: Static<S>): boolean;
  /** File descriptors a session holds for its downstream (default 1; see ProtocolModule). */
  downstreamFds?(spec: Static<S>, env: ProcessShape): number;
  /** The local addresses it binds (two listeners may not bind the same one). */
  binds?(spec: Static<S>): readonly ListenerBind[];
  /** Config-time checks beyond the schema; may return a normalized spec. */
  prepare?(spec: Static<S>, path: string): Static<S>;
  /** The listener events it counts, as drops or events. */
  readonly events?: ProtocolEvents;
  /** Its listeners start child sessions (`ListenerContext.spawnChild`). Default false. */
  readonly spawnsChildren?: boolean;
}

/** The cluster side of a protocol, typed by its schema `S`. */
export interface ClusterDef<S extends TSchema> {
  readonly schema: S;
  /** Virtual clusters take no endpoints and ignore load balancing. */
  readonly virtual: boolean;
  /** Config-time checks beyond the schema (main thread); may return a normalized spec. */
  prepare?(spec: Static<S>, path: string): Static<S>;
  /** Export each live session stage's traffic per session (the Metric cluster). */
  readonly sessionMetrics?: boolean;
  create(cfg: { name: string; spec: Static<S> }, ctx: ClusterContext): ClusterInstance;
  /** The cluster events it counts, as drops or events. */
  readonly events?: ProtocolEvents;
}

/** A protocol declaration: listener and cluster schemas `L` and `C` type everything else. */
export interface ProtocolDef<L extends TSchema, C extends TSchema> {
  /** The `spec.protocol` value. */
  readonly name: string;
  /** Stream kind of its connections (per connection it may differ: JSONSocket is its transport's). */
  readonly kind: StreamKind;
  readonly listener?: ListenerDef<L>;
  readonly cluster?: ClusterDef<C>;
  readonly service?: ProtocolService;
  readonly crd?: CrdHooks;
}

/** The protocol `def` declares, as the registry lists it. */
export function defineProtocol<L extends TSchema = TSchema, C extends TSchema = TSchema>(def: ProtocolDef<L, C>): ProtocolModule {
  return def;
}

/**
 * Every drop reason the given protocols declare on one side (`listener` or `cluster`). A name
 * declared as a drop by one protocol and as an event by another is a programming error.
 * @throws Error naming the counter and both protocols.
 */
export function dropReasons(mods: Iterable<ProtocolModule>, side: 'listener' | 'cluster'): ReadonlySet<string> {
  const kind = new Map<string, { drop: boolean; by: string }>();
  for (const m of mods) {
    for (const [name, e] of Object.entries(m[side]?.events ?? {})) {
      const seen = kind.get(name);
      if (seen !== undefined && seen.drop !== e.drop) throw new Error(`${side} counter "${name}" is a ${seen.drop ? 'drop' : 'event'} in ${seen.by} but a ${e.drop ? 'drop' : 'event'} in ${m.name}`);
      kind.set(name, { drop: e.drop, by: m.name });
    }
  }
  return new Set([...kind].filter(([, v]) => v.drop).map(([k]) => k));
}
