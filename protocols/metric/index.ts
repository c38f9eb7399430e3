/**
 * Metric (docs/l7mp-compat.md §3.3, §6.1): a pass-through virtual cluster whose traffic is exported
 * per session, as l7mp's `session_byte_counter_total` and `session_packet_counter_total`
 * `{sessionName, clusterName}` (bytes and messages written into the stage), for the sessions
 * alive at the scrape. Like every stage its traffic is also in the cluster counters
 * (`l7mp_cluster_tx_bytes_total{clusterName}`), which keep ended sessions.
 */
import { Type } from '@sinclair/typebox';
import { defineProtocol } from '../core/define.ts';
import { replyCluster } from '../core/virtual.ts';

const MetricSpec = Type.Object(
  {
    protocol: Type.Literal('Metric'),
    byteCounterName: Type.Optional(Type.String({ description: 'Accepted for l7mp compatibility and ignored (as l7mp): the family is session_byte_counter_total.' })),
    packetCounterName: Type.Optional(Type.String({ description: 'Accepted for l7mp compatibility and ignored (as l7mp): the family is session_packet_counter_total.' })),
  },
  { description: 'Metric: passes every message through unchanged; its traffic is exported per session.' },
);

export const metric = defineProtocol({
  name: 'Metric',
  kind: 'datagram',
  cluster: replyCluster(MetricSpec, () => ({ stage: () => (d) => d }), { sessionMetrics: true }),
});
