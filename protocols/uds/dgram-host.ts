/**
 * Unix datagram sockets are owned by the main thread. Why: `node-unix-socket` (the only SOCK_DGRAM
 * binding for Node) is not safe with worker_threads: when any thread that loaded it ends (a worker
 * replaced after a crash, or stopped at shutdown), the sockets of every other thread stop receiving
 * and their close aborts the process (`uv_close: Assertion !uv__is_closing(handle)`; reproduced on
 * Node 24 with 0.2.7). The main thread lives as long as the process, so the library is loaded there
 * only, and workers use their sockets through a MessagePort each:
 * ```
 *  worker ──{open id path | send id to data | close id}──► main: DgramSocket per id
 *  worker ◄──{opened id err? | data id from data | sent id to n bytes | senderr id msg | error id msg}── main
 * ```
 * Sends the kernel took are acknowledged in batches (`sent`: one message per socket and
 * destination per event-loop turn, not per datagram), so a worker counts in tx only what left;
 * a refused send comes back as `senderr` with the errno text and is a drop.
 * Every datagram crosses one thread hop each way (a copy each). A worker that exits has all its
 * sockets closed ({@link UnixDgramHost.detach}).
 */
import fs from 'node:fs';
import nodePath from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import { loadDgramSocket, type DgramSocket } from './dgram-lib.ts';

/** Worker → main. */
export type ToHost = { t: 'open'; id: number; path: string | null } | { t: 'send'; id: number; to: string; data: Uint8Array } | { t: 'close'; id: number };
/** Main → worker. */
export type FromHost =
  | { t: 'opened'; id: number; err?: string }
  | { t: 'data'; id: number; from: string; data: Uint8Array }
  | { t: 'sent'; id: number; to: string; packets: number; bytes: number }
  | { t: 'senderr'; id: number; to: string; msg: string }
  | { t: 'error'; id: number; msg: string };

/** Successful sends of one socket to one destination since the last acknowledgement. */
interface SentTally {
  packets: number;
  bytes: number;
}

/** The main thread's side: one per runtime; a port per worker. */
export class UnixDgramHost {
  private readonly ports = new Map<MessagePort, Map<number, { sock: DgramSocket; path: string | null }>>();

  /** Serve a worker's port. */
  attach(port: MessagePort): void {
    const socks = new Map<number, { sock: DgramSocket; path: string | null }>();
    this.ports.set(port, socks);
    // Sends acknowledged at the end of this turn, by socket id and destination.
    const sent = new Map<number, Map<string, SentTally>>();
    let flushing = false;
    const flush = (): void => {
      flushing = false;
      for (const [id, byTo] of sent) {
        for (const [to, n] of byTo) port.postMessage({ t: 'sent', id, to, packets: n.packets, bytes: n.bytes } satisfies FromHost);
      }
      sent.clear();
    };
    const ack = (id: number, to: string, bytes: number): void => {
      let byTo = sent.get(id);
      if (byTo === undefined) {
        byTo = new Map();
        sent.set(id, byTo);
      }
      const n = byTo.get(to);
      if (n === undefined) byTo.set(to, { packets: 1, bytes });
      else {
        n.packets++;
        n.bytes += bytes;
      }
      if (!flushing) {
        flushing = true;
        setImmediate(flush);
      }
    };
    port.on('message', (m: ToHost) => {
      switch (m.t) {
        case 'open': {
          let sock: DgramSocket;
          try {
            const Ctor = loadDgramSocket();
            sock = new Ctor();
          } catch (e) {
            port.postMessage({ t: 'opened', id: m.id, err: (e as Error).message } satisfies FromHost);
            return;
          }
          try {
            if (m.path !== null) sock.bind(m.path);
          } catch (e) {
            sock.close();
            port.postMessage({ t: 'opened', id: m.id, err: (e as Error).message } satisfies FromHost);
            return;
          }
          socks.set(m.id, { sock, path: m.path });
          sock.on('data', (data: Buffer, from: string) => port.postMessage({ t: 'data', id: m.id, from, data } satisfies FromHost));
          sock.on('error', (err: Error) => port.postMessage({ t: 'error', id: m.id, msg: err.message } satisfies FromHost));
          port.postMessage({ t: 'opened', id: m.id } satisfies FromHost);
          return;
        }
        case 'send': {
          const s = socks.get(m.id);
          if (s === undefined) return;
          const b = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
          try {
            s.sock.sendTo(b, 0, b.length, m.to, (err) => {
              if (err) port.postMessage({ t: 'senderr', id: m.id, to: m.to, msg: err.message } satisfies FromHost);
              else ack(m.id, m.to, b.length);
            });
          } catch (e) {
            port.postMessage({ t: 'senderr', id: m.id, to: m.to, msg: (e as Error).message } satisfies FromHost);
          }
          return;
        }
        case 'close': {
          const s = socks.get(m.id);
          socks.delete(m.id);
          if (s !== undefined) closeSock(s.sock, s.path);
          return;
        }
      }
    });
  }

  /** A worker is gone: close its sockets (and remove the files they bound). */
  detach(port: MessagePort): void {
    const socks = this.ports.get(port);
    this.ports.delete(port);
    if (socks !== undefined) for (const s of socks.values()) closeSock(s.sock, s.path);
    port.close();
  }

  /** Sockets open now, for tests and the actor tree. */
  get open(): number {
    let n = 0;
    for (const s of this.ports.values()) n += s.size;
    return n;
  }
}

function closeSock(sock: DgramSocket, path: string | null): void {
  sock.close();
  if (path === null) return;
  fs.rmSync(path, { force: true });
  // The cluster's per-process directory of client sockets goes with its last socket.
  const dir = nodePath.dirname(path);
  if (nodePath.basename(dir) === `l7mp-ts-${process.pid}`) {
    try {
      fs.rmdirSync(dir);
    } catch {
      // not empty: other stages still use it
    }
  }
}
