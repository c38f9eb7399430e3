/** Echo: a virtual cluster that sends every message back unchanged, one message per message. */
import { Type } from '@sinclair/typebox';
import type { ProtocolModule } from '../types.ts';
import { VirtualConnection } from '../virtual/connection.ts';

export const echo: ProtocolModule = {
  name: 'Echo',
  kind: 'datagram',
  cluster: {
    schema: Type.Object({ protocol: Type.Literal('Echo') }, { description: 'Echo: returns every message unchanged.' }),
    virtual: true,
    create: (cfg) => ({
      connect: () => Promise.resolve(new VirtualConnection('datagram', cfg.name, (d) => d)),
      close() {},
    }),
  },
};
