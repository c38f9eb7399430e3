/** Discard: a virtual cluster that swallows everything and never answers. */
import { Type } from '@sinclair/typebox';
import { defineProtocol } from '../core/define.ts';
import { replyCluster } from '../core/virtual.ts';

export const discard = defineProtocol({
  name: 'Discard',
  kind: 'datagram',
  cluster: replyCluster(Type.Object({ protocol: Type.Literal('Discard') }, { description: 'Discard: drops every message.' }), () => ({ stage: () => () => null })),
});
