/**
 * Kernel offload of a session (native-offload/, `-o init`): when every connection is a plain
 * connected UDP socket, the hop towards the source is armed (actors/hops.ts `ArmedHop`); the first
 * reply that reaches the source makes the session established and its sockets are spliced in the
 * kernel (socket i's datagrams leave through socket i+1). The session still owns the flow: it
 * reads the kernel's per-socket counters into its stages (idle timeout, metrics, actor tree,
 * access log) and unsplices before closing.
 */
import type { Connection } from '../protocols/types.ts';
import type { Splice } from '../native-offload/provider.ts';
import type { SessionCore, Stage } from './session-core.ts';
import { NO_COUNTS, zeroCounts } from './record.ts';

/** The offload state of one session and its splice, if any. One per session, made with it. */
export class SessionSplice {
  /** Every connection is a plain UDP socket and offload is on: the session may be spliced. */
  offloadable = false;
  /** The live kernel splice, if any. */
  splice: Splice | null = null;
  /** Splice again at the next tick (a socket was not connected yet, or a stage reconnected). */
  spliceWanted = false;
  /** Kernel counters: the last read, and a scratch buffer (3 per socket). */
  private kernelSeen: Float64Array | null = null;
  private kernelBuf: Float64Array | null = null;
  /** CLOCK_MONOTONIC ns of the last datagram the kernel relayed (0: none yet). */
  private kernelLastNs = 0;
  /** Datagrams JavaScript received on this session's sockets when it was spliced (to tell how many it saw after). */
  private jsRxAtSplice = 0;
  /** Times the session was spliced, and watchdog resets. */
  private splices = 0;
  private spliceResets = 0;

  private readonly session: SessionCore;

  constructor(session: SessionCore) {
    this.session = session;
  }

  private get init(): SessionCore['init'] {
    return this.session.init;
  }

  private get stages(): Stage[] {
    return this.session.stages;
  }

  private get status(): SessionCore['status'] {
    return this.session.status;
  }

  private get ended(): boolean {
    return this.session.ended;
  }

  private event(event: string, message: string): void {
    this.session.event(event, message);
  }

  /**
   * Every stage is connected: the session may be spliced if offload is on and every connection
   * offers a socket to splice (plain connected UDP). Returns {@link offloadable}.
   */
  arm(): boolean {
    const off = this.init.env.offload;
    this.offloadable = off !== undefined && off !== null && this.stages.every((s) => s.conn?.spliceFd !== undefined);
    return this.offloadable;
  }

  /** A stage's connection closed: its sockets leave the kernel path; splice again once it is reconnected. */
  onStageClosed(): void {
    if (this.splice !== null) {
      this.unsplice();
      this.spliceWanted = this.offloadable;
    }
  }


  /** Datagrams JavaScript received on the session's current connections. */
  private jsRx(): number {
    let n = 0;
    for (const s of this.stages) if (s.conn !== null) n += s.conn.stats.rxPackets;
    return n;
  }

  /** The session is established (first reply): hand its sockets to the kernel. */
  trySplice(): void {
    const off = this.init.env.offload;
    if (!this.offloadable || off === undefined || off === null || this.splice !== null || this.ended || this.status !== 'CONNECTED') return;
    const fds: number[] = [];
    for (const st of this.stages) {
      let fd = st.conn?.spliceFd?.() ?? -1;
      if (fd < 0 && st.conn?.prepareSplice !== undefined) {
        // A downstream served through the listening sockets: it gets a socket of its own now.
        st.conn.prepareSplice();
        fd = st.conn.spliceFd?.() ?? -1;
      }
      if (fd < 0) {
        // Not connected yet (the downstream connects asynchronously): try again at the next tick.
        this.spliceWanted = true;
        return;
      }
      fds.push(fd);
    }
    this.spliceWanted = false;
    const sp = off.splice(fds, (i, errno) => this.onSpliceReset(i, errno));
    if (sp === null) {
      this.init.env.rateLog.warn(`offload-splice:${this.init.listener}`, { session: this.init.name, reason: off.lastError }, 'offload: session stays in userspace');
      this.event('OFFLOAD', `not spliced: ${off.lastError}`);
      return;
    }
    this.splice = sp;
    this.splices++;
    const bound = off.queueBound();
    if (bound.limit === 0) this.init.env.rateLog.warn('offload-unbounded', { reason: bound.reason }, 'offload: the kernel send queues of spliced sockets are not bounded (a starved kworker lets them grow)');
    this.kernelSeen = new Float64Array(4 * fds.length);
    this.kernelBuf = new Float64Array(4 * fds.length);
    this.jsRxAtSplice = this.jsRx();
    // The stages' kernel counts start here (until now they shared the frozen zeros).
    for (const st of this.stages) if (st.kernel === NO_COUNTS) st.kernel = zeroCounts();
    // What waited in the receive queues at the splice was relayed by the provider: count it as the kernel's.
    const n = fds.length;
    for (let i = 0; i < n; i++) {
      const dp = sp.drained[2 * i] as number;
      const db = sp.drained[2 * i + 1] as number;
      if (dp === 0) continue;
      const from = (this.stages[i] as Stage).kernel;
      const to = (this.stages[(i + 1) % n] as Stage).kernel;
      from.rxPackets += dp;
      from.rxBytes += db;
      to.txPackets += dp;
      to.txBytes += db;
    }
    this.stages.forEach((st, i) => {
      // The kernel relays now; a JS read would only find an empty queue once per datagram.
      if (st.conn?.spliceReading?.(false) === true) sp.unpoll(i);
      (st.conn as Connection).spliceErrorHook = (err: Error) => {
        // An ICMP error reached Node before the watchdog: same remedy, a fresh psock.
        this.init.env.rateLog.warn(`offload-error:${this.init.listener}`, { session: this.init.name, stage: i, err: err.message }, 'offload: socket error on a spliced session; psock reset');
        sp.reset(i);
      };
    });
    this.event('OFFLOAD', `spliced ${fds.length} sockets in the kernel`);
  }

  private onSpliceReset(i: number, errno: number): void {
    this.spliceResets++;
    this.init.env.rateLog.warn(`offload-reset:${this.init.listener}`, { session: this.init.name, stage: i, errno }, 'offload: socket error on a spliced session; psock reset');
  }

  /** Fold what the kernel relayed since the last read into the stages' kernel counts. */
  syncKernel(): void {
    const sp = this.splice;
    const seen = this.kernelSeen;
    const buf = this.kernelBuf;
    if (sp === null || seen === null || buf === null || !sp.read(buf)) return;
    const n = this.stages.length;
    for (let i = 0; i < n; i++) {
      const dp = (buf[4 * i] as number) - (seen[4 * i] as number);
      const db = (buf[4 * i + 1] as number) - (seen[4 * i + 1] as number);
      // Received on socket i and dropped: the next socket's send queue was full (the queue bound).
      const dd = (buf[4 * i + 3] as number) - (seen[4 * i + 3] as number);
      const from = (this.stages[i] as Stage).kernel;
      const to = (this.stages[(i + 1) % n] as Stage).kernel;
      if (dp > 0) {
        from.rxPackets += dp;
        from.rxBytes += db;
        to.txPackets += dp;
        to.txBytes += db;
      }
      if (dd > 0) to.drops += dd;
      seen[4 * i] = buf[4 * i] as number;
      seen[4 * i + 1] = buf[4 * i + 1] as number;
      seen[4 * i + 3] = buf[4 * i + 3] as number;
      const last = buf[4 * i + 2] as number;
      if (last > this.kernelLastNs) this.kernelLastNs = last;
    }
  }

  /**
   * Read the kernel counters one last time and take the sockets out of the kernel path; unless the
   * session is ending, JavaScript reads its sockets again.
   */
  unsplice(): void {
    const sp = this.splice;
    if (sp === null) return;
    this.syncKernel();
    sp.close();
    this.splice = null;
    for (const st of this.stages) {
      if (st.conn === null) continue;
      st.conn.spliceErrorHook = null;
      if (!this.ended) st.conn.spliceReading?.(true);
    }
  }

  /**
   * Offload state for the actor tree: `spliced` now; `kernel_packets` the datagrams the kernel
   * relayed (all sockets); `js_packets_since_splice` datagrams JavaScript still received on the
   * spliced sockets (0 when the splice works); `last_activity_ms` since the kernel's last datagram.
   */
  offloadState(): Record<string, unknown> {
    let kp = 0;
    for (const s of this.stages) kp += s.kernel.rxPackets;
    const idle = this.kernelLastNs > 0 ? Number(process.hrtime.bigint() - BigInt(Math.round(this.kernelLastNs))) / 1e6 : null;
    return {
      spliced: this.splice !== null,
      splices: this.splices,
      resets: this.spliceResets,
      kernel_packets: kp,
      js_packets_since_splice: this.splices > 0 ? this.jsRx() - this.jsRxAtSplice : 0,
      last_activity_ms: idle === null ? null : Math.max(0, Math.round(idle)),
    };
  }
}
