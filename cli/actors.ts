/**
 * `l7mp-ts actors --admin HOST:PORT [--admin-token TOKEN] [--json]`: print the live actor tree of a
 * running proxy (its `GET /api/v1/actors`). Exit 0 on success, 1 on a bad command line or an
 * unreachable or refusing server (the message says which).
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { parseAdminAddress } from '../runtime/main/admin/server.ts';

export async function actorsCommand(argv: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({ args: argv, options: { admin: { type: 'string' }, 'admin-token': { type: 'string' }, json: { type: 'boolean' } }, strict: true }).values;
  } catch (e) {
    process.stderr.write(`l7mp-ts actors: ${(e as Error).message}\nUsage: l7mp-ts actors --admin HOST:PORT [--admin-token TOKEN] [--json]\n`);
    return 1;
  }
  if (v.admin === undefined) {
    process.stderr.write('l7mp-ts actors: --admin HOST:PORT is required\n');
    return 1;
  }
  let addr;
  try {
    addr = parseAdminAddress(v.admin);
  } catch (e) {
    process.stderr.write(`l7mp-ts actors: ${(e as Error).message}\n`);
    return 1;
  }
  const token = v['admin-token'] ?? process.env.L7MP_ADMIN_TOKEN;
  const path = `/api/v1/actors${v.json ? '' : '?format=text'}`;
  return new Promise((resolve) => {
    const req = http.get({ host: addr.host, port: addr.port, path, timeout: 5000, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) {
          process.stderr.write(`l7mp-ts actors: ${addr.host}:${addr.port} answered ${res.statusCode}: ${body}\n`);
          resolve(1);
          return;
        }
        process.stdout.write(body.endsWith('\n') ? body : `${body}\n`);
        resolve(0);
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 5 s')));
    req.on('error', (e) => {
      process.stderr.write(`l7mp-ts actors: cannot reach the admin server at ${addr.host}:${addr.port}: ${e.message}\n`);
      resolve(1);
    });
  });
}
