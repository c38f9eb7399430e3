/**
 * The TCP half of bench's "node-relay": every connection to LISTEN_PORT is piped to a new connection
 * to UPSTREAM_PORT (`pipe()` both ways, no tuning). Several pairs may be given; a WebSocket passes
 * through it as plain bytes. Usage: node bench/naive-tcp-relay.ts LISTEN UPSTREAM [LISTEN UPSTREAM ...]
 */
import net from 'node:net';

const ports = process.argv.slice(2).map(Number);
const host = '127.0.0.1';
if (ports.length === 0 || ports.length % 2 || !ports.every((p) => p > 0 && p < 65536)) {
  console.error('usage: node bench/naive-tcp-relay.ts LISTEN UPSTREAM [LISTEN UPSTREAM ...]');
  process.exit(2);
}
for (let i = 0; i < ports.length; i += 2) {
  const upstream = ports[i + 1];
  net
    .createServer((client) => {
      const up = net.connect(upstream, host);
      client.pipe(up).pipe(client);
      client.on('error', () => up.destroy());
      up.on('error', () => client.destroy());
    })
    .listen(ports[i], host);
}
