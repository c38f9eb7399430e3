/**
 * Open a client `net.Socket` for a cluster (TCP or Unix stream), reading into recycled buffers
 * (read-buffer.ts), and resolve when it is connected;
 * reject with `L7_ERR_UPSTREAM_CONNECT` on error or abort (the session enforces the timeout).
 */
import net from 'node:net';
import { L7Error, ErrorCode } from '../../runtime/common/errors.ts';
import { SocketConnection } from './socket-connection.ts';
import { hostPort } from './server.ts';
import { ReadBuffer } from './read-buffer.ts';

export function connectSocket(opts: net.NetConnectOpts, clusterName: string, what: string, signal: AbortSignal): Promise<SocketConnection> {
  return new Promise((resolve, reject) => {
    const reader = new ReadBuffer();
    const sock = net.createConnection({ ...opts, allowHalfOpen: true, onread: reader.onread });
    const fail = (err: Error): void => {
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      reader.release();
      reject(new L7Error(ErrorCode.UpstreamConnect, `cluster "${clusterName}": ${what}: ${err.message}`, { cause: err }));
    };
    const onAbort = (): void => fail(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('error', fail);
    sock.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      sock.removeListener('error', fail);
      const local = sock.localAddress === undefined ? 'unix' : hostPort(sock.localAddress, sock.localPort);
      resolve(new SocketConnection(sock, 'upstream', local, what, reader));
    });
  });
}
