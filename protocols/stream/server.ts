/**
 * Listening helpers shared by the stream protocols: bind a `net.Server` (TCP with SO_REUSEPORT on
 * every worker, or a Unix socket path on one worker) and map bind failures to
 * `L7_ERR_LISTENER_BIND` naming the listener and the address.
 */
import net from 'node:net';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';

/** Listen and resolve once bound; reject with a clear error otherwise. */
export function listen(server: net.Server, opts: net.ListenOptions, listenerName: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new L7Error(ErrorCode.ListenerBind, `listener "${listenerName}": cannot listen on ${what}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(opts, () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
}

/** Close a server and every connection it still has. */
export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
  });
}

/** `a:p` or `[a]:p` for IPv6. */
export function hostPort(address: string | undefined, port: number | undefined): string {
  const a = address ?? '?';
  return net.isIPv6(a) ? `[${a}]:${port}` : `${a}:${port}`;
}
