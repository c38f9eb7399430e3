/**
 * The protocols JSONSocket runs over (compat reference §3.2, §3.3), by `protocol` name. Imported
 * directly, not through the registry (which lists JSONSocket itself).
 */
import type { ProtocolModule } from '../types.ts';
import { udp } from '../udp/index.ts';
import { tcp } from '../tcp/index.ts';
import { uds } from '../uds/index.ts';
import { websocket } from '../ws/index.ts';
import { echo } from '../echo/index.ts';
import { discard } from '../discard/index.ts';
import { stdio } from '../stdio/index.ts';

const byName = (mods: ProtocolModule[]): ReadonlyMap<string, ProtocolModule> => new Map(mods.map((m) => [m.name, m]));

/** Listener transports: UDP, TCP, UnixDomainSocket, WebSocket. */
export const listenerTransports = byName([udp, tcp, uds, websocket]);
/** Cluster transports: the listener ones plus the virtual Stdio, Echo and Discard (as l7mp). */
export const clusterTransports = byName([udp, tcp, uds, websocket, stdio, echo, discard]);

/** The transport spec of a JSONSocket spec (`transport`, or l7mp's alias `transport_spec`). */
export function transportOf(spec: { transport?: unknown; transport_spec?: unknown }): { protocol: string } & Record<string, unknown> {
  return (spec.transport ?? spec.transport_spec) as { protocol: string } & Record<string, unknown>;
}
