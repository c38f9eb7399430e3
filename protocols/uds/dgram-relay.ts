/**
 * A worker's Unix datagram sockets, relayed to the main thread's {@link UnixDgramHost} over one
 * MessagePort (see dgram-host.ts for why). The runtime hands each worker its port at start
 * ({@link setUnixDgramPort}); without one (code running on the main thread), a host is made in
 * this thread.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { UnixDgramHost, type FromHost, type ToHost } from './dgram-host.ts';

/** What the owner of a socket is told. */
export interface UnixDgramHandlers {
  /** A datagram from `from` ('' when the sender did not bind a path). */
  data(data: Buffer, from: string): void;
  /** `packets` sends to `to` totalling `bytes` bytes left the socket (acknowledged in batches). */
  sent(packets: number, bytes: number, to: string): void;
  /** A send to `to` failed (`msg` is the errno text: the peer path is gone, its queue is full...). */
  sendError(msg: string, to: string): void;
  /** The socket failed and is closed. */
  error(msg: string): void;
}

/** A SOCK_DGRAM Unix socket owned by the main thread. */
export interface UnixDgram {
  send(data: Buffer, to: string): void;
  /** Close it (the file it bound is removed). Idempotent. */
  close(): void;
}

let port: MessagePort | null = null;
let nextId = 1;
const sockets = new Map<number, { h: UnixDgramHandlers; opened: ((err?: string) => void) | null }>();

/** Use `p` to reach the main thread's host (called once by the worker at start). */
export function setUnixDgramPort(p: MessagePort): void {
  port = p;
  p.on('message', onMessage);
  p.unref();
}

function hostPort(): MessagePort {
  if (port === null) {
    const ch = new MessageChannel();
    new UnixDgramHost().attach(ch.port1);
    ch.port1.unref();
    setUnixDgramPort(ch.port2);
  }
  return port as MessagePort;
}

function onMessage(m: FromHost): void {
  const s = sockets.get(m.id);
  if (s === undefined) return;
  switch (m.t) {
    case 'opened': {
      const cb = s.opened;
      s.opened = null;
      if (m.err !== undefined) sockets.delete(m.id);
      cb?.(m.err);
      return;
    }
    case 'data':
      s.h.data(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength), m.from);
      return;
    case 'sent':
      s.h.sent(m.packets, m.bytes, m.to);
      return;
    case 'senderr':
      s.h.sendError(m.msg, m.to);
      return;
    case 'error':
      sockets.delete(m.id);
      s.h.error(m.msg);
      return;
  }
}

/**
 * Open a socket, bound to `path` (null: unbound, send only). Rejects with the bind error text
 * (EADDRINUSE, ENOENT...).
 */
export function openUnixDgram(path: string | null, h: UnixDgramHandlers): Promise<UnixDgram> {
  const p = hostPort();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    let closed = false;
    const sock: UnixDgram = {
      send(data: Buffer, to: string): void {
        if (closed) return;
        // An owned copy: a pooled Buffer's whole slab would be cloned otherwise; it is then moved, not copied again.
        const owned = new Uint8Array(data);
        p.postMessage({ t: 'send', id, to, data: owned } satisfies ToHost, [owned.buffer]);
      },
      close(): void {
        if (closed) return;
        closed = true;
        sockets.delete(id);
        p.postMessage({ t: 'close', id } satisfies ToHost);
      },
    };
    sockets.set(id, {
      h,
      opened: (err) => (err === undefined ? resolve(sock) : reject(new Error(err))),
    });
    p.postMessage({ t: 'open', id, path } satisfies ToHost);
  });
}
