/**
 * The `node-unix-socket` binding, loaded on first use and only by the thread that owns Unix
 * datagram sockets (the main thread; see dgram-host.ts for why never a worker).
 *
 * Limit: the library receives into a 65535-byte buffer and truncates longer datagrams without
 * saying so; a received datagram of 65535 bytes or more is therefore dropped and counted by the
 * connection (never passed on cut).
 */
import { createRequire } from 'node:module';
import type { DgramSocket as DgramSocketType } from 'node-unix-socket';

export type DgramSocket = DgramSocketType;

const require = createRequire(import.meta.url);
let ctor: typeof DgramSocketType | null = null;

/** The library's DgramSocket class. */
export function loadDgramSocket(): typeof DgramSocketType {
  ctor ??= (require('node-unix-socket') as typeof import('node-unix-socket')).DgramSocket;
  return ctor;
}
