/**
 * JSONEncap (compat reference §3.3): a virtual cluster that wraps every message into
 * `{"metadata": <session metadata>, "payload": "<base64 of the message>"}`, one JSON message per
 * message. The metadata is serialised once per session stage (it does not change once routed),
 * not per message. Pairs with JSONDecap on the other side.
 */
import { Type } from '@sinclair/typebox';
import type { ProtocolModule } from '../types.ts';
import { VirtualConnection } from '../virtual/connection.ts';

export const jsonencap: ProtocolModule = {
  name: 'JSONEncap',
  kind: 'datagram',
  cluster: {
    schema: Type.Object(
      { protocol: Type.Literal('JSONEncap') },
      { description: 'JSONEncap: each message becomes {"metadata": <session metadata>, "payload": "<base64>"}.' },
    ),
    virtual: true,
    create: (cfg) => ({
      connect: (session) => {
        const head = Buffer.from(`{"metadata":${JSON.stringify(session.metadata)},"payload":"`);
        const tail = Buffer.from('"}');
        return Promise.resolve(new VirtualConnection('datagram', cfg.name, (d) => Buffer.concat([head, Buffer.from(d.toString('base64')), tail])));
      },
      close() {},
    }),
  },
};
