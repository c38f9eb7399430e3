/**
 * UDP listener and cluster specs (docs/l7mp-compat.md §3.2, §3.3), with l7mp-ts additions:
 * IPv6, a per-listener idle timeout and a receive buffer size.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Address, Bind, OffloadOptions, Port } from '../schema.ts';

/** Default `options.max_pps` of a UDP listener: above one flow's userspace maximum (~150k/s), finite. */
export const DEFAULT_UDP_MAX_PPS = 1_000_000;
/** Default `options.max_bps` of a UDP listener: 10 Gbit/s. */
export const DEFAULT_UDP_MAX_BPS = 10_000_000_000;

export const UdpListenerSpec = Type.Object(
  {
    protocol: Type.Literal('UDP'),
    port: Port('UDP port to listen on.'),
    address: Type.Optional(
      Address('Bind address; an IPv6 literal makes the listener IPv6. l7mp reports it as /IP/dst_addr.', '0.0.0.0'),
    ),
    connect: Type.Optional(
      Type.Object(
        {
          address: Type.Optional(Address('Only this remote address may open sessions (server mode), or the remote to connect to (singleton).')),
          port: Type.Optional(Port('Only this remote port may open sessions (server mode), or the remote port (singleton).')),
        },
        { description: 'Remote filter (server mode) or the fixed remote (singleton mode).' },
      ),
    ),
    options: Type.Optional(
      Type.Object(
        {
          mode: Type.Optional(
            Type.Union([Type.Literal('server'), Type.Literal('singleton')], {
              description:
                'server: one session per remote address:port; singleton: one session at startup, connected to `connect`. Default: singleton when both connect.address and connect.port are set, else server.',
              expect: '"server" or "singleton"',
            }),
          ),
          idle_timeout: Type.Optional(
            Type.Number({
              minimum: 0,
              default: 120,
              description: 'Seconds without a datagram in either direction after which a session ends; 0 disables. Default 120 in server mode; a singleton has none unless set (its one session is the listener). Unit: s.',
              expect: 'a number of seconds >= 0',
            }),
          ),
          rtp: Type.Optional(
            Type.Boolean({
              default: false,
              description:
                'Server mode: read the RTP header (RFC 3550) of each session\'s first datagram into /RTP/SSRC, /RTP/payload_type and /RTP/sequence (numbers), for rules and a ConsistentHash `key: /RTP/SSRC` that keeps a call on one endpoint. A first datagram that is an RTCP compound packet with a sender report (RFC 3550 §6.4.1) gives /RTP/SSRC (the sender\'s: its RTP stream\'s), /RTP/rtp_timestamp, /RTP/packet_count and /RTP/octet_count, so the same ConsistentHash puts RTCP on its RTP stream\'s endpoint. Anything else leaves /RTP absent.',
            }),
          ),
          session_sockets: Type.Optional(
            Type.Union([Type.Literal('connected'), Type.Literal('listener')], {
              description:
                'Server mode. Default: listener when the process runs one worker, or when its workers are steered (with more than one worker the proxy loads an SO_REUSEPORT program that sends each peer to the worker owning it, where the offload addon and CAP_BPF allow; then a session whose datagrams still reach another worker, e.g. one made while its owner was restarting, gets a connected socket of its own); else connected. connected: each session gets a socket bound to the listener\'s address:port and connected to the peer (the kernel delivers the peer\'s datagrams to it; an ICMP error ends the session; -o init can splice it). listener: sessions are read and answered through the listening sockets, one socket fewer per session and no kernel cost that grows with the sessions on the port (with connected sockets every new session\'s bind walks all of them); a peer whose datagrams reach another worker is handed to its owner datagram by datagram; ICMP errors from the peer are not seen (sessions end on idle); a session that -o init splices gets a socket connected to its peer at that moment.',
              expect: '"connected" or "listener"',
            }),
          ),
          max_pps: Type.Optional(
            Type.Number({
              exclusiveMinimum: 0,
              default: DEFAULT_UDP_MAX_PPS,
              description:
                'Server mode: datagrams per second one session may send towards the upstream (a token bucket holding one second of it); past it a datagram is dropped and counted (l7mp_listener_dropped_packets_total{reason="session_rate"}). A session spliced in the kernel (-o init) is not limited. Unit: datagrams/s.',
              expect: 'a number > 0',
            }),
          ),
          max_bps: Type.Optional(
            Type.Number({
              exclusiveMinimum: 0,
              default: DEFAULT_UDP_MAX_BPS,
              description:
                'Server mode: payload bits per second one session may send towards the upstream (a token bucket holding one second of it, at least one 64 KiB datagram); past it: reason="session_rate". Unit: bit/s.',
              expect: 'a number > 0',
            }),
          ),
          offload: Type.Optional(OffloadOptions('a session (server mode)')),
          recv_buffer_size: Type.Optional(
            Type.Integer({
              minimum: 0,
              description: 'SO_RCVBUF of each socket in bytes (capped by net.core.rmem_max); 0 keeps the kernel default. Unit: bytes.',
              expect: 'an integer number of bytes >= 0',
            }),
          ),
        },
        { description: 'UDP listener options.' },
      ),
    ),
  },
  { description: 'UDP listener: one session per remote address:port (server) or one fixed session (singleton).' },
);
export type UdpListenerSpec = Static<typeof UdpListenerSpec>;

export const UdpClusterSpec = Type.Object(
  {
    protocol: Type.Literal('UDP'),
    port: Port('Upstream UDP port of every endpoint.'),
    bind: Type.Optional(Bind),
  },
  { description: 'UDP cluster: each session stage gets its own socket connected to the chosen endpoint.' },
);
export type UdpClusterSpec = Static<typeof UdpClusterSpec>;

/** Default idle timeout of UDP sessions, s (Envoy's udp_proxy uses 60 s; l7mp had none). */
export const DEFAULT_UDP_IDLE_TIMEOUT_S = 120;
