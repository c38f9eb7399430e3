/**
 * Unix datagram (SOCK_DGRAM) cluster: each session stage gets a socket bound to a path of its own
 * (`<tmpdir>/l7mp-ts-<pid>/<slot>-<n>.sock`, removed when the stage closes, the directory with the last one) so the endpoint can
 * answer, and sends to the endpoint's path. The stage connects when the endpoint path is a socket
 * (else the connect fails and the retry policy applies); datagrams from other senders are dropped
 * and counted. Sockets are owned by the main thread (see dgram-host.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClusterContext, Connection, EndpointInfo, SessionInfo } from '../types.ts';
import { connectAttempt, EndpointCluster } from '../core/connect.ts';
import type { UdsClusterSpec } from './config.ts';
import { UdsDgramConnection } from './dgram.ts';
import { openUnixDgram } from './dgram-relay.ts';

let dir: string | null = null;
let seq = 0;

/** This process's directory for client socket paths (made once, mode 0700). */
function clientDir(): string {
  dir ??= path.join(os.tmpdir(), `l7mp-ts-${process.pid}`);
  // Made again when the host removed it with its last socket.
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export class UdsDgramCluster extends EndpointCluster<UdsClusterSpec> {
  private readonly slot: number;

  constructor(cfg: { name: string; spec: UdsClusterSpec }, ctx: ClusterContext) {
    super(cfg);
    this.slot = ctx.slot;
  }

  protected open(_s: SessionInfo, ep: EndpointInfo, signal: AbortSignal): Promise<Connection> {
    const target = ep.address;
    return connectAttempt(signal, `cluster "${this.name}": unix dgram ${target}`, (a) => {
      if (!fs.statSync(target).isSocket()) return a.fail('not a socket');
      const local = path.join(clientDir(), `${this.slot}-${seq++}.sock`);
      fs.rmSync(local, { force: true });
      let conn: UdsDgramConnection | null = null;
      openUnixDgram(local, {
        data: (buf, from) => {
          if (conn === null) return;
          if (from === target) conn.deliver(buf);
          else conn.stats.drops++;
        },
        sent: (packets, bytes) => conn?.sent(packets, bytes),
        sendError: (msg) => conn?.sendFailed(msg),
        error: (msg) => conn?.fail(msg),
      }).then(
        (sock) => {
          // Aborted while the host bound it: nobody will use it.
          if (a.settled) return sock.close();
          conn = new UdsDgramConnection(sock, local, target, 'upstream', () => sock.close());
          a.done(conn);
        },
        (e: unknown) => a.fail(`cannot bind ${local}: ${(e as Error).message}`, e),
      );
    });
  }
}
