/**
 * Every protocol, listed once. A new protocol is a folder under protocols/ and one line here; the
 * config schema, the workers, the metrics and the docs all read this list.
 */
import type { ProtocolModule } from './types.ts';
import { dropReasons as declaredDrops } from './core/define.ts';
import { udp } from './udp/index.ts';
import { tcp } from './tcp/index.ts';
import { uds } from './uds/index.ts';
import { websocket } from './ws/index.ts';
import { echo } from './echo/index.ts';
import { discard } from './discard/index.ts';
import { logger } from './logger/index.ts';
import { httpProtocol } from './http/index.ts';
import { l7mpController } from './l7mp-controller/index.ts';
import { prometheus } from './prometheus/index.ts';
import { jsonSocketProtocol } from './jsonsocket/index.ts';
import { jsonencap } from './jsonencap/index.ts';
import { jsondecap } from './jsondecap/index.ts';
import { metric } from './metric/index.ts';
import { exec } from './exec/index.ts';
import { stdio } from './stdio/index.ts';
import { sync } from './sync/index.ts';
import { transform } from './transform/index.ts';
import { rtsp } from './rtsp/index.ts';

/** JSONSocket runs over these (docs/l7mp-compat.md §3.2, §3.3): the listener ones, plus the virtual Stdio, Echo and Discard clusters (as l7mp). */
const jsonsocket = jsonSocketProtocol({ listener: [udp, tcp, uds, websocket], cluster: [udp, tcp, uds, websocket, stdio, echo, discard] });

const all: readonly ProtocolModule[] = [udp, tcp, uds, websocket, httpProtocol, jsonsocket, echo, discard, logger, l7mpController, prometheus, jsonencap, jsondecap, metric, exec, stdio, sync, transform, rtsp];

/** Protocols by their `spec.protocol` name. */
export const protocols: ReadonlyMap<string, ProtocolModule> = new Map(all.map((p) => [p.name, p]));

/** The protocol named `name`, or undefined. */
export function protocol(name: string): ProtocolModule | undefined {
  return protocols.get(name);
}

/**
 * The listener (or cluster) counters any protocol declares as drops: metrics report them as drop
 * reasons (`l7mp_listener_dropped_packets_total{reason}`) instead of events.
 */
export function dropReasons(side: 'listener' | 'cluster'): ReadonlySet<string> {
  return declaredDrops(all, side);
}
