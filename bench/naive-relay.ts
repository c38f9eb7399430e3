/**
 * The reference "bare Node relay" for bench/: every datagram that reaches the listen port is sent to a
 * fixed upstream from one upstream socket (connected to it); whatever the upstream sends back goes to the last client.
 * No tuning on purpose (default buffers, one `message` callback + one `send` per datagram): it is the
 * floor a Node proxy should beat. Usage: node bench/naive-relay.ts LISTEN_PORT UPSTREAM_PORT [ADDR]
 */
import dgram from 'node:dgram';
import type { RemoteInfo } from 'node:dgram';
import { isIPv6 } from 'node:net';

const [listenPort, upstreamPort] = process.argv.slice(2, 4).map(Number);
const host = process.argv[4] ?? '127.0.0.1';
if (!(listenPort > 0 && upstreamPort > 0)) {
  console.error('usage: node bench/naive-relay.ts LISTEN_PORT UPSTREAM_PORT [ADDR]');
  process.exit(2);
}
const type = isIPv6(host) ? 'udp6' : 'udp4';
const front = dgram.createSocket(type);
const back = dgram.createSocket(type);
let client: RemoteInfo | undefined;
front.on('message', (msg, rinfo) => {
  client = rinfo;
  back.send(msg);
});
back.on('message', (msg) => {
  if (client) front.send(msg, client.port, client.address);
});
back.connect(upstreamPort, host, () => front.bind(listenPort, host));
