/**
 * Kernel offload of established UDP flows (l7mp `admin.offload`, `-o init|no_init|disable`;
 * docs/l7mp-compat.md §7), rebuilt on an eBPF sockmap splice instead of l7mp's tc classifier.
 *
 * ```
 *  client ──► P1 (session socket, connected to the client) ─┐ sk_skb verdict: cookie(P1) → peer P2,
 *  client ◄── P1 ◄─┐                                         │ bpf_sk_redirect_hash(P2, egress)
 *                  └── sk_skb verdict on P2 ◄── backend      ▼
 *                                             P2 (upstream socket, connected) ──► backend
 * ```
 * A session whose stages are all plain connected UDP sockets is spliced after its first reply:
 * socket i's datagrams leave through socket i+1 of the session's cycle, never reaching
 * JavaScript. The session keeps ownership: it reads the kernel's per-socket counters for idle
 * timeouts and metrics, and unsplices before it closes. Facts and gotchas (G1–G8) are in
 * docs/offload-facts.md; the BPF programs are native-offload/bpf/*.bpf.c.
 *
 * Providers: {@link EbpfOffload} (the addon, built by `npm run build:offload`) and
 * {@link NoopOffload} (userspace; the default, and the fallback with the reason when the addon
 * or BPF is not available).
 */
import os from 'node:os';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Whether a provider can offload on this machine, and if not, why. */
export interface OffloadProbe {
  readonly available: boolean;
  /** Human-readable reason when not available (e.g. "EPERM: needs CAP_BPF and CAP_NET_ADMIN"), "ok" otherwise. */
  readonly reason: string;
  /** The errno behind the reason (0 when available, or when the addon could not be loaded). */
  readonly errno: number;
}

/**
 * A live splice of one session's sockets. Socket i's datagrams are sent out of socket i+1 (the
 * last one's out of socket 0) by the kernel.
 */
export interface Splice {
  /** The sockets' fds, in cycle order. */
  readonly fds: readonly number[];
  /**
   * Kernel counters since the splice (`out` holds 4 per socket): `out[4i]` datagrams and
   * `out[4i+1]` bytes received on socket i and sent out of socket i+1, `out[4i+2]` the
   * CLOCK_MONOTONIC time of the last one in ns (comparable with `process.hrtime.bigint()`; 0 if
   * none), `out[4i+3]` datagrams received on socket i and dropped because socket i+1 already had
   * {@link OffloadProvider.queueBound} bytes queued and not yet sent. Returns false if the splice
   * is gone (closed); `out` is then left as it was.
   */
  read(out: Float64Array): boolean;
  /**
   * Give socket i a fresh psock after a socket error (an ICMP error stops the kernel relay of that
   * socket for good, facts G4). The eBPF watchdog does this by itself; a protocol that sees the
   * error first calls it. Counted in {@link Splice.resets}.
   */
  reset(i: number): void;
  /** Watchdog resets so far. */
  readonly resets: number;
  /**
   * Datagrams that were waiting in the sockets' receive queues when they were spliced, relayed
   * once by the provider: `[2i]` datagrams and `[2i+1]` bytes of socket i (sent out of i+1).
   */
  readonly drained: Float64Array;
  /**
   * Take socket i out of this thread's event-loop poll set, once JavaScript stopped reading it and
   * it has nothing queued to send (`Connection.spliceReading(false)` returned true). libuv drops a
   * stopped socket from epoll only when epoll next reports it, which a spliced socket never does,
   * yet its data-ready still wakes the thread in `epoll_wait` once per datagram (measured: ~80k
   * context switches of the worker per second of ping-pong, ~1 µs of RTT). Reading again
   * (`spliceReading(true)`) puts it back.
   */
  unpoll(i: number): void;
  /** Take the sockets out of the kernel path (normal datagram semantics again). Idempotent. */
  close(): void;
}

/** What the runtime asks of an offload provider. */
export interface OffloadProvider {
  readonly name: string;
  probe(): OffloadProbe;
  /**
   * Splice the cycle of connected UDP sockets `fds` (at least 2). Returns null when the flow must
   * stay in userspace (the reason is logged, rate-limited, by the caller from `lastError`).
   * Never throws. `onReset(i, errno)` is called after the watchdog reset socket i.
   */
  splice(fds: readonly number[], onReset?: (i: number, errno: number) => void): Splice | null;
  /** Why the last `splice` returned null (an errno name and message). */
  readonly lastError: string;
  /**
   * The most payload bytes a spliced socket may have queued in the kernel and not yet sent, after
   * which datagrams for it are dropped and counted (facts G6: the kernel itself has no limit). The
   * eBPF provider uses net.core.rmem_default; `limit` 0 means no bound, and `reason` says why.
   */
  queueBound(): { limit: number; reason: string };
}

/** The userspace fallback: offloads nothing. */
export class NoopOffload implements OffloadProvider {
  readonly name = 'userspace';
  readonly lastError: string;
  private readonly why: string;

  constructor(why: string) {
    this.why = why;
    this.lastError = why;
  }

  probe(): OffloadProbe {
    return { available: false, reason: this.why, errno: 0 };
  }

  splice(): Splice | null {
    return null;
  }

  queueBound(): { limit: number; reason: string } {
    return { limit: 0, reason: this.why };
  }
}

/** The addon's functions (native-offload/addon/offload.cc; steering in steer.cc, helpers in util.cc); every call returns -errno instead of throwing. */
export interface OffloadAddon {
  probe(): { ok: boolean; errno: number; reason: string };
  cookie(fd: number): bigint | number;
  splice(fds: Int32Array, cookies: BigUint64Array, drained?: Float64Array): number;
  /** The send-queue bound of spliced sockets: payload bytes (0: none) and why there is none. */
  queueBound(): { limit: number; reason: string };
  /** Set the bound (bytes >= 1); -ENODEV without the egress program. */
  setQueueLimit(bytes: number): number;
  unsplice(cookies: BigUint64Array): void;
  read(cookies: BigUint64Array, out: Float64Array): number;
  reset(fd: number, cookie: bigint): number;
  sockError(fd: number): number;
  watch(fd: number): number;
  unwatch(fd: number): void;
  poll(out: Int32Array): number;
  /** Remove fd from the calling thread's libuv epoll set: 0 or -errno (ENOENT: not in it). */
  unpoll(fd: number): number;
  /** [redirected, dropped: no peer, dropped: redirect failed, dropped: queue full] */
  stats(): number[];
  steerOpen(): number;
  steerSlot(h: number, slot: number, fd: number): number;
  steerBuckets(h: number, table: Uint32Array): number;
  steerAttach(h: number, fd: number): number;
  /** [steered, select failed (kernel hash used), unparsed] */
  steerStats(h: number): number[];
  steerClose(h: number): void;
}

/** Where `npm run build:offload` puts the addon. */
export const ADDON_PATH = fileURLToPath(new URL('./build/Release/l7mp_offload.node', import.meta.url));

let loaded: { addon: OffloadAddon | null; why: string } | null = null;

/**
 * The addon of this thread, or null and why not (not built, ABI mismatch, `libbpf.so.1`
 * missing). Loaded once per thread (N-API instance data: each worker thread has its own maps).
 */
export function loadAddon(): { addon: OffloadAddon | null; why: string } {
  if (loaded !== null) return loaded;
  try {
    const req = createRequire(import.meta.url);
    loaded = { addon: req(ADDON_PATH) as OffloadAddon, why: '' };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0] ?? String(e);
    loaded = { addon: null, why: `the offload addon cannot be loaded (${msg}); build it with \`npm run build:offload\` (needs clang, bpftool, libbpf-dev)` };
  }
  return loaded;
}

/** An errno number as `ENAME (message)`. */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  const name = Object.entries(os.constants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
  return name;
}

/** How often the EPOLLERR watchdog polls while splices are live. Unit: ms. */
const WATCHDOG_MS = 20;

class EbpfSplice implements Splice {
  readonly fds: readonly number[];
  readonly cookies: BigUint64Array;
  resets = 0;
  closed = false;
  readonly drained: Float64Array;
  readonly onReset: ((i: number, errno: number) => void) | undefined;
  private readonly owner: EbpfOffload;

  constructor(owner: EbpfOffload, fds: readonly number[], cookies: BigUint64Array, drained: Float64Array, onReset: ((i: number, errno: number) => void) | undefined) {
    this.owner = owner;
    this.drained = drained;
    this.fds = fds;
    this.cookies = cookies;
    this.onReset = onReset;
  }

  read(out: Float64Array): boolean {
    if (this.closed) return false;
    return this.owner.addon.read(this.cookies, out) === 0;
  }

  reset(i: number): void {
    if (this.closed) return;
    const fd = this.fds[i];
    const c = this.cookies[i];
    if (fd === undefined || c === undefined) return;
    const r = this.owner.addon.reset(fd, c);
    this.resets++;
    this.onReset?.(i, r);
  }

  unpoll(i: number): void {
    const fd = this.fds[i];
    if (this.closed || fd === undefined) return;
    this.owner.addon.unpoll(fd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.forget(this);
  }
}

/**
 * The eBPF sockmap provider of one thread. Loads and attaches the splice skeleton at probe time;
 * runs the EPOLLERR watchdog (facts G4) while splices are live: a socket that reports an error
 * (an ICMP port unreachable from a restarted backend) gets its error cleared and a fresh psock,
 * so forwarding resumes when the peer is back and libuv does not spin on EPOLLERR.
 */
export class EbpfOffload implements OffloadProvider {
  readonly name = 'ebpf-sockmap';
  readonly addon: OffloadAddon;
  lastError = '';
  private readonly result: OffloadProbe;
  private readonly byFd = new Map<number, { splice: EbpfSplice; index: number }>();
  private watchdog: NodeJS.Timeout | null = null;
  private readonly pollBuf = new Int32Array(128);

  constructor(addon: OffloadAddon) {
    this.addon = addon;
    const p = addon.probe();
    this.result = { available: p.ok, reason: p.reason, errno: p.errno };
  }

  probe(): OffloadProbe {
    return this.result;
  }

  private bound: { limit: number; reason: string } | null = null;

  queueBound(): { limit: number; reason: string } {
    // Settled by the first call (the addon attaches its egress program then); a test may change it.
    this.bound ??= this.addon.queueBound();
    return this.bound;
  }

  /** Change the bound (tests): payload bytes >= 1. Throws if there is no egress program. */
  setQueueLimit(bytes: number): void {
    const r = this.addon.setQueueLimit(bytes);
    if (r !== 0) throw new Error(`setQueueLimit(${bytes}): ${errnoName(r)}`);
    this.bound = this.addon.queueBound();
  }

  splice(fds: readonly number[], onReset?: (i: number, errno: number) => void): Splice | null {
    if (!this.result.available) {
      this.lastError = this.result.reason;
      return null;
    }
    if (fds.length < 2 || fds.some((fd) => fd < 0)) {
      this.lastError = 'a socket has no fd';
      return null;
    }
    const cookies = new BigUint64Array(fds.length);
    const drained = new Float64Array(2 * fds.length);
    const r = this.addon.splice(Int32Array.from(fds), cookies, drained);
    if (r !== 0) {
      this.lastError = `${errnoName(r)}: splice failed`;
      return null;
    }
    const s = new EbpfSplice(this, [...fds], cookies, drained, onReset);
    fds.forEach((fd, index) => {
      this.byFd.set(fd, { splice: s, index });
      this.addon.watch(fd);
    });
    if (this.watchdog === null) {
      this.watchdog = setInterval(this.poll, WATCHDOG_MS);
      this.watchdog.unref();
    }
    return s;
  }

  /** @internal A splice closed: out of the maps and the watchdog. */
  forget(s: EbpfSplice): void {
    for (const fd of s.fds) {
      if (this.byFd.get(fd)?.splice === s) {
        this.byFd.delete(fd);
        this.addon.unwatch(fd);
      }
    }
    this.addon.unsplice(s.cookies);
    if (this.byFd.size === 0 && this.watchdog !== null) {
      clearInterval(this.watchdog);
      this.watchdog = null;
    }
  }

  /** Live splices (sockets / 2 for plain pairs). */
  get sockets(): number {
    return this.byFd.size;
  }

  private readonly poll = (): void => {
    const n = this.addon.poll(this.pollBuf);
    for (let k = 0; k < n; k++) {
      const fd = this.pollBuf[2 * k] as number;
      const e = this.byFd.get(fd);
      if (e !== undefined) e.splice.reset(e.index);
    }
  };
}

/** l7mp's offload modes (`admin.offload`, `-o`). */
export type OffloadMode = 'init' | 'no_init' | 'disable';

/** Per thread: the provider for a mode (created once; the probe runs once). */
let providers: { mode: string; p: OffloadProvider } | null = null;

/**
 * The provider for an offload mode: `disable` → userspace; `init`/`no_init` → the eBPF provider
 * if the addon loads and its probe passes, else userspace with the reason. (`no_init` is
 * l7mp's "check only": there is nothing to set up for a sockmap splice, so it acts as `init`.)
 */
export function offloadProvider(mode: OffloadMode): OffloadProvider {
  if (providers !== null && providers.mode === mode) return providers.p;
  let p: OffloadProvider;
  if (mode === 'disable') p = new NoopOffload('offload disabled');
  else {
    const { addon, why } = loadAddon();
    if (addon === null) p = new NoopOffload(why);
    else {
      const e = new EbpfOffload(addon);
      p = e.probe().available ? e : new NoopOffload(e.probe().reason);
    }
  }
  providers = { mode, p };
  return p;
}
