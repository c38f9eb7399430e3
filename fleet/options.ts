/**
 * NATS connection flags, shared by the proxy (`l7mp-ts --nats ...`) and the CLI commands
 * (`apply`, `fleet ...`), turned into nats.js connection options.
 *
 * Authentication follows the NATS docs (securing_nats/auth_intro): user and password, a token,
 * an NKey seed file (challenge-response; the server never sees the seed), a `.creds` file
 * (decentralized JWT + seed), and TLS (a CA to verify the server, a client certificate and key
 * for `verify`). Secrets can come from the environment instead of the command line:
 * `L7MP_NATS_PASSWORD`, `L7MP_NATS_TOKEN`. Credentials inside the URL (`nats://u:p@host`) work too.
 *
 * Reconnect policy (test/e2e/fleet.test.ts, the nats-server outage test): reconnect forever, every 500 ms with 100 ms jitter,
 * and keep retrying the first connect too: a proxy serves its last config while the bus is away.
 */
import fs from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, type Authenticator, type ConnectionOptions } from '@nats-io/transport-node';
import { L7Error, ErrorCode } from '../common/errors.ts';

/** `parseArgs` option definitions of the NATS flags. */
export const NATS_FLAGS = {
  nats: { type: 'string' },
  'nats-user': { type: 'string' },
  'nats-password': { type: 'string' },
  'nats-token': { type: 'string' },
  'nats-nkey': { type: 'string' },
  'nats-creds': { type: 'string' },
  'nats-tls-ca': { type: 'string' },
  'nats-tls-cert': { type: 'string' },
  'nats-tls-key': { type: 'string' },
} as const;

/** Help lines of the NATS flags. */
export const NATS_USAGE = `      --nats URL[,URL]    NATS server(s), e.g. nats://127.0.0.1:4222 (tls:// for TLS)
      --nats-user USER    user name (password from --nats-password or L7MP_NATS_PASSWORD)
      --nats-password P   password
      --nats-token TOKEN  token (or L7MP_NATS_TOKEN)
      --nats-nkey FILE    NKey seed file (SU...)
      --nats-creds FILE   credentials file (JWT and seed)
      --nats-tls-ca FILE  CA certificate(s) to verify the server
      --nats-tls-cert FILE, --nats-tls-key FILE  client certificate and key (TLS verify)`;

/** The values of {@link NATS_FLAGS} as parseArgs returns them. */
export type NatsFlagValues = { [K in keyof typeof NATS_FLAGS]?: string | undefined };

function readFile(flag: string, file: string): Uint8Array {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new L7Error(ErrorCode.InvalidArgument, `${flag}: cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Connection options from the flags (files are read now, so a bad path fails at start).
 * @param name the client name the server shows (`l7mp-ts <nodeId>`, `l7mp-ts apply`).
 * @throws L7Error `L7_ERR_INVALID_ARGUMENT` naming the flag: missing `--nats`, conflicting
 *   credentials, unreadable files.
 */
export function connectionOptions(v: NatsFlagValues, name: string, env: NodeJS.ProcessEnv = process.env): ConnectionOptions {
  if (v.nats === undefined || v.nats.trim() === '') throw new L7Error(ErrorCode.InvalidArgument, '--nats URL is required');
  const servers = v.nats.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const s of servers) {
    if (!/^(nats|tls|wss?):\/\/[^\s]+$|^[^\s:/]+(:\d+)?$/.test(s)) throw new L7Error(ErrorCode.InvalidArgument, `--nats: not a NATS URL: ${JSON.stringify(s)}`);
  }
  const opts: ConnectionOptions = {
    servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    reconnectJitter: 100,
    reconnectJitterTLS: 100,
    waitOnFirstConnect: true,
    timeout: 5000,
    pingInterval: 10_000,
  };
  const password = v['nats-password'] ?? env.L7MP_NATS_PASSWORD;
  const token = v['nats-token'] ?? env.L7MP_NATS_TOKEN;
  const kinds = [v['nats-user'] !== undefined, token !== undefined, v['nats-nkey'] !== undefined, v['nats-creds'] !== undefined].filter(Boolean).length;
  if (kinds > 1) throw new L7Error(ErrorCode.InvalidArgument, '--nats-user, --nats-token, --nats-nkey and --nats-creds exclude each other: give one');
  if (password !== undefined && v['nats-user'] === undefined && v['nats-password'] !== undefined) {
    throw new L7Error(ErrorCode.InvalidArgument, '--nats-password needs --nats-user');
  }
  if (v['nats-user'] !== undefined) {
    opts.user = v['nats-user'];
    if (password !== undefined) opts.pass = password;
  }
  if (token !== undefined) opts.token = token;
  const auth: Authenticator[] = [];
  if (v['nats-nkey'] !== undefined) {
    const seed = new TextDecoder().decode(readFile('--nats-nkey', v['nats-nkey'])).trim();
    if (!/^SU[A-Z2-7]+$/.test(seed)) throw new L7Error(ErrorCode.InvalidArgument, `--nats-nkey: ${v['nats-nkey']} does not hold a user NKey seed (SU...)`);
    auth.push(nkeyAuthenticator(new TextEncoder().encode(seed)));
  }
  if (v['nats-creds'] !== undefined) auth.push(credsAuthenticator(readFile('--nats-creds', v['nats-creds'])));
  if (auth.length > 0) opts.authenticator = auth;
  const ca = v['nats-tls-ca'];
  const cert = v['nats-tls-cert'];
  const key = v['nats-tls-key'];
  if ((cert === undefined) !== (key === undefined)) throw new L7Error(ErrorCode.InvalidArgument, '--nats-tls-cert and --nats-tls-key go together');
  if (ca !== undefined || cert !== undefined) {
    for (const [flag, f] of [['--nats-tls-ca', ca], ['--nats-tls-cert', cert], ['--nats-tls-key', key]] as const) if (f !== undefined) readFile(flag, f);
    opts.tls = { ...(ca !== undefined ? { caFile: ca } : {}), ...(cert !== undefined ? { certFile: cert, keyFile: key } : {}) };
  }
  return opts;
}

/** Server URLs with any `user:password@` replaced by `***@`, for logs. */
export function redactServers(servers: ConnectionOptions['servers']): string[] {
  const list = servers === undefined ? [] : Array.isArray(servers) ? servers : [servers];
  return list.map((u) => u.replace(/\/\/[^/@]*@/, '//***@'));
}
