/**
 * JSONDecap (docs/l7mp-compat.md §3.3): a virtual cluster that parses every message as JSON and
 * passes on the base64 `payload` as raw bytes, one message per message (the reverse of
 * JSONEncap). A message that is not JSON or has no string `payload` is dropped and counted in the
 * stage's drops (l7mp passed an empty message on instead).
 */
import { Type } from '@sinclair/typebox';
import { defineProtocol } from '../core/define.ts';
import { replyCluster } from '../core/virtual.ts';

/** The payload of an encapsulated message, or null if `d` is not one. */
export function decap(d: Buffer): Buffer | null {
  let v: unknown;
  try {
    v = JSON.parse(d.toString('utf8'));
  } catch {
    return null;
  }
  const p = v !== null && typeof v === 'object' ? (v as { payload?: unknown }).payload : undefined;
  return typeof p === 'string' ? Buffer.from(p, 'base64') : null;
}

const JsonDecapSpec = Type.Object(
  { protocol: Type.Literal('JSONDecap') },
  { description: 'JSONDecap: each JSON message {"payload": "<base64>", ...} becomes its decoded payload; malformed messages are dropped and counted.' },
);

export const jsondecap = defineProtocol({
  name: 'JSONDecap',
  kind: 'datagram',
  cluster: replyCluster(JsonDecapSpec, () => ({
    stage: (_session, stats) => (d) => {
      const out = decap(d);
      if (out === null) stats.drops++;
      return out;
    },
  })),
});
