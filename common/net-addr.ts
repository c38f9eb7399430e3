/** Address classification for the control plane's safety checks (admin bind, admin clusters). */
import net from 'node:net';

const loopback = new net.BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/**
 * Whether `host` is a loopback address: 127.0.0.0/8, ::1 (any spelling, brackets allowed),
 * IPv4-mapped ::ffff:127.x.y.z, or the name `localhost`. Anything else (0.0.0.0, ::, another
 * name, an empty string) is not: the unspecified addresses listen on every interface.
 */
export function isLoopback(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h.toLowerCase() === 'localhost') return true;
  const family = net.isIP(h);
  if (family === 4) return loopback.check(h, 'ipv4');
  if (family === 6) return loopback.check(h, 'ipv6');
  return false;
}
