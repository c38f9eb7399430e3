/**
 * What the runtime provides to the actors of one worker thread (runtime/worker/worker-main.ts implements
 * it): placement on the ring, hand-offs to other workers, admission gauges, the session table and
 * the offload provider. A leaf of actors/: the worker, listener and cluster actors import it, it
 * imports none of them.
 */
import type { ListenerConfig } from '../cluster-config/snapshot.ts';
import type { CoarseTimers } from '../common/clock.ts';
import type { Logger, RateLimitedLog } from '../common/log.ts';
import type { AdminAnswer, AdminCall, DatagramHandoff, ProtocolModule } from '../protocols/types.ts';
import type { OffloadProvider } from '../native-offload/provider.ts';
import type { SharedGauge } from './admission.ts';
import type { OverloadGuard } from './overload.ts';
import type { RecoveryBook, SessionRebuild } from './rebuild.ts';
import type { SessionRecord } from './record.ts';

/** What the runtime provides to the actors of one worker thread. */
export interface WorkerServices {
  readonly slot: number;
  /** Number of worker slots configured (not only the live ones). */
  readonly workers: number;
  readonly log: Logger;
  readonly rateLog: RateLimitedLog;
  readonly timers: CoarseTimers;
  /** The protocol module for a `spec.protocol` name. */
  protocol(name: string): ProtocolModule | undefined;
  /**
   * Owner slot of a session key on the ring of live workers; with `listener`, a rebuilt session's
   * pin (see {@link WorkerServices.unpin}) comes first.
   */
  ownerOf(key: string, listener?: string): number;
  /**
   * A rebuilt session served through the listening sockets ended: its peer `key` of `listener`
   * is no longer pinned to this worker (the main thread tells every worker). Optional.
   */
  unpin?(listener: string, key: string): void;
  /** This worker's session table (sessions that another worker can rebuild if this one dies), or null. */
  readonly recovery?: RecoveryBook | null;
  /**
   * Sessions of a dead worker handed to this one before its listener `listener` existed (a
   * replacement that rebuilds them as it starts): the listener takes them before it binds, so the
   * peers' first datagrams find their sessions. Optional.
   */
  takeAdoptions?(listener: string): Adoption[];
  /** Send a datagram hand-off to another worker; false if it cannot be delivered. */
  handoff(slot: number, h: DatagramHandoff): boolean;
  /** Send `msg` to cluster `cluster` on worker `slot` (see ClusterContext.sendPeer); false if it cannot be delivered. */
  sendCluster(slot: number, cluster: string, msg: unknown): boolean;
  /** The slot that hosts a `single`-placement listener. */
  placeSingle(listener: string): number;
  /** Keep a pending close (socket release) so shutdown can wait for it. */
  track(p: Promise<void>): void;
  /** A session ended. */
  sessionEnded(r: SessionRecord): void;
  /** The kernel offload provider when offload is on and available here, else null. */
  readonly offload: OffloadProvider | null;
  /** Kernel offload is asked for (`-o`, admin.offload not `disable`), available or not. */
  readonly offloadAsked: boolean;
  /** UDP listeners' datagrams are steered to their ring owner (ProcessShape.steered). */
  readonly steered?: boolean;
  /** Serve a request with the main thread's admin API (see {@link ClusterContext.admin}). */
  admin(call: AdminCall): Promise<AdminAnswer>;
  /** Sessions of every listener of the process (admission control, actors/admission.ts). */
  readonly processGauge: SharedGauge;
  /** Sessions of listener `name`, process-wide. */
  listenerGauge(name: string): SharedGauge;
  /** The process-wide session cap in force: admin.max_sessions, bounded by the open-file limit. */
  sessionCap(): number;
  /** File descriptors the sessions of the process hold (admission charges each session its own). */
  readonly fdGauge: SharedGauge;
  /** The fds sessions may hold in all: open-file soft limit - admin.fd_reserve (common/fd-limit.ts). */
  fdBudget(): number;
  /** The fds one session of listener `cfg` holds in this process (runtime/session-fds.ts). */
  sessionFdsOf(cfg: ListenerConfig): number;
  /** This worker's overload guard: refuses new datagram sessions while the event loop is late. */
  readonly overload: OverloadGuard;
  /**
   * The process drains (SIGTERM, a drain request; runtime/main/drain.ts): listeners take no new
   * sessions, a new datagram peer is refused (`draining`). Set once, never cleared.
   */
  readonly draining: boolean;
}

/** A dead worker's session waiting for its listener ({@link WorkerServices.takeAdoptions}). */
export interface Adoption {
  readonly address: string;
  readonly port: number;
  readonly shared: boolean;
  readonly rebuild: SessionRebuild;
  /** The listener could not take it (`no_listener`, `not_adoptable`). */
  refused(why: string): void;
}
