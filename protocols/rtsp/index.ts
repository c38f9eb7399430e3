/** RTSP (issue 14): control listener with media pinholes, and the control cluster. */
import { L7Error, ErrorCode } from '../../common/errors.ts';
import { DEFAULT_STREAM_IDLE_TIMEOUT_S } from '../schema.ts';
import { defineProtocol } from '../core/define.ts';
import { RtspClusterSpec, RtspListenerSpec } from './config.ts';
import { RtspListener } from './listener.ts';
import { RtspCluster } from './cluster.ts';

export const rtsp = defineProtocol({
  name: 'RTSP',
  kind: 'byte',
  listener: {
    schema: RtspListenerSpec,
    // Fan-out serves readers from streams of this worker: every client must reach the same one.
    placement: (spec) => (spec.options?.fanout === true ? 'single' : 'shared'),
    create: (cfg, ctx) => new RtspListener(cfg, ctx),
    spawnsChildren: true,
    binds: (spec) => [{ transport: 'tcp', address: spec.address ?? '::', port: spec.port }],
    idleTimeoutMs: (spec) => (spec.options?.idle_timeout ?? DEFAULT_STREAM_IDLE_TIMEOUT_S) * 1000,
    prepare: (spec, path) => {
      const r = spec.options?.rtp_ports;
      if (r !== undefined && r.max < r.min + 1) throw new L7Error(ErrorCode.ConfigInvalid, `${path}.options.rtp_ports: max must be > min`);
      return spec;
    },
  },
  cluster: { schema: RtspClusterSpec, virtual: false, create: (cfg, ctx) => new RtspCluster(cfg, ctx) },
});
