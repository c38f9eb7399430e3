/**
 * Stream listeners' helpers: `listen`, `closeServer`, `hostPort` and `stopListening` moved to
 * protocols/core/server.ts (issue 16 item 1) and are re-exported for TCP and Unix streams until
 * they are rebased on core; `adoptAccepted` moves accepted sockets to recycled read buffers.
 */
export { closeServer, hostPort, listen, stopListening } from '../core/server.ts';
import net from 'node:net';
import { ReadBuffer } from './read-buffer.ts';

/**
 * An accepted connection that reads into recycled buffers (read-buffer.ts). `net.Server` has no
 * `onread` option, so the server is created with `pauseOnConnect: true` (nothing read yet) and the
 * accepted socket's handle moves to a new `net.Socket` created with the reader's `onread` (the
 * `handle` option is how Node's cluster module hands accepted handles over). The first socket is
 * destroyed without its handle, and the server's count of connections (`close()` waits for it to
 * reach 0) moves to the new one. When this Node exposes no handle, the accepted socket is resumed
 * as is and `reader` is null (stream reads).
 */
export function adoptAccepted(sock: net.Socket): { sock: net.Socket; reader: ReadBuffer | null } {
  type Internals = net.Socket & { _handle?: { readStart?: unknown } | null; _server?: net.Server | null; server?: net.Server | null };
  const s = sock as Internals;
  const handle = s._handle;
  if (handle === null || handle === undefined || typeof handle.readStart !== 'function' || sock.destroyed) {
    sock.resume();
    return { sock, reader: null };
  }
  const reader = new ReadBuffer();
  const server = s._server ?? null;
  s._handle = null;
  s._server = null;
  sock.destroy();
  const opts = { handle, allowHalfOpen: true, readable: true, writable: true, onread: reader.onread };
  const adopted = new net.Socket(opts as net.SocketConstructorOpts) as Internals;
  adopted._server = server;
  adopted.server = server;
  return { sock: adopted, reader };
}
