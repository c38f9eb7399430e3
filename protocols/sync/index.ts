/**
 * Sync: l7mp's broadcast-domain virtual cluster (docs/l7mp-compat.md §3.3). Every session routed to a
 * Sync cluster joins the domain named by its metadata value at `query`; what one member sends is
 * delivered to every *other* member, and nothing comes back to the sender. A session with no value
 * at `query` fails to connect (as in l7mp).
 *
 * In l7mp-ts the members of one domain may live on different workers (UDP sessions are pinned to
 * workers by the hash ring); see {@link SyncCluster} for the cross-worker path.
 */
import { Type } from '@sinclair/typebox';
import { defineProtocol } from '../core/define.ts';
import { SyncCluster } from './domain.ts';

const SyncSpec = Type.Object(
  {
    protocol: Type.Literal('Sync'),
    query: Type.String({
      minLength: 1,
      description: 'Metadata path (e.g. `/labels/session_id`, a path, not a predicate) whose value names the broadcast domain a session joins.',
      expect: 'a metadata path',
    }),
  },
  { description: 'Sync: sessions with equal metadata values at `query` form a broadcast domain; what one member sends goes to all the others.' },
);

export const sync = defineProtocol({
  name: 'Sync',
  kind: 'datagram',
  cluster: {
    schema: SyncSpec,
    virtual: true,
    create: (cfg, ctx) => new SyncCluster(cfg.name, cfg.spec.query, ctx),
    events: {
      sync_unheard: { drop: true, help: 'Messages that reached no other member of their domain (the sender is alone in it).' },
      sync_undeliverable: { drop: true, help: 'Messages for another worker that could not be sent, or for a domain this worker does not know.' },
      sync_forwarded: { drop: false, help: 'Messages sent to another worker.' },
      sync_received: { drop: false, help: 'Messages received from another worker.' },
    },
  },
});
