/**
 * The UDP listener's modes as its config and the process shape decide them: server or singleton,
 * the session sockets, the fds a session holds (shared by the listener, the cluster and the
 * runtime's session cap).
 */
import net from 'node:net';
import type { ProcessShape } from '../types.ts';
import type { UdpListenerSpec } from './config.ts';

/** The UDP socket type for an address. */
export function udpType(address: string): 'udp4' | 'udp6' {
  return net.isIPv6(address) ? 'udp6' : 'udp4';
}

/**
 * The effective `options.session_sockets`. Unset: `listener` (one socket per session, as nginx and
 * Envoy answer UDP peers from the listening socket) when the process has one worker, or when an
 * SO_REUSEPORT program steers each peer's datagrams to the worker that owns it on the ring
 * (`steered`: several workers, the addon and CAP_BPF); else `connected`, because without steering
 * a peer's datagrams reach the worker the kernel's reuseport hash picks, and a connected socket
 * brings them to the session's owner without a hand-off. A session served through the listening
 * sockets that is spliced (-o init) gets a connected socket then (`UdpDownstream.prepareSplice`),
 * and so does one of steered workers whose datagrams reach another worker (see `connectStrays`).
 */
export function sessionSockets(spec: UdpListenerSpec, ctx: { readonly workers?: number; readonly steered?: boolean }): 'connected' | 'listener' {
  const set = spec.options?.session_sockets;
  if (set !== undefined) return set;
  return (ctx.workers ?? 1) <= 1 || ctx.steered === true ? 'listener' : 'connected';
}

/**
 * File descriptors a session of this listener holds for its downstream at most: none when it is
 * served through the listening sockets (a singleton's one session is the listener), one with a
 * socket connected to its peer: `session_sockets: connected`, a session kernel offload may splice,
 * a stray session of steered workers (`UdpListener.connectStrays`).
 */
export function udpDownstreamFds(spec: UdpListenerSpec, env: ProcessShape): number {
  if (udpMode(spec) === 'singleton') return 0;
  if (sessionSockets(spec, env) === 'connected' || env.offload) return 1;
  return spec.options?.session_sockets === undefined && env.workers > 1 ? 1 : 0;
}

/** The effective mode: l7mp defaults to singleton when both connect fields are set. */
export function udpMode(spec: UdpListenerSpec): 'server' | 'singleton' {
  const m = spec.options?.mode;
  if (m !== undefined) return m;
  return spec.connect?.address !== undefined && spec.connect?.port !== undefined ? 'singleton' : 'server';
}
