/**
 * Schema pieces shared by protocol specs. Every field carries a description, a default where it
 * has one, and its unit; `expect` is the phrase validation errors use ("must be <expect>").
 */
import { Type } from '@sinclair/typebox';

/** A TCP/UDP port. */
export const Port = (description: string) =>
  Type.Integer({ minimum: 1, maximum: 65535, description, expect: 'an integer 1..65535' });

/** A port that may be 0 (any free port), for binds. */
export const BindPort = (description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, description, expect: 'an integer 0..65535' });

/** An IPv4/IPv6 literal or a DNS name. */
export const Address = (description: string, dflt?: string) =>
  Type.String({ minLength: 1, description, ...(dflt === undefined ? {} : { default: dflt }), expect: 'an IP address or host name' });

/** A filesystem path of a Unix domain socket (at most 107 bytes on Linux, `sun_path`). */
export const SocketPath = (description: string) =>
  Type.String({ minLength: 1, maxLength: 107, description, expect: 'a socket path of 1..107 characters' });

/** `{address?, port?}` a socket binds to before it connects. */
export const Bind = Type.Object(
  {
    address: Type.Optional(Address('Local address to bind before connecting.', '0.0.0.0')),
    port: Type.Optional(BindPort('Local port to bind before connecting; 0 picks a free port.')),
  },
  { description: 'Local address the upstream socket binds to (default any address, any port).' },
);

/**
 * Default session idle timeout of the stream listeners (TCP, Unix stream, WebSocket, HTTP), s:
 * nginx `proxy_timeout` (10 min).
 */
export const DEFAULT_STREAM_IDLE_TIMEOUT_S = 600;

/** `options.idle_timeout` of a stream listener (TCP, Unix stream, WebSocket, HTTP). */
export const StreamIdleTimeout = () =>
  Type.Number({
    minimum: 0,
    default: DEFAULT_STREAM_IDLE_TIMEOUT_S,
    description:
      'Seconds without a read on either side of a session (downstream or any upstream stage) after which it ends with L7_ERR_SESSION_IDLE, as nginx proxy_timeout (10 min); 0 disables it. Unit: s.',
    expect: 'a number of seconds >= 0',
  });
