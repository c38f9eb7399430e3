/**
 * The main thread's protocol services (protocols/types.ts {@link ProtocolService}): one host per
 * protocol that declares a `service` (Unix datagram sockets, which only the main thread may own),
 * made the first time a worker is spawned; each worker gets a MessageChannel per service.
 * ```
 *  main: host(UnixDomainSocket) ◄─port1─┐ MessageChannel ┌─port2─► worker: service.worker(port2)
 * ```
 * Nothing here names a protocol: the list comes from protocols/registry.ts.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { protocols } from '../../protocols/registry.ts';
import type { ProtocolModule, ProtocolServiceHost } from '../../protocols/types.ts';

/** A worker's channels to the service hosts. */
export interface ServicePorts {
  /** The worker's ends, by protocol name: passed in its init data, and transferred. */
  readonly ports: Record<string, MessagePort>;
  /** {@link ServicePorts.ports} as a transfer list. */
  readonly transfer: MessagePort[];
  /** The worker is gone: every host frees what it had (idempotent). */
  detach(): void;
}

/** One host per protocol with a service; a channel to each per worker. */
export class ProtocolServices {
  /** Hosts by protocol name; null until the first {@link ProtocolServices.connect}. */
  private hosts: Map<string, ProtocolServiceHost> | null = null;
  private readonly list: ReadonlyMap<string, ProtocolModule>;

  /** @param list the protocols by name (default: the registry; tests pass their own). */
  constructor(list: ReadonlyMap<string, ProtocolModule> = protocols) {
    this.list = list;
  }

  /** The hosts, made on first use (a runtime whose workers never start makes none). */
  private all(): Map<string, ProtocolServiceHost> {
    if (this.hosts === null) {
      this.hosts = new Map();
      for (const [name, p] of this.list) if (p.service !== undefined) this.hosts.set(name, p.service.host());
    }
    return this.hosts;
  }

  /** Channels for a new worker: our ends attached to the hosts, the worker's ends returned. */
  connect(): ServicePorts {
    const ports: Record<string, MessagePort> = {};
    const ours: [ProtocolServiceHost, MessagePort][] = [];
    for (const [name, host] of this.all()) {
      const ch = new MessageChannel();
      host.attach(ch.port1);
      ours.push([host, ch.port1]);
      ports[name] = ch.port2;
    }
    let detached = false;
    return {
      ports,
      transfer: Object.values(ports),
      detach(): void {
        if (detached) return;
        detached = true;
        for (const [host, port] of ours) host.detach(port);
      },
    };
  }
}
