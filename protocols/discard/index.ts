/** Discard: a virtual cluster that swallows everything and never answers. */
import { Type } from '@sinclair/typebox';
import type { ProtocolModule } from '../types.ts';
import { VirtualConnection } from '../virtual/connection.ts';

export const discard: ProtocolModule = {
  name: 'Discard',
  kind: 'datagram',
  cluster: {
    schema: Type.Object({ protocol: Type.Literal('Discard') }, { description: 'Discard: drops every message.' }),
    virtual: true,
    create: (cfg) => ({
      connect: () => Promise.resolve(new VirtualConnection('datagram', cfg.name, () => null)),
      close() {},
    }),
  },
};
