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

/**
 * `offload.establish` of a datagram listener (issue 14 item 4): when, under `-o init`, a session
 * whose sockets are all plain connected UDP sockets is spliced in the kernel. `reply`: at the first
 * datagram that goes back towards the session's source; `{packets: N}`: also once its source sent N
 * datagrams, answered or not (a one-way flow: RTP from a camera, a RECORD stream).
 */
export const OffloadOptions = (side: string, note = '') =>
  Type.Object(
    {
      establish: Type.Optional(
        Type.Union(
          [
            Type.Literal('reply'),
            Type.Object(
              {
                packets: Type.Integer({
                  minimum: 1,
                  maximum: 1_000_000,
                  description: 'Datagrams the source sends (with or without a reply) after which the session is spliced. Unit: datagrams.',
                  expect: 'an integer 1..1000000',
                }),
              },
              { description: 'Splice a one-way flow after this many datagrams from the source.' },
            ),
          ],
          {
            default: 'reply',
            description: `When ${side} is spliced in the kernel (\`-o init\`): \`reply\` at the first datagram back towards its source (a one-way flow stays in userspace); \`{packets: N}\` also once the source sent N datagrams with no reply. Counters stay exact either way: the kernel's counts are read into the session.${note === '' ? '' : ` ${note}`}`,
            expect: '"reply" or {packets: N}',
          },
        ),
      ),
    },
    { description: 'Kernel offload (`-o init`) of this listener\'s sessions.' },
  );

/** Datagrams from a session's source after which it is spliced with no reply (0: only a reply establishes it). */
export function establishAfter(o: { establish?: 'reply' | { packets: number } } | undefined): number {
  const e = o?.establish;
  return e === undefined || e === 'reply' ? 0 : e.packets;
}
