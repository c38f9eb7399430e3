/**
 * Listening helpers shared by the stream protocols: bind a `net.Server` (TCP with SO_REUSEPORT on
 * every worker, or a Unix socket path on one worker) and map bind failures to
 * `L7_ERR_LISTENER_BIND` naming the listener and the address.
 */
import net from 'node:net';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import type { ListenerContext } from '../types.ts';
import { ReadBuffer } from './read-buffer.ts';

/**
 * Listen and resolve once bound; reject with a clear error otherwise. Once bound, the server keeps
 * an `'error'` listener for its life: an error after the bind (an `accept` that failed with EMFILE
 * or ENFILE) would otherwise be thrown out of the event loop and end the worker. It is counted as
 * the listener event `accept_error` and logged at a limited rate.
 */
export function listen(server: net.Server, opts: net.ListenOptions, listenerName: string, what: string, ctx?: Pick<ListenerContext, 'count' | 'rateLog'>): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new L7Error(ErrorCode.ListenerBind, `listener "${listenerName}": cannot listen on ${what}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(opts, () => {
      server.removeListener('error', onError);
      server.on('error', (err: Error) => {
        ctx?.count('accept_error');
        ctx?.rateLog.warn(`accept-error:${listenerName}`, { listener: listenerName, err: err.message }, 'listener socket error');
      });
      resolve();
    });
  });
}

/**
 * Close a server and every connection it still has. `server.close()` only resolves once all
 * accepted sockets are gone, and a peer that never sends its FIN (half-open) would hold it
 * forever: each connection in `conns` is ended and destroyed once its queued data is flushed.
 */
export function closeServer(server: net.Server, conns?: Iterable<net.Socket>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of conns ?? []) {
      if (s.destroyed) continue;
      if (s.writableFinished) s.destroy();
      else {
        s.once('finish', () => s.destroy());
        s.end();
      }
    }
  });
}

/** `a:p` or `[a]:p` for IPv6. */
export function hostPort(address: string | undefined, port: number | undefined): string {
  const a = address ?? '?';
  return net.isIPv6(a) ? `[${a}]:${port}` : `${a}:${port}`;
}

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
