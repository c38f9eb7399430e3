/** UnixDomainSocket (stream): listener on one worker, cluster to socket paths. */
import type { ProtocolModule } from '../types.ts';
import { UdsClusterSpec, UdsListenerSpec } from './config.ts';
import { UdsListener } from './listener.ts';
import { UdsCluster } from './cluster.ts';

export const uds: ProtocolModule = {
  name: 'UnixDomainSocket',
  kind: 'byte',
  listener: { schema: UdsListenerSpec, placement: () => 'single', create: (cfg, ctx) => new UdsListener(cfg, ctx) },
  cluster: { schema: UdsClusterSpec, virtual: false, create: (cfg) => new UdsCluster(cfg) },
};
