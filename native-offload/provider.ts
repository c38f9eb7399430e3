/**
 * Kernel offload of established UDP flows (l7mp `admin.offload`, `-o init|no_init|disable`).
 * The eBPF sockmap provider is the subject of its own issue; until it lands, every flow runs in
 * userspace through the {@link NoopOffload} provider, and the reason is logged once at startup.
 */

/** Whether a provider can offload on this machine, and if not, why. */
export interface OffloadProbe {
  readonly available: boolean;
  /** Human-readable reason when not available (e.g. "no CAP_BPF", "not built"). */
  readonly reason: string;
}

/** A pair of connected UDP sockets (file descriptors) whose datagrams the kernel may splice. */
export interface OffloadFlow {
  readonly downstreamFd: number;
  readonly upstreamFd: number;
}

/** What the runtime asks of an offload provider. */
export interface OffloadProvider {
  readonly name: string;
  probe(): OffloadProbe;
  /** Splice a flow in the kernel; false means it stays in userspace. Never throws. */
  attach(flow: OffloadFlow): boolean;
  /** Undo {@link OffloadProvider.attach}. Idempotent. */
  detach(flow: OffloadFlow): void;
}

/** The userspace fallback: offloads nothing. */
export class NoopOffload implements OffloadProvider {
  readonly name = 'userspace';
  private readonly why: string;

  constructor(why: string) {
    this.why = why;
  }

  probe(): OffloadProbe {
    return { available: false, reason: this.why };
  }

  attach(): boolean {
    return false;
  }

  detach(): void {}
}

/** The provider for an offload mode: today always userspace, with the reason. */
export function offloadProvider(mode: 'init' | 'no_init' | 'disable'): OffloadProvider {
  return new NoopOffload(mode === 'disable' ? 'offload disabled' : 'the eBPF offload provider is not built yet; flows run in userspace');
}
