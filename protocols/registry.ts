/**
 * Every protocol, listed once. A new protocol is a folder under protocols/ and one line here; the
 * config schema, the workers and the docs all read this list.
 */
import type { ProtocolModule } from './types.ts';
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
import { jsonsocket } from './jsonsocket/index.ts';
import { jsonencap } from './jsonencap/index.ts';
import { jsondecap } from './jsondecap/index.ts';
import { metric } from './metric/index.ts';
import { exec } from './exec/index.ts';
import { stdio } from './stdio/index.ts';
import { sync } from './sync/index.ts';
import { transform } from './transform/index.ts';
import { rtsp } from './rtsp/index.ts';

const all: readonly ProtocolModule[] = [udp, tcp, uds, websocket, httpProtocol, jsonsocket, echo, discard, logger, l7mpController, prometheus, jsonencap, jsondecap, metric, exec, stdio, sync, transform, rtsp];

/** Protocols by their `spec.protocol` name. */
export const protocols: ReadonlyMap<string, ProtocolModule> = new Map(all.map((p) => [p.name, p]));

/** The protocol named `name`, or undefined. */
export function protocol(name: string): ProtocolModule | undefined {
  return protocols.get(name);
}
