/** Echo: a virtual cluster that sends every message back unchanged, one message per message. */
import { Type } from '@sinclair/typebox';
import { defineProtocol } from '../core/define.ts';
import { replyCluster } from '../core/virtual.ts';

export const echo = defineProtocol({
  name: 'Echo',
  kind: 'datagram',
  cluster: replyCluster(Type.Object({ protocol: Type.Literal('Echo') }, { description: 'Echo: returns every message unchanged.' }), () => ({ stage: () => (d) => d })),
});
