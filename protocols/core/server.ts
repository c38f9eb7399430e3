/**
 * Listening helpers shared by the socket protocols (TCP, Unix streams, HTTP, WebSocket): bind a
 * `net.Server` (TCP with SO_REUSEPORT on every worker, or a Unix socket path on one worker) and
 * map bind failures to `L7_ERR_LISTENER_BIND` naming the listener and the address; close it with
 * its connections; print an address.
 */
import net from 'node:net';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import type { TSchema } from '@sinclair/typebox';
import type { ListenerBind, ListenerContext, ProtocolEvents } from '../types.ts';
import type { ListenerDef } from './define.ts';
import { DEFAULT_STREAM_IDLE_TIMEOUT_S } from '../schema.ts';

/** The listener counters of {@link listen}. */
export const LISTEN_EVENTS = {
  accept_error: { drop: false, help: 'Errors of a listening socket after its bind (an accept that failed with EMFILE or ENFILE).' },
} as const satisfies ProtocolEvents;

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
 * Drain: stop listening, keep the connections. The kernel refuses new connections to the address
 * from then on (once every worker's socket of a SO_REUSEPORT group is closed). A later
 * {@link closeServer} still ends the connections left and resolves: `close()` on a server that no
 * longer listens waits for its last connection as well.
 */
export function stopListening(server: net.Server): void {
  if (server.listening) server.close();
}

/**
 * Flush what is queued on `s`, send our FIN, then destroy it without waiting for the peer's FIN
 * (a peer that never sends one cannot hold the socket). A no-op on a destroyed socket.
 */
export function endThenDestroy(s: net.Socket): void {
  if (s.destroyed) return;
  if (!s.writableEnded) s.end();
  if (s.writableFinished) s.destroy();
  else s.once('finish', () => s.destroy());
}

/**
 * Close a server and every connection it still has. `server.close()` only resolves once all
 * accepted sockets are gone, and a peer that never sends its FIN (half-open) would hold it
 * forever: each connection in `conns` is ended and destroyed once its queued data is flushed.
 */
export function closeServer(server: net.Server, conns?: Iterable<net.Socket>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of conns ?? []) endThenDestroy(s);
  });
}

/** `a:p` or `[a]:p` for IPv6. */
export function hostPort(address: string | undefined, port: number | undefined): string {
  const a = address ?? '?';
  return net.isIPv6(a) ? `[${a}]:${port}` : `${a}:${port}`;
}

/** The bind of a listener on TCP `address` (default `::`, dual stack) and `port`. */
export function tcpBinds(spec: { readonly address?: string; readonly port: number }): readonly ListenerBind[] {
  return [{ transport: 'tcp', address: spec.address ?? '::', port: spec.port }];
}

/** A stream listener's session idle timeout (`options.idle_timeout`, default nginx's 10 min), ms. */
export function streamIdleTimeoutMs(spec: { readonly options?: { readonly idle_timeout?: number } }): number {
  return (spec.options?.idle_timeout ?? DEFAULT_STREAM_IDLE_TIMEOUT_S) * 1000;
}

/** What {@link tcpListener} reads of a listener spec. */
interface TcpListenerShape {
  readonly address?: string;
  readonly port: number;
  readonly options?: { readonly idle_timeout?: number };
}

/**
 * The listener side of a protocol that accepts TCP connections on every worker (SO_REUSEPORT) and
 * listens with {@link listen}: placement `shared`, the bind of its `address:port`
 * ({@link tcpBinds}), the stream idle timeout ({@link streamIdleTimeoutMs}), and the accept-error
 * counter ({@link LISTEN_EVENTS}) besides its own `events`. Anything else of `def` is kept.
 */
export function tcpListener<S extends TSchema & { static: TcpListenerShape }>(def: Pick<ListenerDef<S>, 'schema' | 'create'> & Partial<ListenerDef<S>>): ListenerDef<S> {
  return { placement: () => 'shared', binds: tcpBinds, idleTimeoutMs: streamIdleTimeoutMs, ...def, events: { ...LISTEN_EVENTS, ...def.events } };
}
