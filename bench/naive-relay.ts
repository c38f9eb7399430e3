/**
 * The reference "bare Node relay" for bench/: a UDP relay with sessions and nothing else. Each new
 * client address:port gets an upstream socket of its own, connected to the fixed upstream (the
 * kernel picks its port, as for a proxy session); whatever the upstream sends back on it goes to
 * that client from the listening socket. No idle timeout, limits, metrics or tuning on purpose
 * (default buffers, one `message` callback + one `send` per datagram): it is the floor a Node proxy
 * should beat, for datagrams per second and for new sessions per second and memory per session alike.
 * Usage: node bench/naive-relay.ts LISTEN_PORT UPSTREAM_PORT [ADDR]
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';

const [listenPort, upstreamPort] = process.argv.slice(2, 4).map(Number);
const host = process.argv[4] ?? '127.0.0.1';
if (!(listenPort > 0 && upstreamPort > 0)) {
  console.error('usage: node bench/naive-relay.ts LISTEN_PORT UPSTREAM_PORT [ADDR]');
  process.exit(2);
}
const type = isIPv6(host) ? 'udp6' : 'udp4';
const front = dgram.createSocket(type);
const sessions = new Map<string, dgram.Socket>();
front.on('message', (msg, rinfo) => {
  const key = `${rinfo.address}:${rinfo.port}`;
  const known = sessions.get(key);
  if (known !== undefined) {
    // Sent once connected: dgram queues sends made before the connect completes.
    known.send(msg);
    return;
  }
  const back = dgram.createSocket(type);
  sessions.set(key, back);
  back.on('message', (reply) => front.send(reply, rinfo.port, rinfo.address));
  back.on('error', () => {
    sessions.delete(key);
    back.close();
  });
  back.connect(upstreamPort, host, () => back.send(msg));
});
front.bind(listenPort, host);
