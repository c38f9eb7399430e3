/**
 * The consistent hash ring of live worker slots (npm `hashring`, ketama md5). A session key (a UDP
 * peer's `address:port`) belongs to one slot; removing a slot moves only the keys it owned, and
 * adding it back returns exactly those (same member names, same points).
 */
import HashRing from 'hashring';

export class WorkerRing {
  private ring: HashRing;
  private members: number[];

  /** @param slots the live worker slots. */
  constructor(slots: readonly number[]) {
    this.members = [...slots].sort((a, b) => a - b);
    this.ring = new HashRing(this.members.map((s) => `w${s}`));
  }

  /** Live slots, ascending. */
  get slots(): readonly number[] {
    return this.members;
  }

  /** The owner slot of `key`, or -1 when no worker is live. */
  owner(key: string): number {
    if (this.members.length === 0) return -1;
    if (this.members.length === 1) return this.members[0] as number;
    return Number(this.ring.get(key).slice(1));
  }
}

/**
 * The slot that hosts a listener that can bind on one worker only (a Unix socket path): a hash of
 * its name over all configured slots, stable across worker restarts (the replacement takes the
 * same slot and rebinds).
 */
export function placeSingle(listener: string, workers: number): number {
  if (workers <= 1) return 0;
  return Number(new HashRing(Array.from({ length: workers }, (_, i) => `w${i}`)).get(listener).slice(1));
}
