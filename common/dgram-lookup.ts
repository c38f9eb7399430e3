/**
 * The `lookup` of the proxy's `node:dgram` sockets (`dgram.createSocket({ lookup })`).
 *
 * Node resolves the address of every `bind`, `connect` and every `send` to an address with
 * `dns.lookup`, which answers an IP literal on the next tick (`process.nextTick`): a datagram
 * answered from a listening socket waits for a tick and allocates for it, and a new session's
 * upstream socket takes two extra ticks to bind and connect. Peers and endpoints are IP literals
 * almost always, so this lookup answers them at once; a name still goes to `dns.lookup`.
 * Node calls it as `lookup(address, family, callback)` (lib/internal/dgram.js, lookup4/lookup6);
 * the callbacks it passes do not expect to run later, so answering synchronously is safe for them.
 */
import dns from 'node:dns';
import net from 'node:net';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

/** dgram `lookup`: an IP literal at once, a name through `dns.lookup` (asynchronously). */
export function dgramLookup(address: string, family: number, callback: LookupCallback): void {
  const f = net.isIP(address);
  if (f !== 0) callback(null, address, f);
  else dns.lookup(address, family, callback);
}
