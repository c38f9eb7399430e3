/** RTSP listener and cluster specs (issue 14). */
import { Type, type Static } from '@sinclair/typebox';
import { Address, Bind, OffloadOptions, Port, StreamIdleTimeout } from '../schema.ts';
import { DEFAULT_LIMITS } from './codec.ts';

const PortRange = Type.Object(
  {
    min: Type.Integer({ minimum: 1024, maximum: 65534, default: 30000, description: 'Lowest port of the range (rounded up to even).', expect: 'an integer 1024..65534' }),
    max: Type.Integer({ minimum: 1025, maximum: 65535, default: 39999, description: 'Highest port of the range.', expect: 'an integer 1025..65535' }),
  },
  { description: 'UDP ports of the RTP/RTCP pinholes: even/odd pairs (RTP even, RTCP the next port). Default 30000-39999.' },
);

export const RtspListenerSpec = Type.Object(
  {
    protocol: Type.Literal('RTSP'),
    port: Port('TCP port of the RTSP control connections (554 is the standard one).'),
    address: Type.Optional(Address('Bind address. Default `::` (dual stack).', '::')),
    options: Type.Optional(
      Type.Object(
        {
          idle_timeout: Type.Optional(StreamIdleTimeout()),
          request_timeout: Type.Optional(
            Type.Number({ minimum: 0.1, default: 10, description: 'Time a new control connection has to send its first complete request (routing needs it). Over it: the connection is closed. Unit: s.', expect: 'a number of seconds >= 0.1' }),
          ),
          media_idle_timeout: Type.Optional(
            Type.Number({ minimum: 0, default: 60, description: 'A pinhole relay (RTP or RTCP of one track) that carried nothing for this long ends; 0 disables it. Unit: s.', expect: 'a number of seconds >= 0' }),
          ),
          rtp_ports: Type.Optional(PortRange),
          upstream_transport: Type.Optional(
            Type.Union([Type.Literal('same'), Type.Literal('udp'), Type.Literal('tcp')], {
              default: 'same',
              description:
                'Media transport asked of the server: `same` as the client asked, `udp` (RTP/AVP over UDP pinholes, also for interleaved clients), `tcp` (interleaved on the control connection, also for UDP clients).',
              expect: 'same, udp or tcp',
            }),
          ),
          fanout: Type.Optional(
            Type.Boolean({
              default: false,
              description:
                'Serve a client that PLAYs a URL already playing through this listener from that stream (one upstream PLAY per URL; UDP pinholes on both sides). The listener then binds on one worker only.',
            }),
          ),
          reader_queue: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 65536, default: 256, description: 'Fan-out: datagrams queued towards one reader before the next ones to it are dropped (counted as reader_drops).', expect: 'an integer 1..65536' }),
          ),
          offload: Type.Optional(
            OffloadOptions(
              "an RTP relay (a track's two RTP pinholes; its source is the client side)",
              "A PLAY's media (server to client) establish it at their first datagram either way; `{packets: N}` is for RECORD (client to server). RTCP relays stay in userspace, where their sender reports are read into /RTP.",
            ),
          ),
          max_head_bytes: Type.Optional(Type.Integer({ minimum: 256, maximum: 1048576, default: DEFAULT_LIMITS.maxHeadBytes, description: 'Longest message head (start line and headers). Unit: bytes.', expect: 'an integer 256..1048576' })),
          max_headers: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, default: DEFAULT_LIMITS.maxHeaders, description: 'Most header lines in a message.', expect: 'an integer 1..1024' })),
          max_body_bytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 16777216, default: DEFAULT_LIMITS.maxBodyBytes, description: 'Longest message body (Content-Length). Unit: bytes.', expect: 'an integer 0..16777216' })),
        },
        { description: 'RTSP listener options.' },
      ),
    ),
  },
  {
    description:
      'RTSP listener (RFC 2326, RFC 7826): one session per control connection, routed on its first request (/RTSP/method, /RTSP/url, /RTSP/path, /RTSP/headers/<name>); SETUP is rewritten so that RTP and RTCP flow through pinholes of the proxy, each a child session.',
  },
);
export type RtspListenerSpec = Static<typeof RtspListenerSpec>;

export const RtspClusterSpec = Type.Object(
  {
    protocol: Type.Literal('RTSP'),
    port: Type.Optional(Port('RTSP port of every endpoint. Default 554.')),
    bind: Type.Optional(Bind),
  },
  { description: 'RTSP cluster: a TCP control connection per session, which tells an RTSP listener the server address its media pinholes connect to.' },
);
export type RtspClusterSpec = Static<typeof RtspClusterSpec>;
