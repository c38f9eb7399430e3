/** UDP singleton mode (docs/l7mp-compat.md §3.2): one socket bound and connected to `connect`. */
import type dgram from 'node:dgram';
import { L7Error, ErrorCode } from '../../common/errors.ts';
import { DgramConnection } from '../core/dgram-connection.ts';

/** Singleton mode: the listener's own socket, connected to the fixed remote, is the session (never spliced). */
export class UdpSingleton extends DgramConnection {
  readonly local: string;
  readonly remote: string;

  constructor(sock: dgram.Socket, local: string, remote: string) {
    super();
    this.local = local;
    this.remote = remote;
    this.attach(sock);
  }

  protected resetError(err: Error): L7Error {
    return new L7Error(ErrorCode.DownstreamReset, `UDP singleton ${this.remote}: ${err.message}`, { cause: err });
  }
}
