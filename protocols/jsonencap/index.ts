/**
 * JSONEncap (docs/l7mp-compat.md §3.3): a virtual cluster that wraps every message into
 * `{"metadata": <session metadata>, "payload": "<base64 of the message>"}`, one JSON message per
 * message. The metadata is serialised once per session stage (it does not change once routed),
 * not per message. Pairs with JSONDecap on the other side.
 */
import { Type } from '@sinclair/typebox';
import { defineProtocol } from '../core/define.ts';
import { replyCluster } from '../core/virtual.ts';

const JsonEncapSpec = Type.Object(
  { protocol: Type.Literal('JSONEncap') },
  { description: 'JSONEncap: each message becomes {"metadata": <session metadata>, "payload": "<base64>"}.' },
);

const TAIL = Buffer.from('"}');

export const jsonencap = defineProtocol({
  name: 'JSONEncap',
  kind: 'datagram',
  cluster: replyCluster(JsonEncapSpec, () => ({
    stage: (session) => {
      const head = Buffer.from(`{"metadata":${JSON.stringify(session.metadata)},"payload":"`);
      return (d) => Buffer.concat([head, Buffer.from(d.toString('base64')), TAIL]);
    },
  })),
});
